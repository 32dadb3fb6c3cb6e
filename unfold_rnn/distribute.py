"""Training on several devices or machines, with TensorFlow's own `tf.distribute`.

    default       one device (TensorFlow's default strategy)
    mirrored      every GPU of this machine (or its CPU), one replica each: MirroredStrategy
    multi-worker  several machines, read from TF_CONFIG: MultiWorkerMirroredStrategy

The batch size of a run is the global batch: each step splits it across the replicas and
combines their gradients into that of the mean loss over the global batch, so a step is the
same step whatever the number of replicas. Only the
chief worker keeps files; the others write theirs to a temporary directory and remove it
(every worker saves, as TensorFlow advises, since saving can need all of them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named `name` (one of `STRATEGIES`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _check_tf_config()
        return _MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy, with `reduce` as Keras 3's `fit` calls it.

    Keras 3 (3.15 here) reduces the first batch as a whole (x, y) tuple, and every scalar
    log with axis=0; MultiWorkerMirroredStrategy.reduce takes neither, so `fit` fails on any
    model (tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input with 0
    dimensions"). This reduces each value of a structure, scalars over replicas only.
    """

    def reduce(self, reduce_op: Any, value: Any, axis: int | None) -> Any:
        def one(v: Any) -> Any:
            rank = self.experimental_local_results(v)[0].shape.rank
            return super(_MultiWorkerMirroredStrategy, self).reduce(
                reduce_op, v, None if rank == 0 else axis
            )

        return tf.nest.map_structure(one, value)


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "--strategy multi-worker reads the cluster from the TF_CONFIG environment "
            "variable, which is not set (see README, 'Several devices and machines')."
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        _ = task["type"], task["index"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}}; got ' + repr(text)
        ) from None
    if not isinstance(workers, list) or not workers:
        raise ValueError("TF_CONFIG's cluster lists no workers.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process keeps the run's files: always, except under multi-worker, where
    the chief does (the task of type "chief", or worker 0 if there is none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


@contextlib.contextmanager
def writing_place(run_dir: Path, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """Where this worker writes the run: `run_dir` for the chief; for the others a temporary
    directory, removed at the end."""
    if is_chief(strategy):
        yield run_dir
        return
    place = Path(tempfile.mkdtemp(prefix=f"unfold_rnn_worker_{strategy.cluster_resolver.task_id}_"))
    try:
        yield place
    finally:
        shutil.rmtree(place, ignore_errors=True)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Under multi-worker, each worker takes its part of every global batch (our streams are
    computed, not read from files, so there are no files to share out)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
