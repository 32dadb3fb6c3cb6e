"""Keras callbacks for training runs."""

from __future__ import annotations

import time
from typing import Any

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stop `fit` at the end of the first epoch after `seconds` of training.

    Only training counts: the clock pauses while `fit` evaluates on validation data. Each
    epoch's end is recorded in `history` as (training seconds so far, the epoch's logs), which
    gives curves of validation loss against training time.

    Args:
        seconds: the training time allowed; None never stops (it only records).
    """

    def __init__(self, seconds: float | None) -> None:
        super().__init__()
        if seconds is not None and seconds <= 0:
            raise ValueError(f"The time budget must be positive; got {seconds!r} seconds.")
        self.seconds = seconds
        self.elapsed = 0.0
        self.history: list[tuple[float, dict[str, float]]] = []
        self._started = self._last_batch_end = 0.0

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
