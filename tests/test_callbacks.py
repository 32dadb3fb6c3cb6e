"""Training callbacks."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from unfold_rnn.callbacks import TimeBudget


class _SlowValidation(keras.callbacks.Callback):
    """Makes validation take a known, long time, which the budget must not count."""

    def on_test_batch_end(self, batch, logs=None):
        time.sleep(0.3)


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


def test_time_budget_stops_fit_and_counts_only_training():
    x, y = np.ones((8, 3)), np.ones((8, 1))
    budget = TimeBudget(seconds=1e-9)  # spent by the first epoch
    history = _model().fit(x, y, epochs=50, validation_data=(x, y), verbose=0, callbacks=[budget])
    assert len(history.history["loss"]) == 1
    assert [logs["val_loss"] for _, logs in budget.history] == history.history["val_loss"]

    slow = TimeBudget(seconds=None)
    start = time.perf_counter()
    _model().fit(
        x, y, epochs=3, validation_data=(x, y), verbose=0, callbacks=[_SlowValidation(), slow]
    )
    wall = time.perf_counter() - start
    assert len(slow.history) == 3
    assert slow.elapsed < wall - 0.9  # three 0.3 s validations happened, none was counted
    times = [seconds for seconds, _ in slow.history]
    assert times == sorted(times)


def test_time_budget_must_be_positive():
    with pytest.raises(ValueError, match="must be positive"):
        TimeBudget(0)
