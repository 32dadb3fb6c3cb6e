"""Shared fixtures: every kind of recurrent layer next to its Keras twin, the oracle."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

import unfold_rnn


@dataclass(frozen=True)
class Kind:
    """One of our layers, the Keras built-in it must match, and the arguments for both."""

    name: str
    ours: type
    theirs: type
    ours_cell: type
    theirs_cell: type
    num_states: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def pair(self, units: int, **kwargs: Any) -> tuple[keras.layers.Layer, keras.layers.Layer]:
        return (
            self.ours(units, **self.kwargs, **kwargs),
            self.theirs(units, **self.kwargs, **kwargs),
        )


KINDS = {
    k.name: k
    for k in [
        Kind(
            "vanilla",
            unfold_rnn.VanillaRNN,
            keras.layers.SimpleRNN,
            unfold_rnn.VanillaCell,
            keras.layers.SimpleRNNCell,
            1,
        ),
        Kind(
            "gru",
            unfold_rnn.GRU,
            keras.layers.GRU,
            unfold_rnn.GRUCell,
            keras.layers.GRUCell,
            1,
            {"reset_after": True},
        ),
        Kind(
            "gru_reset_before",
            unfold_rnn.GRU,
            keras.layers.GRU,
            unfold_rnn.GRUCell,
            keras.layers.GRUCell,
            1,
            {"reset_after": False},
        ),
        Kind(
            "lstm",
            unfold_rnn.LSTM,
            keras.layers.LSTM,
            unfold_rnn.LSTMCell,
            keras.layers.LSTMCell,
            2,
        ),
    ]
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    return KINDS[request.param]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def randomize_weights(layer: keras.layers.Layer, rng: np.random.Generator) -> list[np.ndarray]:
    """Give every weight (biases too, so their paths are tested) random values; return them."""
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    return weights


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")
