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

from unfold_rnn.cells import state_sizes
from unfold_rnn.data import text_windows

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

    For a model as `build_language_model` makes it, with our layers or Keras's: one chain of
    layers from ids (B, T) to logits (B, T, V). Each recurrent layer gets a twin that also
    returns its final states; `loss` copies the model's current weights into the twins, so
    one reader can follow a model through training. Dropout is off (as in evaluation).
    """

    def __init__(self, model: keras.Model) -> None:
        self._model = model
        self._layers = [layer for layer in model.layers if not _is_input(layer)]
        self._twins = {}
        for layer in self._layers:
            if hasattr(layer, "cell"):
                config = {
                    **layer.get_config(),
                    "return_sequences": True,
                    "return_state": True,
                    "stateful": False,  # the reader carries the states itself
                }
                twin = type(layer).from_config(config)
                twin.build(layer.input.shape)
                self._twins[layer.name] = twin
        if not self._twins:
            raise ValueError("The model has no recurrent layers whose states could carry.")
        self._read = tf.function(self._read_fn, jit_compile=True, reduce_retracing=True)
        self._checked = False  # whether a first window has shown the model to be one chain

    def _read_fn(self, ids: tf.Tensor, targets: tf.Tensor, states: dict) -> tuple:
        """One window (B, W) from `states`: the sum of its cross-entropies, its logits, and
        the states after it."""
        h, new_states = ids, {}
        for layer in self._layers:
            twin = self._twins.get(layer.name)
            if twin is None:
                h = layer(h, training=False)
            else:
                h, *new_states[layer.name] = twin(h, initial_state=states[layer.name])
        logits = tf.cast(h, tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.reduce_sum(losses), logits, new_states

    def _zero_states(self, batch_size: int) -> dict:
        return {
            name: [tf.zeros((batch_size, size)) for size in state_sizes(twin.cell)]
            for name, twin in self._twins.items()
        }

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
        for layer in self._layers:
            if layer.name in self._twins:
                self._twins[layer.name].set_weights(layer.get_weights())
        streams = usable_streams(streams, len(ids))
        length = (len(ids) - 1) // streams  # characters predicted per part
        used = ids[: streams * length + 1]
        inputs = used[:-1].reshape(streams, length)  # row i: the i-th part
        targets = used[1:].reshape(streams, length)  # each character's next one
        states = self._zero_states(streams)
        total = 0.0
        for start in range(0, length, window):
            cut = slice(start, start + window)
            if not self._checked:
                window_total, states = self._read_first(inputs[:, cut], targets[:, cut], states)
            else:
                window_total, _, states = self._read(inputs[:, cut], targets[:, cut], states)
            total += float(window_total)
        return total / inputs.size

    def _read_first(self, ids: np.ndarray, targets: np.ndarray, states: dict) -> tuple:
        """The first window a reader reads, checked: from zero states the chain of layers must
        give the model's own logits, or the model is not one chain and the reader would
        measure something else."""
        not_a_chain = ValueError(
            "This model is not one chain of layers from character ids to logits (as "
            "build_language_model makes it), so it cannot be read as a stream."
        )
        try:
            total, logits, states = self._read(ids, targets, states)
        except (ValueError, TypeError) as error:
            raise not_a_chain from error
        if not np.allclose(logits, self._model(ids, training=False), atol=1e-2, rtol=1e-2):
            raise not_a_chain
        self._checked = True  # the layers do not change, so one check serves every call
        return total, states


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


def _is_input(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)
