"""unfold_rnn: Vanilla (Elman), GRU and LSTM written from scratch as Keras 3 layers whose time
loop is `tf.scan`, drop-in beside `keras.layers.SimpleRNN`, `GRU` and `LSTM`."""

import os as _os
import sys as _sys

__version__ = "0.2.0"

if _os.path.basename(_sys.argv[0]) == "unfold-rnn" or _sys.argv[:1] == ["-m"]:
    from unfold_rnn._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()

from unfold_rnn.cells import GRUCell, LSTMCell, VanillaCell
from unfold_rnn.data import CharVocab
from unfold_rnn.layers import GRU, LSTM, Unfold, VanillaRNN
from unfold_rnn.models import (
    BitsPerCharacter,
    InitialStateNoise,
    Perplexity,
    WholeSequenceAccuracy,
    build_binary_addition_model,
    build_language_model,
)

__all__ = [
    "GRU",
    "LSTM",
    "BitsPerCharacter",
    "CharVocab",
    "GRUCell",
    "InitialStateNoise",
    "LSTMCell",
    "Perplexity",
    "Unfold",
    "VanillaCell",
    "VanillaRNN",
    "WholeSequenceAccuracy",
    "__version__",
    "build_binary_addition_model",
    "build_language_model",
]
