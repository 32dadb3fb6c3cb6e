"""A character-level language model's loss on a text, read two ways.

*Windows*: the text cut into consecutive windows of the training length, each read from zero
states (`keras.Model.evaluate`, as `fit` measures `val_loss`). The first characters of every
window are predicted with little or no context.

*Stream*: the text cut into `streams` contiguous parts, read side by side, window after
window, with every recurrent layer's states carried from one window to the next:

    states = zeros
    for each window w (streams, window) of the parts, in order:
        logits, states = model(w, states)       # reads on from where the last window ended
        total += cross-entropy(logits, w's next characters)

Only each part's first characters start cold. This is how a language model's loss on a text
is usually reported: char-rnn (Karpathy 2015) carries its states through its validation
batches the same way. With one stream it is the loss of reading the whole text as one
sequence.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from unfold_rnn.data import text_windows
from unfold_rnn.stepper import LanguageModelStepper, States

STREAMS = 16  # parts of the text read side by side
WINDOW = 100  # characters read per call when streaming; any length gives the same loss


def usable_streams(streams: int, length: int) -> int:
    """How many streams a text of `length` character ids is read as: `streams`, or fewer if
    the text is too short to give each at least one character to predict."""
    return min(streams, length - 1)


def window_loss(model: keras.Model, ids: np.ndarray, seq_len: int, batch_size: int) -> float:
    """Mean nats/char over every full window of `seq_len` characters of `ids`, each read
    from zero states: the number `fit` logs as `val_loss`."""
    windows = text_windows(ids, seq_len, batch_size)
    return float(model.evaluate(windows, verbose=0, return_dict=True)["loss"])


class StreamReader:
    """Reads texts as streams with a language model (see the module's docstring).

    For a model as `build_language_model` makes it, with our layers or Keras's, read through
    its `LanguageModelStepper`, which unfolds the model's own cells: one reader follows a
    model through training. Dropout is off (as in evaluation).
    """

    def __init__(self, model: keras.Model) -> None:
        self._stepper = LanguageModelStepper(model)
        self._read = tf.function(self._read_fn, jit_compile=True, reduce_retracing=True)

    def _read_fn(self, ids: tf.Tensor, targets: tf.Tensor, states: States) -> tuple:
        """One window (B, W) from `states`: the sum of its cross-entropies, and the states
        after it."""
        logits, states = self._stepper.read(ids, states)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.cast(logits, "float32"))
        return tf.reduce_sum(losses), states

    def loss(self, ids: np.ndarray, streams: int = STREAMS, window: int = WINDOW) -> float:
        """Mean nats/char of `ids` read as `streams` contiguous parts side by side, states
        carried (fewer parts if the text has fewer than `streams` + 1 characters). The last
        `streams` - 1 characters at most are left out, to make the parts equal."""
        ids = np.asarray(ids, dtype=np.int32)
        if ids.ndim != 1 or len(ids) < 2:
            raise ValueError(
                "Reading a text as a stream needs a sequence of at least 2 character ids; got "
                f"{len(ids) if ids.ndim == 1 else f'an array of shape {ids.shape}'}."
            )
        if streams < 1 or window < 1:
            raise ValueError(f"streams and window must be >= 1; got {streams} and {window}.")
        streams = usable_streams(streams, len(ids))
        length = (len(ids) - 1) // streams  # characters predicted per part
        used = ids[: streams * length + 1]
        inputs = used[:-1].reshape(streams, length)  # row i: the i-th part
        targets = used[1:].reshape(streams, length)  # each character's next one
        states = self._stepper.initial_states(streams)
        total = 0.0
        for start in range(0, length, window):
            cut = slice(start, start + window)
            window_total, states = self._read(inputs[:, cut], targets[:, cut], states)
            total += float(window_total)
        return total / inputs.size


def stream_loss(
    model: keras.Model, ids: np.ndarray, streams: int = STREAMS, window: int = WINDOW
) -> float:
    """Mean nats/char of `ids` read as `streams` streams, states carried: see `StreamReader`."""
    return StreamReader(model).loss(ids, streams, window)


def describe(nats: float) -> str:
    """'1.2345 nats/char, 1.7810 bits/char, perplexity 3.437'."""
    return (
        f"{nats:.4f} nats/char, {nats / math.log(2):.4f} bits/char, perplexity {math.exp(nats):.3f}"
    )
