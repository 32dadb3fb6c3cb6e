"""unfold_rnn: Vanilla (Elman), GRU and LSTM written from scratch as Keras 3 layers whose time
loop is `tf.scan`, drop-in beside `keras.layers.SimpleRNN`, `GRU` and `LSTM`."""

from unfold_rnn.cells import GRUCell, LSTMCell, VanillaCell
from unfold_rnn.layers import GRU, LSTM, Unfold, VanillaRNN

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "Unfold",
    "VanillaCell",
    "VanillaRNN",
    "__version__",
]
