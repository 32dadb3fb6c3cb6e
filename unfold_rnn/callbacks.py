"""Keras callbacks for training runs: time budgets, TensorBoard extras, checkpoints."""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from unfold_rnn import runs
from unfold_rnn.data import CharVocab, addition_problems
from unfold_rnn.inspection import saturation
from unfold_rnn.sampling import Sampler
from unfold_rnn.stepper import LanguageModelStepper


class TimeBudget(keras.callbacks.Callback):
    """Stop `fit` at the end of the first epoch after `seconds` of training.

    Only training counts: the clock pauses while `fit` evaluates on validation data. Each
    epoch's end is recorded in `history` as (training seconds so far, the epoch's logs), which
    gives curves of validation loss against training time.

    Args:
        seconds: the training time allowed; None never stops (it only records).
        elapsed: training seconds already spent (by the run this one resumes).
    """

    def __init__(self, seconds: float | None, elapsed: float = 0.0) -> None:
        super().__init__()
        if seconds is not None and seconds <= 0:
            raise ValueError(f"The time budget must be positive; got {seconds!r} seconds.")
        self.seconds = seconds
        self.elapsed = elapsed  # as of the last epoch's end
        self.history: list[tuple[float, dict[str, float]]] = []
        self._started = self._last_batch_end = 0.0

    def training_seconds(self) -> float:
        """Training time so far, the current epoch's steps included."""
        return self.elapsed + max(0.0, self._last_batch_end - self._started)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._started = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # From the epoch's start to its last training batch: validation, which follows it,
        # is left out whatever other callbacks do around it.
        self.elapsed += self._last_batch_end - self._started
        self.history.append((self.elapsed, {k: float(v) for k, v in (logs or {}).items()}))
        if self.seconds is not None and self.elapsed >= self.seconds:
            self.model.stop_training = True


class _Summaries(keras.callbacks.Callback):
    """A callback that writes its own summaries into the run's `train/` or `validation/`."""

    def __init__(self, run_dir: str | Path, subdir: str) -> None:
        super().__init__()
        self._writer_dir = str(Path(run_dir) / subdir)
        self._writer: tf.summary.SummaryWriter | None = None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Summaries written inside go to this callback's directory, always: Keras's own
        TensorBoard callback, given a step-level update_freq, wraps training in a
        `record_if` that would silently drop them."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._writer_dir)
        with self._writer.as_default(), tf.summary.record_if(True):
            yield

    def on_train_end(self, logs: Any = None) -> None:
        if self._writer is not None:
            self._writer.flush()


class StepSummaries(_Summaries):
    """Every `every` steps: the training logs (loss and metrics, as `batch_<name>`), the
    learning rate, tokens per second, and the global gradient norm, measured on a fresh
    training batch (one extra forward and backward pass per `every` steps)."""

    def __init__(
        self, run_dir: str | Path, every: int, tokens_per_batch: int, batches: Iterator
    ) -> None:
        super().__init__(run_dir, "train")
        self.every, self.tokens_per_batch, self._batches = every, tokens_per_batch, batches
        self._clock, self._steps = 0.0, 0  # training steps since the clock was started
        self._gradient_norm: Callable | None = None

    def on_train_begin(self, logs: Any = None) -> None:
        model = self.model

        @tf.function
        def gradient_norm(x, y):
            with tf.GradientTape() as tape:
                loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
            return tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables))

        self._gradient_norm = gradient_norm

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        # Restarted here so that validation and epoch-end work are never counted.
        self._clock, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._steps += 1
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        elapsed = time.perf_counter() - self._clock
        tokens_per_second = self._steps * self.tokens_per_batch / elapsed
        norm = float(self._gradient_norm(*next(self._batches)))
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        with self.writing():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"batch_{name}", value, step=step)
            tf.summary.scalar("batch_learning_rate", learning_rate, step=step)
            tf.summary.scalar("tokens_per_second", tokens_per_second, step=step)
            tf.summary.scalar("gradient_global_norm", norm, step=step)
        self._clock, self._steps = time.perf_counter(), 0  # the measuring is not training


class TextSamples(_Summaries):
    """At the end of every `every` epochs, a generated text in TensorBoard's Text tab."""

    def __init__(
        self,
        run_dir: str | Path,
        vocab: CharVocab,
        prime: str,
        temperature: float = 0.8,
        length: int = 400,
        every: int = 1,
    ) -> None:
        super().__init__(run_dir, "validation")
        self.vocab, self.prime, self.temperature = vocab, prime, temperature
        self.length, self.every = length, every
        self._sampler: Sampler | None = None

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if (epoch + 1) % self.every:
            return
        if self._sampler is None:
            self._sampler = Sampler(self.model, self.vocab)
        text = self._sampler.generate(
            self.prime, self.length, temperature=self.temperature, seed=epoch
        )[0]
        heading = f"prime {self.prime!r}, temperature {self.temperature}, epoch {epoch + 1}"
        block = "\n".join("    " + line for line in (self.prime + text).splitlines())
        with self.writing():
            tf.summary.text("sample", f"{heading}\n\n{block}", step=epoch)


class GateStatistics(_Summaries):
    """At each epoch's end, over a fixed batch: for every recurrent layer and gate, the
    histogram of its activations, their mean, and the fractions left (< 0.1) and right
    (> 0.9) saturated; also histograms of the hidden (and cell) states."""

    def __init__(self, run_dir: str | Path, ids: np.ndarray) -> None:
        super().__init__(run_dir, "validation")
        self.ids = ids
        self._stepper: LanguageModelStepper | None = None

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self._stepper is None:  # the model's parts do not change during fit
            self._stepper = LanguageModelStepper(self.model)
        with self.writing():
            for recorded in self._stepper.activations(self.ids):
                for name, values in {**recorded.states, **recorded.gates}.items():
                    tag = f"activations/{recorded.layer}/{name}"
                    tf.summary.histogram(tag, values, step=epoch)
                for name, values in recorded.gates.items():
                    left, right = saturation(values)
                    tag = f"gates/{recorded.layer}/{name}"
                    tf.summary.scalar(f"{tag}/mean", float(values.mean()), step=epoch)
                    tf.summary.scalar(f"{tag}/left_saturated", left, step=epoch)
                    tf.summary.scalar(f"{tag}/right_saturated", right, step=epoch)


class HParams(_Summaries):
    """The run's hyperparameters for TensorBoard's HParams tab, so runs compare side by side;
    their metrics are the epoch scalars Keras's TensorBoard callback writes."""

    def __init__(self, run_dir: str | Path, hparams: dict[str, Any]) -> None:
        super().__init__(run_dir, ".")
        self.hparams = {k: v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))}

    def on_train_begin(self, logs: Any = None) -> None:
        metrics = [
            hp.Metric("epoch_loss", group="validation", display_name="validation loss"),
            hp.Metric("epoch_loss", group="train", display_name="training loss"),
        ]
        with self.writing():
            hp.hparams_config(hparams=[hp.HParam(k) for k in self.hparams], metrics=metrics)
            hp.hparams(self.hparams, trial_id=Path(self._writer_dir).parent.name)


class Stopped(Exception):  # noqa: N818 - a way out of fit, not an error
    """Training stopped before its end, with the run saved as far as it is good."""

    def __init__(self, message: str, signal_number: int | None = None) -> None:
        super().__init__(message)
        self.signal_number = signal_number  # when a signal asked for the stop


class RunCheckpoints(keras.callbacks.Callback):
    """Keeps the run resumable, whatever ends it (`runs.save_checkpoint` says how).

    - A checkpoint every `every` training steps (0: none between epochs) and at each epoch's
      end, and `model.keras` at an epoch's end when the validation loss is the best so far.
    - After `request_stop()` (signal handlers call it), a checkpoint at the next step's end
      (at the epoch's end if that was its last step), then `Stopped` is raised: nothing done
      is lost, and no part-epoch is validated.
    - A loss that is not finite raises `Stopped` at once, keeping the last good files.
    - A checkpoint within an epoch keeps the metrics' running sums; resumed from it, they
      are added back, so that epoch's averages cover all of its steps.

    `Stopped` leaves `fit` without its `on_train_end`; whoever catches it calls that.

    Args:
        run_dir: the run directory.
        state: the run's state as of its last checkpoint; updated with each new one.
        every: training steps between checkpoints within an epoch.
        clock: training seconds so far, recorded in the state (`TimeBudget.training_seconds`).
    """

    def __init__(
        self,
        run_dir: str | Path,
        state: runs.State,
        every: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir, self.state, self.every, self.clock = Path(run_dir), state, every, clock
        self.step = state.step  # training steps completed, saved or not
        self.stop_signal: int | None = None
        # The metrics' sums from the steps of this epoch before the checkpoint resumed from.
        self._earlier_metrics = list(state.epoch_metrics)

    def request_stop(self, signal_number: int) -> None:
        self.stop_signal = signal_number

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.step += 1
        if self._earlier_metrics:
            self._add_earlier_metrics()
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise Stopped(
                f"the training loss was not finite at step {self.step} (epoch "
                f"{self.state.epoch + 1}); training stopped, and the run is kept as it was "
                f"at step {self.state.step}"
            )
        if batch + 1 == self.params.get("steps"):
            return  # the epoch's last step: its end saves (and stops, if asked to)
        if self.stop_signal is not None:
            self._save()
            raise Stopped(self._stop_message(), self.stop_signal)
        if self.every and self.step % self.every == 0:
            self._save()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        loss = logs.get("val_loss", logs.get("loss"))
        if loss is None or not math.isfinite(loss):
            raise Stopped(
                f"the {'validation ' if 'val_loss' in logs else ''}loss was not finite after "
                f"epoch {epoch + 1}; training stopped, and the run is kept as it was at step "
                f"{self.state.step}"
            )
        self._save(epochs_done=epoch + 1, val_loss=loss)
        if self.stop_signal is not None:
            raise Stopped(self._stop_message(), self.stop_signal)

    def _add_earlier_metrics(self) -> None:
        """Add the sums and counts of the epoch's steps before the resumed checkpoint to the
        metrics (Keras reset them as the epoch began, and a metric exists only after its
        first update, so this waits for the first step's end). From then on the running
        averages, and the epoch's, are those of a run never stopped. Under a strategy with
        several replicas the metrics' variables are per replica; the averages then cover the
        resumed steps only, as they did before."""
        earlier, self._earlier_metrics = self._earlier_metrics, []
        variables = runs.metric_variables(self.model)
        if self.model.distribute_strategy.num_replicas_in_sync > 1 or len(variables) != len(
            earlier
        ):
            return
        for variable, value in zip(variables, earlier, strict=True):
            variable.assign_add(np.reshape(np.array(value, dtype=variable.dtype), variable.shape))

    def _check_weights(self) -> None:
        """A step's loss is computed before its update: the update can still have made the
        weights non-finite (an overflowing gradient). Such weights are never saved."""
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            raise Stopped(
                f"the weights were not finite after step {self.step}; training stopped, and "
                f"the run is kept as it was at step {self.state.step}"
            )

    def _save(self, epochs_done: int | None = None, val_loss: float | None = None) -> None:
        """A checkpoint; at an epoch's end also `model.keras` if `val_loss` is the best."""
        self._check_weights()
        if epochs_done is not None:
            self.state.epoch = epochs_done
        if val_loss is not None and (
            self.state.best_val_loss is None or val_loss < self.state.best_val_loss
        ):
            runs.save_model(self.model, self.run_dir / runs.MODEL)
            self.state.best_val_loss = float(val_loss)
        self.state.step = self.step
        self.state.epoch_metrics = (
            []
            if epochs_done is not None
            else [np.ravel(v.numpy()).tolist() for v in runs.metric_variables(self.model)]
        )
        if self.clock is not None:
            self.state.training_seconds = self.clock()
        runs.save_checkpoint(self.run_dir, self.model, self.state)

    def _stop_message(self) -> str:
        name = signal.Signals(self.stop_signal).name if self.stop_signal else "a request"
        return f"stopped by {name} after step {self.step}, and saved"


class StopWhenConfident(keras.callbacks.Callback):
    """Stop once no held-out output is further than `tolerance` from its target. For binary
    addition, right is not enough to generalize to longer sums; confidently right is."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, tolerance: float) -> None:
        super().__init__()
        self.inputs, self.targets, self.tolerance = inputs, targets, tolerance

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        predicted = self.model.predict(self.inputs, batch_size=len(self.inputs), verbose=0)
        if np.abs(predicted - self.targets).max() < self.tolerance:
            self.model.stop_training = True


class AdditionWidths(_Summaries):
    """Each epoch: bit and whole-sum accuracy on new problems of each width in `widths`."""

    def __init__(self, run_dir: str | Path, widths: tuple[int, ...], seed: int) -> None:
        super().__init__(run_dir, "validation")
        self.problems = {bits: addition_problems(500, bits, seed=seed + bits) for bits in widths}

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        with self.writing():
            for bits, (x, y) in self.problems.items():
                right = (self.model.predict(x, batch_size=len(x), verbose=0) > 0.5) == y
                tf.summary.scalar(f"epoch_bit_accuracy_{bits}bits", right.mean(), step=epoch)
                whole = right.all(axis=(1, 2)).mean()
                tf.summary.scalar(f"epoch_sum_accuracy_{bits}bits", whole, step=epoch)
