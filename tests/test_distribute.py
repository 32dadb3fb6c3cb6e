"""Training under tf.distribute: MirroredStrategy over two logical CPUs matches one device;
two worker processes on this machine train one run, which only the chief keeps; the builders
work in any strategy's scope; what cannot work says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import UNFOLD_RNN

import unfold_rnn
from unfold_rnn import cli, distribute, runs

# Run in a fresh process: logical devices must be set before TensorFlow starts.
MIRRORED = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import unfold_rnn
    from unfold_rnn import runs
    from unfold_rnn.config import LanguageModelConfig
    from unfold_rnn.training import train_language_model

    text, logdir, cell = sys.argv[1], sys.argv[2], sys.argv[3]
    config = LanguageModelConfig(
        text=text, cell=cell, units=16, layers=2, embedding_dim=8, seq_len=20, batch_size=8,
        steps_per_epoch=4, epochs=2,
    )
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"replicas": two.num_replicas_in_sync}
    for name, strategy in [("one", None), ("two", two)]:
        result = train_language_model(config, logdir, name, verbose=0, strategy=strategy)
        model = runs.load_checkpoint(result.run_dir, runs.read_state(result.run_dir))
        report[name] = {
            "val_loss": result.best_val_loss,
            "weights": [w.tolist() for w in model.get_weights()],
        }

    from unfold_rnn.config import AdditionConfig
    from unfold_rnn.training import train_binary_addition

    adding = AdditionConfig(units=4, bits=4, epochs=1, problems_per_epoch=64, time_budget=None)
    report["addition_steps"] = train_binary_addition(
        adding, logdir, "add", verbose=0, strategy=two
    ).step

    with two.scope():
        stateful = keras.Sequential([
            keras.Input((5, 3), batch_size=4), unfold_rnn.LSTM(4, stateful=True)
        ])
        stateful.compile("adam", "mse")
    try:
        stateful.fit(np.zeros((4, 5, 3)), np.zeros((4, 4)), verbose=0)
        report["stateful"] = "trained"
    except Exception as error:
        report["stateful"] = str(error)
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_mirrored_on_two_cpus_matches_one_device(cell, tmp_path, text_file):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(text_file), str(tmp_path), cell],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line[len("REPORT ") :])
    assert report["replicas"] == 2
    one, two = report["one"], report["two"]
    # Same global batch of 8, split 4 + 4 and the gradients summed: the same training, up to
    # the order of float additions.
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
    assert "cannot run under a tf.distribute strategy with 2 replicas" in report["stateful"]
    assert report["addition_steps"] == 2  # train-addition runs under the strategy too


@pytest.mark.slow
def test_two_workers_train_one_run_kept_by_the_chief(tmp_path, text_file, free_ports):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    logdir = tmp_path / "logs"
    args = [UNFOLD_RNN, "train-lm", "--strategy", "multi-worker"]
    args += ["--text", str(text_file), "--units", "12", "--embedding-dim", "6"]
    args += ["--seq-len", "16", "--batch-size", "8", "--steps-per-epoch", "4", "--epochs", "2"]
    args += ["--logdir", str(logdir), "--run-name", "shared"]
    processes = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"  # where the worker may put temporary files
        scratch.mkdir()
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        processes.append(
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-3000:]

    run = logdir / "shared"
    assert sorted(p.name for p in logdir.iterdir()) == ["shared"]
    state = runs.read_state(run)
    assert (state.epoch, state.step, state.finished) == (2, 8, True)
    assert not any((tmp_path / "tmp1").iterdir())  # the other worker's files are gone
    assert cli.main(["sample", str(run), "--length", "40", "--seed", "1"]) == 0


@pytest.mark.slow
def test_the_builders_work_in_a_strategys_scope():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = unfold_rnn.build_language_model(11, units=8, num_layers=1, embedding_dim=4)
        adder = unfold_rnn.build_binary_addition_model("gru", units=4)
    assert model.jit_compile is False  # XLA over a whole step cannot place replicas' variables
    ids = np.random.default_rng(0).integers(0, 11, (4, 9))
    history = model.fit(ids, np.roll(ids, -1, axis=1), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert adder.predict(np.zeros((2, 5, 2), "float32"), verbose=0).shape == (2, 5, 1)
    outside = unfold_rnn.build_language_model(11, units=8, num_layers=1, embedding_dim=4)
    assert outside.jit_compile is True


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "reads the cluster from the TF_CONFIG environment variable, which is not set"),
        ("{not json", "TF_CONFIG must be JSON like"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "no workers"),
    ],
)
def test_multi_worker_needs_a_usable_tf_config(tf_config, message, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy("multi-worker")


def test_one_process_is_its_own_chief():
    assert distribute.is_chief(tf.distribute.get_strategy())
