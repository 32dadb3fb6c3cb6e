"""The two model families the classic tutorials teach, built from this package's layers.

    language model   ids (B, T) -> Embedding -> [one of CELLS] x L -> Dense -> logits
    binary addition  bits (B, T, 2) -> one recurrent layer -> Dense(sigmoid) -> sum bits (B, T, 1)

Both come back compiled with defaults that work, and both take any sequence length at call
time. Their metrics are real Keras metrics, so they show in `fit`'s logs and in TensorBoard.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from unfold_rnn import _checks
from unfold_rnn.cells import state_sizes
from unfold_rnn.layers import GRU, LSTM, MinGRU, MinLSTM, VanillaRNN

CELLS: dict[str, type] = {
    "vanilla": VanillaRNN,
    "gru": GRU,
    "lstm": LSTM,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}


def recurrent_layer_class(cell: str | type) -> type:
    """The layer class for a cell name (a key of `CELLS`); a class is returned as is,
    so a Keras built-in (e.g. `keras.layers.LSTM`) can stand in for comparisons."""
    if isinstance(cell, type):
        return cell
    if cell not in CELLS:
        raise ValueError(f"Unknown cell {cell!r}; choose one of {', '.join(CELLS)}.")
    return CELLS[cell]


# -- metrics -----------------------------------------------------------------------------------


class _MeanCrossEntropy(keras.metrics.Mean):
    """The mean next-character cross-entropy over every predicted character, in nats."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        super().update_state(nats, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="unfold_rnn")
class BitsPerCharacter(_MeanCrossEntropy):
    """Mean cross-entropy in bits per character: nats / ln 2 (from logits)."""

    def __init__(self, name: str = "bits_per_char", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return super().result() / math.log(2.0)


@keras.saving.register_keras_serializable(package="unfold_rnn")
class Perplexity(_MeanCrossEntropy):
    """exp(mean cross-entropy in nats): the effective number of equally likely next characters."""

    def __init__(self, name: str = "perplexity", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def result(self) -> tf.Tensor:
        return tf.exp(super().result())


def _whole_sequence_correct(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    right = tf.equal(tf.cast(y_pred > 0.5, y_true.dtype), y_true)  # (B, T, 1)
    return tf.cast(tf.reduce_all(right, axis=[1, 2]), tf.float32)  # (B,)


@keras.saving.register_keras_serializable(package="unfold_rnn")
class WholeSequenceAccuracy(keras.metrics.MeanMetricWrapper):
    """The fraction of sequences whose every bit is right (for addition: the whole sum)."""

    def __init__(self, name: str = "sum_accuracy", dtype: Any = None) -> None:
        super().__init__(_whole_sequence_correct, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


# -- builders ----------------------------------------------------------------------------------


def _sequence_dropout(rate: float, name: str) -> keras.layers.Dropout:
    """Dropout on (B, T, features) with one mask per sequence: (B, 1, features), broadcast
    over time (a None in `noise_shape` takes the input's size)."""
    return keras.layers.Dropout(rate, noise_shape=(None, 1, None), name=name)


def build_language_model(
    vocab_size: int,
    cell: str | type = "lstm",
    units: int = 256,
    num_layers: int = 2,
    embedding_dim: int = 64,
    dropout: float = 0.0,
    learning_rate: float = 2e-3,
    clipnorm: float | None = 5.0,
    compile: bool = True,
    optimizer: keras.optimizers.Optimizer | None = None,
    name: str | None = None,
    jit_compile: bool | None = None,
) -> keras.Model:
    """A character-level language model: ids (B, T) -> next-character logits (B, T, vocab).

    Embedding -> `num_layers` recurrent layers (all returning sequences) -> Dense. With
    `dropout`, a Dropout layer follows the embedding and each recurrent layer (the
    non-recurrent connections, as in Zaremba et al. 2014), with one mask per sequence, the
    same at every time step (variational dropout, Gal & Ghahramani 2016, as the layers' own
    `dropout`): per-step masks would cost a random number per activation (docs/design.md).

    Compiled (unless `compile=False`) with Adam at `learning_rate`, gradients clipped to a
    global norm of `clipnorm`, sparse cross-entropy from logits, and the metrics accuracy,
    bits per character and perplexity. Pass `optimizer` to use another; call `compile` again
    to change anything else. The whole training step is compiled with XLA (`jit_compile`),
    which Keras leaves off on CPU-only machines (docs/performance.md).

    Args:
        vocab_size: number of characters (`len(vocab)`).
        cell: "vanilla", "gru", "lstm", "mingru" or "minlstm" (or a layer class, e.g.
            `keras.layers.LSTM`).
        units: size of each recurrent layer's state.
        num_layers: recurrent layers stacked.
        embedding_dim: size of each character's embedding.
        dropout: rate of the Dropout layers, in [0, 1).
        jit_compile: compile training and evaluation with XLA; by default on, except within a
            `tf.distribute` strategy's scope, where XLA cannot place the replicas' variables
            (Keras turns it off there too). The layers compile their own time loop anyway.
    """
    vocab_size = _checks.positive_int("vocab_size", vocab_size)
    num_layers = _checks.positive_int("num_layers", num_layers)
    units = _checks.positive_int("units", units)
    embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
    dropout = _checks.rate("dropout", dropout)
    layer_class = recurrent_layer_class(cell)

    ids = keras.Input((None,), dtype="int32", name="ids")  # (B, T)
    h = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)  # (B, T, E)
    for i in range(num_layers):
        if dropout:
            h = _sequence_dropout(dropout, f"dropout_{i}")(h)
        h = layer_class(units, return_sequences=True, name=f"rnn_{i}")(h)  # (B, T, H)
    if dropout:
        h = _sequence_dropout(dropout, f"dropout_{num_layers}")(h)
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(h)  # (B, T, V)
    model = keras.Model(ids, logits, name=name or f"char_{_cell_name(cell)}")
    if compile:
        model.compile(
            optimizer=optimizer or keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                BitsPerCharacter(),
                Perplexity(),
            ],
            jit_compile=whole_step_xla() if jit_compile is None else jit_compile,
        )
    return model


def whole_step_xla() -> bool:
    """Whether a training step may be compiled with XLA as a whole: not within a
    `tf.distribute` strategy's scope, where XLA cannot place the replicas' variables (Keras
    turns it off there too)."""
    return not tf.distribute.has_strategy()


@keras.saving.register_keras_serializable(package="unfold_rnn")
class InitialStateNoise(keras.layers.Layer):
    """Initial states for a recurrent layer: zeros at inference; in training, state i is drawn
    from N(0, stddevs[i]^2). Called on the sequences, only for their batch size.

    Args:
        state_sizes: the recurrent layer's state sizes (`[units]`, LSTM `[units, units]`).
        stddevs: one standard deviation per state.
        seed: for the draws.
    """

    def __init__(
        self,
        state_sizes: list[int],
        stddevs: list[float],
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(stddevs) != len(state_sizes) or any(not s >= 0 for s in stddevs):
            raise ValueError(
                f"Give one standard deviation >= 0 per state ({len(state_sizes)}); "
                f"got {list(stddevs)}."
            )
        self.state_sizes = [int(size) for size in state_sizes]
        self.stddevs = [float(s) for s in stddevs]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, sequences: tf.Tensor, training: bool | None = False) -> list[tf.Tensor]:
        batch = tf.shape(sequences)[0]
        states = []
        for size, stddev in zip(self.state_sizes, self.stddevs, strict=True):
            if training and stddev > 0:
                states.append(
                    keras.random.normal(
                        (batch, size),
                        stddev=stddev,
                        dtype=self.compute_dtype,
                        seed=self.seed_generator,
                    )
                )
            else:
                states.append(tf.zeros((batch, size), self.compute_dtype))
        return states

    def compute_output_shape(self, sequences_shape: Any) -> list[tuple]:
        return [(sequences_shape[0], size) for size in self.state_sizes]

    def get_config(self) -> dict[str, Any]:
        config = {"state_sizes": self.state_sizes, "stddevs": self.stddevs, "seed": self.seed}
        return {**super().get_config(), **config}


def build_binary_addition_model(
    cell: str | type = "lstm",
    units: int = 16,
    learning_rate: float = 1e-2,
    initial_state_noise: tuple[float, float] = (0.5, 2.0),
    compile: bool = True,
    name: str | None = None,
) -> keras.Model:
    """The network that learns to add: bits (B, T, 2) -> probabilities of the sum's bits
    (B, T, 1), least significant bit first, for any number of steps T.

    One recurrent layer reads a's and b's bits at each step; to get the sum right it must
    carry a 1 from step to step. Compiled with Adam, binary cross-entropy, and the metrics
    bit accuracy and whole-sum accuracy.

    Args:
        cell: a key of `CELLS` (or a layer class).
        units: size of the recurrent state.
        learning_rate: Adam's.
        initial_state_noise: standard deviations of the hidden state h_0 and (LSTM only) of
            the cell state c_0 that each training sequence starts from; at inference the
            states start at zero. Trained from zeros on 8-bit sums, networks tend to lean on
            slowly drifting units (in an LSTM, cell units that never forget and count), whose
            values on longer sums lie outside anything seen in training, and fail there.
            Starting from noise, such a unit carries noise it cannot remove, so the carry
            goes to units that are rewritten at every step, and the model adds numbers of any
            length (benchmarks/binary_addition.py measures it). (0, 0) turns this off.
    """
    units = _checks.positive_int("units", units)
    rnn = recurrent_layer_class(cell)(units, return_sequences=True, name="rnn")
    sizes = state_sizes(rnn.cell)
    noise = InitialStateNoise(sizes, list(initial_state_noise)[: len(sizes)], name="initial_state")
    bits = keras.Input((None, 2), name="bits")  # (B, T, 2)
    h = rnn(bits, initial_state=noise(bits))  # (B, T, H)
    sum_bits = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="sum_bits")(h)
    model = keras.Model(bits, sum_bits, name=name or f"adder_{_cell_name(cell)}")
    if compile:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.BinaryAccuracy(name="bit_accuracy"), WholeSequenceAccuracy()],
        )
    return model


def _cell_name(cell: str | type) -> str:
    return cell if isinstance(cell, str) else cell.__name__.lower()
