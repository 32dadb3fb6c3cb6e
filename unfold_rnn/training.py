"""Training runs: a configuration in, a run directory out (see `runs` for what it holds).

Both functions build the model, the data and the callbacks, then call `model.fit`. The
TensorBoard callback writes the scalars at each epoch's end and weight histograms; the
callbacks of `unfold_rnn.callbacks` add scalars every `LOG_EVERY` steps with tokens/s and the
gradient norm, text samples, gate statistics and hyperparameters (language models), or the
accuracy on longer sums (addition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from unfold_rnn import runs
from unfold_rnn.callbacks import (
    AdditionWidths,
    GateStatistics,
    HParams,
    RunCheckpoints,
    StepSummaries,
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
from unfold_rnn.models import build_binary_addition_model, build_language_model

LOG_EVERY = 20  # training steps between step-level TensorBoard scalars


@dataclass
class RunResult:
    """What a training run did."""

    run_dir: Path
    epochs: int  # epochs completed in all (resumed runs included)
    best_val_loss: float | None
    diverged_at: int | None = None  # the epoch whose loss was not finite, if any
    report: dict[str, Any] = field(default_factory=dict)  # per kind: e.g. accuracy by width


def _tensorboard(run_dir: Path) -> keras.callbacks.TensorBoard:
    # Epoch scalars and weight histograms; step-level scalars come from StepSummaries
    # (Keras's update_freq=N would drop every summary not written on a multiple of N).
    return keras.callbacks.TensorBoard(str(run_dir), histogram_freq=1)


def _saved_run(
    config: Any, logdir: str | Path, run_name: str | None
) -> tuple[Any, Path, runs.State]:
    """The configuration, directory and state of the run to resume."""
    if not run_name:
        raise ValueError("--resume needs the --run-name of the run to continue.")
    run_dir = Path(logdir) / run_name
    saved = runs.read_config(run_dir, config.kind)
    state = runs.read_state(run_dir)
    if state.epoch == 0:
        raise ValueError(f"{run_dir} has no completed epoch to resume from; start it afresh.")
    if state.finished:
        raise ValueError(f"{run_dir} has already finished its {state.epoch} epochs.")
    return saved, run_dir, state


def _finish(run_dir: Path, state: runs.State, checkpoints: RunCheckpoints) -> RunResult:
    state.finished = checkpoints.diverged_at is None
    runs.write_state(run_dir, state)
    return RunResult(run_dir, state.epoch, state.best_val_loss, checkpoints.diverged_at)


def train_language_model(
    config: LanguageModelConfig,
    logdir: str | Path = "logs",
    run_name: str | None = None,
    resume: bool = False,
    verbose: int | str = "auto",
) -> RunResult:
    """Train a character-level language model as `config` says, into `<logdir>/<run_name>`.

    With `resume`, continue the run of that name from its last completed epoch, with the
    configuration it was started with.
    """
    if resume:
        config, run_dir, state = _saved_run(config, logdir, run_name)
        vocab = runs.read_vocab(run_dir)
    else:
        config.check()
        run_dir, state = runs.new_run_dir(logdir, run_name, config), runs.State()
    text = read_text(config.text) if config.text else default_corpus()
    vocab = vocab if resume else CharVocab.from_text(text)
    # Weights and dropout from the seed; a resumed run draws dropout masks afresh (the data
    # stream is keyed by batch, so it continues exactly).
    keras.utils.set_random_seed(config.seed + state.epoch)
    data = text_data(
        text,
        config.seq_len,
        config.batch_size,
        config.val_fraction,
        seed=config.seed,
        vocab=vocab,
        skip_batches=state.epoch * config.steps_per_epoch,
    )  # the text is usable: only now is a new run directory made
    if resume:
        model = runs.load_model(run_dir / runs.LAST)
    else:
        model = build_language_model(
            len(vocab),
            cell=config.cell,
            units=config.units,
            num_layers=config.layers,
            embedding_dim=config.embedding_dim,
            dropout=config.dropout,
            learning_rate=config.lr,
        )
        runs.create(run_dir, config)
        vocab.save(run_dir / runs.VOCAB)
    first_inputs, _ = next(iter(data.validation))
    checkpoints = RunCheckpoints(run_dir, state)
    callbacks = [
        _tensorboard(run_dir),
        StepSummaries(
            run_dir,
            min(LOG_EVERY, config.steps_per_epoch),
            config.batch_size * config.seq_len,
            iter(data.train),
        ),
        TextSamples(run_dir, vocab, prime=_prime(vocab, text), every=config.sample_every),
        GateStatistics(run_dir, first_inputs.numpy()[:16]),
        HParams(run_dir, {**config.__dict__, "text": config.text or "(built-in corpus)"}),
        checkpoints,
        TimeBudget(config.time_budget),
    ]
    model.fit(
        data.train,
        steps_per_epoch=config.steps_per_epoch,
        epochs=config.epochs,
        initial_epoch=state.epoch,
        validation_data=data.validation,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )
    return _finish(run_dir, state, checkpoints)


def _prime(vocab: CharVocab, text: str) -> str:
    """A neutral start for samples: a newline if the text has one, else its first character."""
    return "\n" if "\n" in vocab.chars else text[0]


class _FreshAdditions(keras.utils.PyDataset):
    """Batches of new random problems, reproducible from (seed, epoch, batch index)."""

    def __init__(self, config: AdditionConfig, epoch: int = 0) -> None:
        super().__init__()
        self.config, self.epoch = config, epoch

    def __len__(self) -> int:
        return max(1, self.config.problems_per_epoch // self.config.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.config.seed, self.epoch, index])
        return addition_problems(self.config.batch_size, self.config.bits, seed=rng)

    def on_epoch_end(self) -> None:
        self.epoch += 1


ADDITION_WIDTHS = (8, 16, 32, 64)


def train_binary_addition(
    config: AdditionConfig,
    logdir: str | Path = "logs",
    run_name: str | None = None,
    verbose: int | str = "auto",
) -> RunResult:
    """Train the binary-addition network on fresh `config.bits`-bit problems until every
    held-out bit is confidently right (or the epochs or time budget run out), then measure
    whole-sum accuracy at 8, 16, 32 and 64 bits."""
    config.check()
    run_dir = runs.create(runs.new_run_dir(logdir, run_name, config), config)
    state = runs.State()
    keras.utils.set_random_seed(config.seed)
    model = build_binary_addition_model(config.cell, units=config.units, learning_rate=config.lr)
    held_out = addition_problems(1000, config.bits, seed=config.seed + 1)
    checkpoints = RunCheckpoints(run_dir, state)
    longer = tuple(bits for bits in ADDITION_WIDTHS if bits > config.bits)
    callbacks = [
        _tensorboard(run_dir),
        AdditionWidths(run_dir, longer, config.seed),
        HParams(run_dir, dict(config.__dict__)),
        checkpoints,
        StopWhenConfident(*held_out, tolerance=0.005),
        TimeBudget(config.time_budget),
    ]
    model.fit(
        _FreshAdditions(config),
        epochs=config.epochs,
        validation_data=held_out,
        callbacks=callbacks,
        verbose=verbose,
    )
    result = _finish(run_dir, state, checkpoints)
    best = runs.load_model(run_dir / runs.MODEL)
    for bits in sorted({config.bits, *longer}):
        x, y = addition_problems(1000, bits, seed=config.seed + 2 + bits)
        a, b = bits_to_ints(x[..., 0]), bits_to_ints(x[..., 1])
        predicted = bits_to_ints(best.predict(x, batch_size=1000, verbose=0))
        truth = bits_to_ints(y)
        result.report[bits] = {
            "sum_accuracy": float(np.mean(predicted == truth)),
            "examples": [
                (int(a[i]), int(b[i]), int(predicted[i]), int(truth[i])) for i in range(3)
            ],
        }
    return result
