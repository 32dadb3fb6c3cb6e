"""Shared fixtures: every kind of recurrent layer next to its Keras twin, the oracle."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

import unfold_rnn
from unfold_rnn import cli

# The installed `unfold-rnn` command, as a user runs it (pip puts it beside the interpreter).
UNFOLD_RNN = str(Path(sys.executable).with_name("unfold-rnn"))


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


# -- a small trained language-model run, shared by the command-line tests ------------------

TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
) * 20
TINY = ["--units", "12", "--layers", "2", "--embedding-dim", "6", "--seq-len", "16"]
TINY += ["--batch-size", "8", "--steps-per-epoch", "6"]


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory, text_file) -> Path:
    logdir = tmp_path_factory.mktemp("logs")
    args = ["train-lm", "--text", str(text_file), *TINY, "--epochs", "2"]
    assert cli.main([*args, "--logdir", str(logdir), "--run-name", "lm"]) == 0
    return logdir / "lm"


@pytest.fixture
def free_ports():
    """`free_ports(n)`: n TCP ports on 127.0.0.1 that nothing listens on, all different."""

    def find(count: int) -> list[int]:
        sockets = [socket.socket() for _ in range(count)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()

    return find
