"""unfold_rnn: Vanilla (Elman), GRU and LSTM written from scratch as Keras 3 layers whose time
loop is `tf.scan`, drop-in beside `keras.layers.SimpleRNN`, `GRU` and `LSTM`; and minGRU and
minLSTM, unfolded by a parallel scan or the same `tf.scan`.

Importing the package registers its layers, cells and metrics with Keras, as every Keras
extension does, so that `keras.models.load_model` reads a saved model in a fresh script. It
reads no command-line arguments and changes no setting of TensorFlow's.
"""

from unfold_rnn._version import __version__
from unfold_rnn.cells import GRUCell, LSTMCell, OnePassLSTMCell, VanillaCell
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
from unfold_rnn.web import export_web

__all__ = [
    "GRU",
    "LSTM",
    "BitsPerCharacter",
    "CharVocab",
    "GRUCell",
    "InitialStateNoise",
    "LSTMCell",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "OnePassLSTMCell",
    "Perplexity",
    "Unfold",
    "VanillaCell",
    "VanillaRNN",
    "WholeSequenceAccuracy",
    "__version__",
    "build_binary_addition_model",
    "build_language_model",
    "export",
    "export_web",
]
