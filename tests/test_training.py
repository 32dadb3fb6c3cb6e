"""Training runs: resuming ends bit-identical to a run never stopped; signals save before
stopping; a loss or weights that are not finite stop the run with its last good files kept;
and, in subprocesses killed at random moments, the same holds for SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import UNFOLD_RNN

from unfold_rnn import runs
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.training import train_binary_addition, train_language_model

# Whole training runs, signals, and processes killed and resumed.
pytestmark = pytest.mark.slow


def tiny_lm(text_file: Path, **changes) -> LanguageModelConfig:
    """Small enough to train in seconds; dropout on, so that random masks must resume too."""
    settings = dict(
        text=str(text_file),
        cell="lstm",
        units=12,
        layers=2,
        embedding_dim=6,
        seq_len=16,
        batch_size=8,
        steps_per_epoch=5,
        epochs=3,
        dropout=0.25,
    )
    return LanguageModelConfig(**{**settings, **changes})


@pytest.fixture(autouse=True)
def ctrl_c_interrupts():
    """Ctrl-C as in a terminal, even where this process was started ignoring it (a
    background job), which training respects; and as it was afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def saved_numbers(run_dir: Path) -> list[np.ndarray]:
    """Everything the final checkpoint holds: weights, optimizer variables (Adam's moments,
    the step count), and the random generators' states."""
    state = runs.read_state(run_dir)
    model = runs.load_checkpoint(run_dir, state)
    return [v.numpy() for v in model.variables + model.optimizer.variables]


def epoch_scalars(run_dir: Path) -> dict[tuple[str, int], float]:
    """The training metrics TensorBoard holds for each epoch (loss, accuracy, bits per
    character, perplexity), from every events file the run wrote, resumed parts included."""
    import tensorflow as tf

    return {
        (value.tag, event.step): float(tf.make_ndarray(value.tensor))
        for path in sorted((run_dir / "train").glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag.startswith("epoch_") and value.tag != "epoch_learning_rate"
    }


def assert_bit_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


class AtStep(keras.callbacks.Callback):
    """Calls `action(model)` at the end of training step `step` (counted from 1 over the
    whole fit, whatever epoch it falls in)."""

    def __init__(self, step: int, action) -> None:
        super().__init__()
        self.step, self.action, self._seen = step, action, 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen == self.step:
            self.action(self.model)


def send(signal_number: int):
    return lambda model: os.kill(os.getpid(), signal_number)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, text_file) -> Path:
    logdir = tmp_path_factory.mktemp("whole")
    result = train_language_model(tiny_lm(text_file), logdir, "whole", verbose=0)
    assert result.stopped is None and result.step == 15
    return logdir / "whole"


def test_a_run_is_reproducible_bit_for_bit(tmp_path, text_file, whole_run):
    """The premise of the resume tests: the same seed gives the same numbers."""
    train_language_model(tiny_lm(text_file), tmp_path, "again", verbose=0)
    assert_bit_identical(saved_numbers(whole_run), saved_numbers(tmp_path / "again"))


@pytest.mark.parametrize("step", [2, 5, 9])  # mid-epoch, an epoch's last step, mid-epoch
def test_ctrl_c_saves_and_resume_ends_bit_identical(step, tmp_path, text_file, whole_run):
    result = train_language_model(
        tiny_lm(text_file),
        tmp_path,
        "cut",
        verbose=0,
        callbacks=[AtStep(step, send(signal.SIGINT))],
    )
    assert result.signal_number == signal.SIGINT and "SIGINT" in result.stopped
    state = runs.read_state(tmp_path / "cut")
    assert (state.step, state.epoch, state.finished) == (step, step // 5, False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back

    resumed = train_language_model(tiny_lm(text_file), tmp_path, "cut", resume=True, verbose=0)
    assert resumed.stopped is None and (resumed.step, resumed.epochs) == (15, 3)
    assert_bit_identical(saved_numbers(whole_run), saved_numbers(tmp_path / "cut"))
    whole_best = runs.load_model(whole_run / runs.MODEL).get_weights()
    assert_bit_identical(whole_best, runs.load_model(tmp_path / "cut" / runs.MODEL).get_weights())
    # The epoch cut in two still reports its averages over all five of its steps, as the
    # run never stopped does (only the order of the sums differs).
    whole, cut = epoch_scalars(whole_run), epoch_scalars(tmp_path / "cut")
    assert sorted(cut) == sorted(whole) and len(whole) >= 4 * 3
    for key, value in whole.items():
        assert cut[key] == pytest.approx(value, rel=1e-6), key


def test_sigterm_saves_too_and_periodic_checkpoints_resume(tmp_path, text_file, whole_run):
    config = tiny_lm(text_file, checkpoint_every=3)
    result = train_language_model(
        config, tmp_path, "cut", verbose=0, callbacks=[AtStep(7, send(signal.SIGTERM))]
    )
    assert result.signal_number == signal.SIGTERM and result.step == 7
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoint").iterdir()) == [
        "state.json",
        "step-000000007.keras",  # older checkpoints removed once this one was committed
    ]
    train_language_model(config, tmp_path, "cut", resume=True, verbose=0)
    # Periodic checkpoints change nothing in the numbers.
    assert_bit_identical(saved_numbers(whole_run), saved_numbers(tmp_path / "cut"))


def test_a_second_signal_stops_at_once(tmp_path, text_file, whole_run):
    """The second Ctrl-C does not wait for the save: the run keeps its last checkpoint (here
    none yet), and resuming a run with no checkpoint is starting it afresh."""
    config = tiny_lm(text_file)

    def twice(model):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train_language_model(config, tmp_path, "cut", verbose=0, callbacks=[AtStep(3, twice)])
    assert runs.read_state(tmp_path / "cut").checkpoint is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
    train_language_model(config, tmp_path, "cut", resume=True, verbose=0)
    assert_bit_identical(saved_numbers(whole_run), saved_numbers(tmp_path / "cut"))


def test_a_signal_the_process_ignores_stays_ignored(tmp_path, text_file):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup, or in a background job
    result = train_language_model(
        tiny_lm(text_file, epochs=1), tmp_path, "run", verbose=0, callbacks=[AtStep(2, send(2))]
    )
    assert result.stopped is None and result.step == 5
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def poison(model: keras.Model) -> None:
    """Make the output layer's weights NaN, as an overflowing gradient would."""
    kernel = model.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))


@pytest.mark.parametrize(
    ("step", "kept", "message"),
    [
        (6, 5, "weights were not finite after step 6"),  # found saving step 6
        (7, 6, "loss was not finite at step 8"),
    ],
)
def test_not_finite_stops_and_keeps_the_last_good_files(step, kept, message, tmp_path, text_file):
    config = tiny_lm(text_file, checkpoint_every=2)
    result = train_language_model(
        config, tmp_path, "run", verbose=0, callbacks=[AtStep(step, poison)]
    )
    assert message in result.stopped and result.signal_number is None
    run_dir = tmp_path / "run"
    state = runs.read_state(run_dir)
    assert (state.step, state.epoch, state.finished) == (kept, 1, False)
    for weights in (
        runs.load_checkpoint(run_dir, state).get_weights(),
        runs.load_model(run_dir / runs.MODEL).get_weights(),  # the epoch 1 model
    ):
        assert all(np.isfinite(w).all() for w in weights)


def test_addition_resumes_mid_epoch_bit_identical(tmp_path):
    config = AdditionConfig(units=8, bits=6, epochs=2, problems_per_epoch=96, time_budget=None)
    train_binary_addition(config, tmp_path, "whole", verbose=0)
    cut = train_binary_addition(
        config, tmp_path, "cut", verbose=0, callbacks=[AtStep(4, send(signal.SIGINT))]
    )
    assert cut.stopped and cut.step == 4 and not cut.report
    resumed = train_binary_addition(config, tmp_path, "cut", resume=True, verbose=0)
    assert resumed.step == 6 and set(resumed.report) == {6, 8, 16, 32, 64}
    assert_bit_identical(saved_numbers(tmp_path / "whole"), saved_numbers(tmp_path / "cut"))


# -- fault injection: real processes, killed at random moments -------------------------------


RUN_STEPS = 20  # 4 epochs of 5 steps


def _command(logdir: Path, text_file: Path, resume: bool, cell: str) -> list[str]:
    args = [UNFOLD_RNN, "train-lm", "--logdir", str(logdir)]
    args += ["--run-name", "run"]
    config = tiny_lm(text_file, epochs=RUN_STEPS // 5, checkpoint_every=2, cell=cell)
    for name in ("text", "cell", "units", "layers", "embedding_dim", "seq_len", "batch_size"):
        args += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    for name in ("steps_per_epoch", "epochs", "dropout", "checkpoint_every"):
        args += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return [*args, "--resume"] if resume else args  # restarted as people do: up-arrow, --resume


def _ctrl_c_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # not ignored, even if this process does


def run_with_kills(
    logdir: Path, text_file: Path, kills: int, seed: int, startup: float, cell: str = "lstm"
) -> tuple[int, list[str]]:
    """Start the run, kill it `kills` times, resuming each time as a user would, then let it
    finish. Each kill has a random target step: 0 kills at a moment drawn from the first
    `startup` seconds (importing, compiling); otherwise the kill comes up to a second after
    the run has saved that step, landing anywhere in training, validation or saving. SIGKILL
    mostly, sometimes SIGTERM or SIGINT. Returns the processes started and what each kill did."""
    chooser = random.Random(seed)
    log, processes = [], 0
    for _ in range(kills + 20):  # a kill can land before the run exists: start again
        resume = (logdir / "run" / runs.CONFIG).is_file()  # as a user would decide
        process = subprocess.Popen(
            _command(logdir, text_file, resume, cell),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
        processes += 1
        if len(log) < kills:
            how = chooser.choice([signal.SIGKILL] * 3 + [signal.SIGTERM, signal.SIGINT])
            target = chooser.randrange(0, RUN_STEPS - 4)
            delay = chooser.uniform(0.0, startup if target == 0 else 1.0)
            if target:
                _wait_for_step(logdir / "run", target, process)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(how)
            code = process.wait(timeout=300)
            state = runs.read_state(logdir / "run")
            log.append(
                f"{how.name} {delay:.1f} s after step {target}: exit {code}, saved step "
                f"{state.step}"
            )
            if state.finished:  # the kill came after the end (during the exit, perhaps)
                return processes, log
            continue
        stderr = process.communicate(timeout=600)[1].decode()
        assert process.returncode == 0, stderr
        return processes, log
    raise AssertionError(f"the run never finished: {log}")


def _wait_for_step(run_dir: Path, step: int, process: subprocess.Popen) -> None:
    while process.poll() is None:
        try:
            if runs.read_state(run_dir).step >= step:
                return
        except ValueError:
            pass  # state.json is never half-written, but the directory may be half-made
        time.sleep(0.02)


def timed_whole_run(logdir: Path, text_file: Path, cell: str = "lstm") -> tuple[float, float]:
    """Run it once untouched; return when its first checkpoint appeared and when it ended."""
    started = time.perf_counter()
    process = subprocess.Popen(
        _command(logdir, text_file, False, cell), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first = None
    while process.poll() is None:
        if first is None and (logdir / "run" / runs.STATE).is_file():
            first = time.perf_counter() - started
        time.sleep(0.05)
    assert process.returncode == 0, process.stderr.read().decode()
    return first or 0.0, time.perf_counter() - started


@pytest.mark.parametrize("cell, kills", [("lstm", 3), ("mingru", 1)])
def test_killed_at_random_moments_resume_ends_bit_identical(cell, kills, tmp_path, text_file):
    """Kills at random moments, from start-up to near the end; each resume continues the
    run, and its final checkpoint equals that of the same run never killed."""
    first, end = timed_whole_run(tmp_path / "whole", text_file, cell)
    processes, log = run_with_kills(tmp_path / "cut", text_file, kills, 7, first, cell)
    print(f"first checkpoint at {first:.1f} s, end at {end:.1f} s", *log, sep="\n")
    assert processes >= min(kills, 2) + 1, log  # at least two kills (or the one) landed in time
    assert runs.read_state(tmp_path / "cut" / "run").finished, log
    whole = saved_numbers(tmp_path / "whole" / "run")
    assert_bit_identical(whole, saved_numbers(tmp_path / "cut" / "run"))
