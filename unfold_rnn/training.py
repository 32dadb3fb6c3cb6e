"""Training runs: a configuration in, a run directory out (see `runs` for what it holds).

Both functions build the model, the data and the callbacks, then call `model.fit`. The
TensorBoard callback writes the scalars at each epoch's end and weight histograms; the
callbacks of `unfold_rnn.callbacks` add scalars every `LOG_EVERY` steps with the speed and the
gradient norm, text samples, gate statistics and hyperparameters (language models), or the
accuracy on longer sums (addition).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from unfold_rnn import distribute, runs
from unfold_rnn.callbacks import (
    AdditionWidths,
    GateStatistics,
    HParams,
    RunCheckpoints,
    StepSummaries,
    Stopped,
    StopWhenConfident,
    TextSamples,
    TimeBudget,
)
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.data import (
    CharVocab,
    addition_problems,
    bits_to_ints,
    default_corpus,
    read_text,
    text_data,
)
from unfold_rnn.models import (
    build_binary_addition_model,
    build_language_model,
    whole_step_xla,
)

LOG_EVERY = 20  # training steps between step-level TensorBoard scalars


@dataclass
class RunResult:
    """What a training run did."""

    run_dir: Path
    epochs: int  # epochs completed in all (resumed runs included)
    best_val_loss: float | None
    step: int = 0  # training steps completed and saved
    stopped: str | None = None  # why the run stopped early (interrupted, diverged), if it did
    signal_number: int | None = None  # the signal that interrupted it, if one did
    report: dict[str, Any] = field(default_factory=dict)  # per kind: e.g. accuracy by width


def _tensorboard(run_dir: Path) -> keras.callbacks.TensorBoard:
    # Epoch scalars and weight histograms; step-level scalars come from StepSummaries
    # (Keras's update_freq=N would drop every summary not written on a multiple of N).
    return keras.callbacks.TensorBoard(str(run_dir), histogram_freq=1)


def _saved_run(
    config: Any, logdir: str | Path, run_name: str | None
) -> tuple[Any, Path, runs.State]:
    """The configuration, directory and state of the run to resume: the run's own
    configuration, but for `config.checkpoint_every`, if set, which changes no result."""
    run_dir, saved, state = runs.run_to_resume(logdir, run_name, config.kind)
    saved.checkpoint_every = config.checkpoint_every or saved.checkpoint_every
    return saved, run_dir, state


@contextlib.contextmanager
def _stop_on_signals(checkpoints: RunCheckpoints) -> Iterator[None]:
    """While training, Ctrl-C (SIGINT) and SIGTERM ask `checkpoints` to save at the next
    step's end and stop; a second signal stops at once, keeping the last checkpoint (whole,
    whatever the moment). A signal the process ignores (`nohup`, a background job) stays
    ignored. Python allows handlers only in the main thread; elsewhere nothing changes. The
    previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signal_number: int, frame: Any) -> None:
        if checkpoints.stop_signal is not None:
            raise KeyboardInterrupt
        checkpoints.request_stop(signal_number)

    previous = {
        number: signal.signal(number, handle)
        for number in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _fit(
    model: keras.Model,
    run_dir: Path,
    place: Path,
    state: runs.State,
    config: LanguageModelConfig | AdditionConfig,
    callbacks: list[keras.callbacks.Callback],
    steps_per_epoch: int,
    batches_from: Callable[[int], Any],
    **fit_args: Any,
) -> RunResult:
    """`model.fit` from where the run stands (`state`), to `config.epochs`: the rest of a
    part-done epoch first (its own `fit`, so that every epoch holds the same steps as in a
    run never stopped), then whole epochs. `batches_from(b)` gives the training batches from
    global batch b on. After `callbacks` come the run's checkpoints, written to `place`
    (`run_dir`, or a non-chief worker's temporary directory), and its time budget."""
    budget = TimeBudget(config.time_budget, state.training_seconds)
    checkpoints = RunCheckpoints(place, state, config.checkpoint_every, budget.training_seconds)
    callbacks = [*callbacks, checkpoints, budget]
    epochs = config.epochs
    stopped = None
    try:
        with _stop_on_signals(checkpoints):
            done = state.step - state.epoch * steps_per_epoch
            if done:
                model.fit(
                    batches_from(state.step),
                    steps_per_epoch=steps_per_epoch - done,
                    initial_epoch=state.epoch,
                    epochs=state.epoch + 1,
                    callbacks=callbacks,
                    **fit_args,
                )
            if not (done and model.stop_training) and state.epoch < epochs:
                model.fit(
                    batches_from(state.epoch * steps_per_epoch),
                    steps_per_epoch=steps_per_epoch,
                    initial_epoch=state.epoch,
                    epochs=epochs,
                    callbacks=callbacks,
                    **fit_args,
                )
    except Stopped as stop:
        stopped = stop
        for callback in callbacks:
            callback.on_train_end()  # what fit skipped: TensorBoard's files are flushed
    if stopped is None:
        state.finished = True
        runs.write_state(place, state)
    else:
        state = runs.read_state(place)  # as the last checkpoint left it
    return RunResult(
        run_dir,
        state.epoch,
        state.best_val_loss,
        state.step,
        None if stopped is None else str(stopped),
        None if stopped is None else stopped.signal_number,
    )


def train_language_model(
    config: LanguageModelConfig,
    logdir: str | Path = "logs",
    run_name: str | None = None,
    resume: bool = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy: tf.distribute.Strategy | None = None,
) -> RunResult:
    """Train a character-level language model as `config` says, into `<logdir>/<run_name>`.

    With `resume`, continue the run of that name from its last checkpoint, with the
    configuration it was started with: it ends with the weights an uninterrupted run ends
    with. Ctrl-C or SIGTERM during training saves a checkpoint and returns (`stopped` says so).
    `callbacks` are more Keras callbacks for `fit`, called before the run's own. Under a
    `strategy` (see `unfold_rnn.distribute`), `config.batch_size` is the global batch.
    """
    strategy = strategy or tf.distribute.get_strategy()
    config, run_dir, state = _run(config, logdir, run_name, resume, strategy)
    saved_vocab = runs.read_vocab(run_dir) if resume else None
    text = read_text(config.text) if config.text else default_corpus()
    vocab = saved_vocab if saved_vocab is not None else CharVocab.from_text(text)
    data = text_data(
        text,
        config.seq_len,
        config.batch_size,
        config.val_fraction,
        seed=config.seed,
        vocab=vocab,
    )  # the text is usable: only now is a new run directory made

    def build() -> keras.Model:
        return build_language_model(
            len(vocab),
            cell=config.cell,
            units=config.units,
            num_layers=config.layers,
            embedding_dim=config.embedding_dim,
            dropout=config.dropout,
            learning_rate=config.lr,
        )

    with distribute.writing_place(run_dir, strategy) as place:
        model = _model(run_dir, state, config.seed, strategy, build)
        if not resume:
            runs.create(place, config, vocab)
        first_inputs, _ = next(iter(data.validation))
        callbacks = [
            *callbacks,
            _tensorboard(place),
            StepSummaries(
                place,
                min(LOG_EVERY, config.steps_per_epoch),
                config.batch_size * config.seq_len,
                iter(data.train),
            ),
            TextSamples(place, vocab, prime=_prime(vocab, text), every=config.sample_every),
            GateStatistics(place, first_inputs.numpy()[:16]),
            HParams(place, {**config.__dict__, "text": config.text or "(built-in corpus)"}),
        ]
        return _fit(
            model,
            run_dir,
            place,
            state,
            config,
            callbacks,
            config.steps_per_epoch,
            lambda batch: distribute.shard_by_data(data.train_from(batch)),
            validation_data=distribute.shard_by_data(data.validation),
            shuffle=False,
            verbose=verbose,
        )


def _run(
    config: Any,
    logdir: str | Path,
    run_name: str | None,
    resume: bool,
    strategy: tf.distribute.Strategy,
) -> tuple[Any, Path, runs.State]:
    """The configuration, directory and state of the run to train: the saved run to resume,
    or a new one (whose directory only the chief checks is free)."""
    if resume:
        return _saved_run(config, logdir, run_name)
    config.check()
    if distribute.is_chief(strategy):
        run_dir = runs.new_run_dir(logdir, run_name, config)
    else:
        run_dir = Path(logdir) / (run_name or runs.default_run_name(config))
    return config, run_dir, runs.State()


def _model(
    run_dir: Path,
    state: runs.State,
    seed: int,
    strategy: tf.distribute.Strategy,
    build: Callable[[], keras.Model],
) -> keras.Model:
    """The run's model, made within `strategy`'s scope: the checkpoint's, or a new one drawn
    from `seed`."""
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if not state.checkpoint:
            return build()
        model = runs.load_checkpoint(run_dir, state)
        model.jit_compile = model.jit_compile and whole_step_xla()  # as the builders choose
        return model


def _prime(vocab: CharVocab, text: str) -> str:
    """A neutral start for samples: a newline if the text has one, else its first character."""
    return "\n" if "\n" in vocab.chars else text[0]


def _addition_batches(config: AdditionConfig, first: int) -> tf.data.Dataset:
    """Endless batches of new random problems from global batch `first` on; batch b is drawn
    from (seed, b), so the stream depends on nothing else and a resumed run continues it."""
    shape = (config.batch_size, config.bits)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in itertools.count(first):
            rng = np.random.default_rng([config.seed, b])
            yield addition_problems(config.batch_size, config.bits, seed=rng)

    signature = (
        tf.TensorSpec((*shape, 2), tf.float32),
        tf.TensorSpec((*shape, 1), tf.float32),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


ADDITION_WIDTHS = (8, 16, 32, 64)


def train_binary_addition(
    config: AdditionConfig,
    logdir: str | Path = "logs",
    run_name: str | None = None,
    resume: bool = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy: tf.distribute.Strategy | None = None,
) -> RunResult:
    """Train the binary-addition network on fresh `config.bits`-bit problems until every
    held-out bit is confidently right (or the epochs or time budget run out), then measure
    whole-sum accuracy at 8, 16, 32 and 64 bits. `resume`, `callbacks` and `strategy` as for
    `train_language_model`."""
    strategy = strategy or tf.distribute.get_strategy()
    config, run_dir, state = _run(config, logdir, run_name, resume, strategy)
    with distribute.writing_place(run_dir, strategy) as place:
        if not resume:
            runs.create(place, config)
        model = _model(
            run_dir,
            state,
            config.seed,
            strategy,
            lambda: build_binary_addition_model(
                config.cell, units=config.units, learning_rate=config.lr
            ),
        )
        held_out = addition_problems(1000, config.bits, seed=config.seed + 1)
        longer = tuple(bits for bits in ADDITION_WIDTHS if bits > config.bits)
        callbacks = [
            *callbacks,
            _tensorboard(place),
            AdditionWidths(place, longer, config.seed),
            HParams(place, dict(config.__dict__)),
            StopWhenConfident(*held_out, tolerance=0.005),
        ]
        result = _fit(
            model,
            run_dir,
            place,
            state,
            config,
            callbacks,
            max(1, config.problems_per_epoch // config.batch_size),
            lambda batch: distribute.shard_by_data(_addition_batches(config, batch)),
            validation_data=held_out,
            shuffle=False,
            verbose=verbose,
        )
        best_file = place / runs.MODEL
        if result.stopped is None and best_file.is_file():
            result.report = _addition_report(runs.load_model(best_file), config, longer)
    return result


def _addition_report(
    best: keras.Model, config: AdditionConfig, longer: tuple[int, ...]
) -> dict[int, dict[str, Any]]:
    """Whole-sum accuracy on 1,000 new problems at each width, with three examples."""
    report = {}
    for bits in sorted({config.bits, *longer}):
        x, y = addition_problems(1000, bits, seed=config.seed + 2 + bits)
        a, b = bits_to_ints(x[..., 0]), bits_to_ints(x[..., 1])
        predicted = bits_to_ints(best.predict(x, batch_size=1000, verbose=0))
        truth = bits_to_ints(y)
        report[bits] = {
            "sum_accuracy": float(np.mean(predicted == truth)),
            "examples": [
                (int(a[i]), int(b[i]), int(predicted[i]), int(truth[i])) for i in range(3)
            ],
        }
    return report
