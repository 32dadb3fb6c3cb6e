"""unfold_rnn: Vanilla (Elman), GRU and LSTM written from scratch as Keras 3 layers whose time
loop is `tf.scan`, drop-in beside `keras.layers.SimpleRNN`, `GRU` and `LSTM`; and minGRU and
minLSTM, unfolded by a parallel scan or the same `tf.scan`.

Importing the package has no side effects: the public names below load TensorFlow when first
used, so that the `unfold-rnn` command can quiet TensorFlow's start-up before it loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# Each public name, and the module that defines it.
_PUBLIC = {
    "GRU": "layers",
    "LSTM": "layers",
    "MinGRU": "layers",
    "MinLSTM": "layers",
    "Unfold": "layers",
    "VanillaRNN": "layers",
    "GRUCell": "cells",
    "LSTMCell": "cells",
    "VanillaCell": "cells",
    "MinGRUCell": "min_cells",
    "MinLSTMCell": "min_cells",
    "CharVocab": "data",
    "BitsPerCharacter": "models",
    "InitialStateNoise": "models",
    "Perplexity": "models",
    "WholeSequenceAccuracy": "models",
    "build_binary_addition_model": "models",
    "build_language_model": "models",
    "export": "exporting",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (`unfold_rnn.runs`), loaded when first asked for."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"unfold_rnn.{_PUBLIC[name]}"), name)
    else:
        try:
            value = importlib.import_module(f"unfold_rnn.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"unfold_rnn.{name}":
                raise
            raise AttributeError(f"module 'unfold_rnn' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:
    from unfold_rnn.cells import GRUCell, LSTMCell, VanillaCell
    from unfold_rnn.data import CharVocab
    from unfold_rnn.exporting import export
    from unfold_rnn.layers import GRU, LSTM, MinGRU, MinLSTM, Unfold, VanillaRNN
    from unfold_rnn.min_cells import MinGRUCell, MinLSTMCell
    from unfold_rnn.models import (
        BitsPerCharacter,
        InitialStateNoise,
        Perplexity,
        WholeSequenceAccuracy,
        build_binary_addition_model,
        build_language_model,
    )
