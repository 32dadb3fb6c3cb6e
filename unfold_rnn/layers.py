"""The Keras layers: a cell unfolded over whole sequences, with Keras's arguments.

`Unfold` is Keras plumbing only: arguments, masks, direction, initial and carried states,
dropout masks and serialization. The time loop itself is chosen once, by
`unfold_rnn.unfolding.choose`: `unfold_rnn.scan.unfold` (the reference, gradients by
autodiff), `unfold_rnn.bptt.unfold` (the same `tf.scan`, with the backward pass written by
hand) or, for the minimal cells, `unfold_rnn.parallel.unfold` (a parallel scan), all
time-major:

    (B, T, D) --swap--> (T, B, D) --unfold--> (T, B, units) --swap--> (B, T, units)

The public layers `VanillaRNN`, `GRU` and `LSTM` are thin: a cell plus Keras's arguments, so
any of them replaces `keras.layers.SimpleRNN`, `keras.layers.GRU` or `keras.layers.LSTM`
(same arguments, weights and numbers) in existing Keras code. `MinGRU` and `MinLSTM` take
the same arguments, less those of a recurrent kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from unfold_rnn import _checks, unfolding
from unfold_rnn.cells import GRUCell, OnePassLSTMCell, VanillaCell
from unfold_rnn.contract import state_sizes
from unfold_rnn.min_cells import MinGRUCell, MinLSTMCell

# Keras arguments that only matter to cuDNN or to Keras's own loop. Old scripts pass them, so
# they are accepted; our loop is always our own (tf.scan), never unrolled, never cuDNN.
_IGNORED_KERAS_ARGS = ("use_cudnn", "implementation", "time_major")


@dataclass
class _CarriedStates:
    """A stateful layer's states between batches. As in Keras they are not weights (not
    saved, not in `weights`), so they are held in an object Keras's tracking passes by."""

    variables: list[keras.Variable] | None = None


def _swap_batch_and_time(x: tf.Tensor) -> tf.Tensor:
    """(B, T, ...) <-> (T, B, ...): batch-major at every boundary, time-major in the loop."""
    return tf.transpose(x, [1, 0, *range(2, x.shape.rank)])


@keras.saving.register_keras_serializable(package="unfold_rnn")
class Unfold(keras.layers.Layer):
    """A cell of this package, unfolded over time with `tf.scan`.

    The layer knows nothing of gates: the cell gives `project_inputs` (x W + b for all steps)
    and `step` (the recurrent half); the layer owns time, masks, direction, initial and
    carried states and dropout masks. The cell's output is the first of its states (h_t).

    Args:
        cell: a cell of this package, or one of your own that follows
            `unfold_rnn.contract` (docs/design.md has an example).
        return_sequences: return the output at every step, (B, T, units), rather than the
            last, (B, units).
        return_state: also return the final states, as `[output, *states]`.
        go_backwards: read the sequence from the end; outputs come in the order processed.
        stateful: carry the final states of one batch into the next (sample i to sample i);
            needs a fixed batch size. `reset_state()` sets them back to zeros.
        zero_output_for_mask: write zeros at masked steps rather than repeating the last
            output (`keras.layers.Bidirectional` turns this on when returning sequences).
        unroll: accepted for compatibility with Keras and ignored: the loop is always a scan.
        jit_compile: when the layer runs in a graph (`model.fit`, `tf.function`), compile the
            hand-written backward pass's time loops, forward and backward, with XLA (True),
            even when the model around it is not compiled (Keras does not use XLA on CPU-only
            machines unless asked), or leave them to TensorFlow's graph (False). By default
            (None) they are compiled where that was measured faster: every cell but the GRU
            (`unfold_rnn.unfolding.compiles_faster`). Each new input shape is compiled once;
            with sequence lengths that change from batch to batch, turn it off. Eager calls
            never compile, and the other unfoldings are not compiled on their own.
        backward: "handwritten" (`unfold_rnn.bptt`, backpropagation through time written by
            hand) or "autodiff" (`unfold_rnn.scan`, the reference: TensorFlow differentiates
            the `tf.scan`). By default (None) handwritten where the cell offers it, autodiff
            where it does not (GRU with reset_after=False); asking for handwritten from a
            cell that does not offer it is an error. Both give the same numbers.
        scan: "parallel" (`unfold_rnn.parallel`, an associative scan with its gradient
            written by hand, for a cell whose step is linear in h, such as `MinGRUCell`) or
            "sequential" (a `tf.scan` over the cell's step, with `backward`). The parallel
            scan is laid out for a number of steps known when the layer is traced; by
            default (None) it runs wherever the cell allows it and that number is known,
            and the sequential scan elsewhere. Asked for, it refuses an unknown length.
            Both give the same numbers.
        recompute: keep only the outputs and the states at every K-th step (K near the
            square root of the length), and run each chunk forward again in the backward
            pass: more time for much less memory at long sequences. By default (None) from
            512 steps on (`unfold_rnn.unfolding.chunk_length`), for every cell whose forward
            pass keeps more than its states (not a Vanilla RNN with tanh, sigmoid or relu);
            True at any length known when traced that has a divisor near its square root,
            False never. Only the hand-written backward pass recomputes; the same numbers
            either way.

    Call arguments:
        sequences: (batch, time, features) float tensor.
        initial_state: list of tensors, one per state, each (batch, units).
        mask: (batch, time) bool, False where a step should be skipped.
        training: whether dropout is on.

    Returns:
        The output (see `return_sequences`), then the final states if `return_state`.
    """

    def __init__(
        self,
        cell: keras.layers.Layer,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        jit_compile: bool | None = None,
        backward: str | None = None,
        scan: str | None = None,
        recompute: bool | None = None,
        **kwargs: Any,
    ) -> None:
        _checks.require_tensorflow_backend(type(self).__name__)
        for name in _IGNORED_KERAS_ARGS:
            kwargs.pop(name, None)
        jit_compile = None if jit_compile is None else bool(jit_compile)
        recompute = None if recompute is None else bool(recompute)
        chosen = unfolding.choose(cell, backward, scan, jit_compile, recompute)
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.jit_compile = jit_compile
        self.backward = backward
        self.scan = scan
        self.recompute = recompute
        self.supports_masking = True
        self._unfold = chosen  # (cell, inputs, states, mask, recurrent_mask), time-major
        self._carried = _CarriedStates()

    @property
    def states(self) -> list[keras.Variable] | None:
        """The carried states of a stateful layer (None otherwise, or before it is built)."""
        return self._carried.variables

    @property
    def state_size(self) -> list[int]:
        """One size per state, in the cell's order, as Keras's recurrent layers give it."""
        return state_sizes(self.cell)

    def get_initial_state(self, batch_size: int | tf.Tensor) -> list[tf.Tensor]:
        """The states a sequence starts from when none are given: zeros, each (batch, size),
        in the cell's order (`cell.state_names`)."""
        return list(self.cell.get_initial_state(batch_size))

    # -- shapes ----------------------------------------------------------------------------

    def _check_sequences_shape(self, shape: Sequence[int | None]) -> None:
        name = type(self).__name__
        if len(shape) != 3:
            raise ValueError(
                f"{name} expects inputs of shape (batch, time, features); got shape "
                f"{tuple(shape)}, of rank {len(shape)}. For a single sequence add a batch "
                "axis (x[None]); for one feature per step add a feature axis (x[..., None])."
            )
        if shape[1] == 0:
            raise ValueError(f"{name} needs at least one time step; got shape {tuple(shape)}.")
        if shape[-1] is None:
            raise ValueError(
                f"{name} needs the number of input features (the last axis) to be known; got "
                f"shape {tuple(shape)}. Give it, e.g. keras.Input(shape=(None, features))."
            )

    def _check_initial_state_shapes(self, shapes: Sequence[Any], batch_size: Any) -> None:
        name, sizes = type(self).__name__, state_sizes(self.cell)
        expected = ", ".join(f"(batch, {s})" for s in sizes)
        if len(shapes) != len(sizes):
            raise ValueError(
                f"{name} takes {len(sizes)} initial state tensor(s) of shape {expected}; "
                f"got {len(shapes)}."
            )
        for i, (shape, size) in enumerate(zip(shapes, sizes, strict=True)):
            shape = tuple(shape)
            batch_ok = shape[:1] in ((None,), (batch_size,)) or batch_size is None
            if len(shape) != 2 or shape[1] != size or not batch_ok:
                raise ValueError(
                    f"{name}'s initial state {i} must have shape (batch={batch_size}, {size}) "
                    f"(all: {expected}); got shape {shape}."
                )

    def build(self, sequences_shape: Sequence[int | None], initial_state_shape: Any = None) -> None:
        self._check_sequences_shape(sequences_shape)
        batch_size = sequences_shape[0]
        if initial_state_shape is not None:
            self._check_initial_state_shapes(_as_list_of_shapes(initial_state_shape), batch_size)
        if not self.cell.built:
            self.cell.build((batch_size, sequences_shape[-1]))
        if self.stateful and self._carried.variables is None:
            if batch_size is None:
                raise ValueError(
                    f"{type(self).__name__}(stateful=True) needs a fixed batch size, to keep "
                    "one state per sample; give it one, e.g. "
                    "keras.Input(batch_shape=(batch, time, features))."
                )
            zeros = self.cell.get_initial_state(batch_size)
            variables = [
                keras.Variable(z, trainable=False, dtype=self.variable_dtype, name="rnn_state")
                for z in zeros
            ]
            self._carried.variables = variables

    def compute_output_shape(
        self, sequences_shape: Sequence[int | None], initial_state_shape: Any = None
    ) -> Any:
        batch, time = sequences_shape[0], sequences_shape[1]
        units = self.cell.output_size
        output = (batch, time, units) if self.return_sequences else (batch, units)
        if self.return_state:
            return (output, *((batch, size) for size in state_sizes(self.cell)))
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(state_sizes(self.cell))
        return output_mask

    # -- the forward pass ------------------------------------------------------------------

    def reset_state(self) -> None:
        """Set a stateful layer's carried states back to zeros."""
        for variable in self.states or ():
            variable.assign(tf.zeros_like(variable))

    reset_states = reset_state  # Keras 2's name, still used by older scripts

    def _initial_states(self, sequences: tf.Tensor, initial_state: Any) -> tuple:
        dtype = self.compute_dtype
        if initial_state is None:
            if self.states is not None:
                return tuple(tf.cast(v, dtype) for v in self.states)
            return tuple(self.cell.get_initial_state(tf.shape(sequences)[0]))
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        states = [tf.convert_to_tensor(s) for s in initial_state]
        self._check_initial_state_shapes([s.shape for s in states], sequences.shape[0])
        return tuple(tf.cast(s, dtype) for s in states)

    def _check_stateful_batch(self, sequences: tf.Tensor) -> None:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            raise ValueError(
                f"{type(self).__name__}(stateful=True) cannot run under a tf.distribute "
                f"strategy with {replicas} replicas: its carried states "
                "belong to whole batches, which the strategy splits. Train it on one device, "
                "or use stateful=False."
            )
        expected = self.states[0].shape[0]
        actual = sequences.shape[0]
        if actual is not None and actual != expected:
            raise ValueError(
                f"{type(self).__name__}(stateful=True) was built for batches of {expected} "
                f"sequences and keeps one state per sample; got a batch of {actual}. Feed "
                f"batches of exactly {expected}, or rebuild the model for the new size."
            )

    def call(
        self,
        sequences: tf.Tensor,
        initial_state: Any = None,
        mask: tf.Tensor | None = None,
        training: bool | None = False,
    ) -> Any:
        self._check_call_inputs(sequences)
        states = self._initial_states(sequences, initial_state)
        sequences, recurrent_mask = self._dropout(sequences, training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        mask = None if mask is None else tf.cast(mask, tf.bool)
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
            mask = None if mask is None else tf.reverse(mask, [1])

        inputs = _swap_batch_and_time(sequences)  # (T, B, D)
        time_mask = None if mask is None else tf.transpose(mask)  # (T, B)
        outputs, final_states = self._unfold(self.cell, inputs, states, time_mask, recurrent_mask)
        outputs = _swap_batch_and_time(outputs)  # (B, T, units)

        if mask is not None:
            # Before the first kept step Keras outputs zeros (after it, h carries over masked
            # steps); with zero_output_for_mask, zeros at every masked step.
            keep = mask if self.zero_output_for_mask else tf.cumsum(tf.cast(mask, tf.int32), 1) > 0
            outputs = tf.where(keep[:, :, None], outputs, tf.zeros_like(outputs))
        if self.states is not None:
            for variable, state in zip(self.states, final_states, strict=True):
                variable.assign(tf.cast(state, variable.dtype))

        output = outputs if self.return_sequences else outputs[:, -1]
        return (output, *final_states) if self.return_state else output

    def _check_call_inputs(self, sequences: tf.Tensor) -> None:
        self._check_sequences_shape(sequences.shape)
        if not sequences.dtype.is_floating:
            raise ValueError(
                f"{type(self).__name__} expects float inputs; got {sequences.dtype.name}. "
                "For token ids, put a keras.layers.Embedding in front."
            )
        if self.states is not None:
            self._check_stateful_batch(sequences)

    def _dropout(self, sequences: tf.Tensor, training: bool | None) -> tuple[tf.Tensor, Any]:
        """Variational dropout: one mask per sequence, the same at every step. Returns the
        sequences with the input mask applied, and the recurrent mask (or None)."""
        cell, batch_size = self.cell, tf.shape(sequences)[0]
        if training and cell.dropout > 0:
            input_mask = cell.dropout_mask((batch_size, sequences.shape[-1]), cell.dropout)
            sequences = sequences * input_mask[:, None, :]
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.dropout_mask(
                (batch_size, cell.output_size), cell.recurrent_dropout
            )
        return sequences, recurrent_mask

    # -- serialization ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "jit_compile": self.jit_compile,
            "backward": self.backward,
            "scan": self.scan,
            "recompute": self.recompute,
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "cell": keras.saving.serialize_keras_object(self.cell),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Unfold:
        config = dict(config)
        cell = keras.saving.deserialize_keras_object(
            config.pop("cell"), custom_objects=custom_objects
        )
        return cls(cell, **config)


def _as_list_of_shapes(shapes: Any) -> list[Any]:
    """Keras hands `build` one shape or a list of them; always a list here."""
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return list(shapes)
    return [shapes]


# The public layers: a cell class plus Keras's arguments. Arguments named here go to the cell;
# the rest (return_sequences, return_state, go_backwards, stateful, name, dtype, ...) to Unfold.
_CELL_ARGS = (
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)
# The minimal cells have no recurrent kernel, so none of its arguments.
_MIN_CELL_ARGS = tuple(a for a in _CELL_ARGS if not a.startswith("recurrent"))
_SHARED_ARGS = ("dtype", "trainable")  # given to the cell and to the layer


class _PublicLayer(Unfold):
    """An `Unfold` that builds its own cell and flattens the cell's arguments into its own, as
    Keras's `LSTM`, `GRU` and `SimpleRNN` do (so a Keras layer's config builds ours)."""

    _cell_class: type = VanillaCell
    _cell_name: str = "vanilla_cell"
    _cell_args: tuple[str, ...] = _CELL_ARGS
    _own_cell_args: tuple[str, ...] = ("activation",)  # the cell's arguments beyond _cell_args

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Keras's layers read their cell's arguments back as their own (`layer.dropout`).
        super().__init_subclass__(**kwargs)
        for name in cls._cell_args + cls._own_cell_args:
            setattr(cls, name, _cell_argument(name))

    def __init__(self, units: int, **kwargs: Any) -> None:
        names = self._cell_args + self._own_cell_args
        cell_kwargs = {k: kwargs.pop(k) for k in names if k in kwargs}
        cell_kwargs.update({k: kwargs[k] for k in _SHARED_ARGS if k in kwargs})
        cell = self._cell_class(units, name=self._cell_name, **cell_kwargs)
        super().__init__(cell, **kwargs)

    @property
    def units(self) -> int:
        return self.cell.units

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "dtype", "trainable"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Unfold:
        return cls(**config)


def _cell_argument(name: str) -> property:
    return property(lambda layer: getattr(layer.cell, name), doc=f"The cell's `{name}`.")


@keras.saving.register_keras_serializable(package="unfold_rnn")
class VanillaRNN(_PublicLayer):
    """The Elman network over a sequence: `VanillaCell` unfolded; `keras.layers.SimpleRNN`'s
    twin (same arguments, same weights, same numbers).

        h_t = act(x_t W + h_{t-1} U + b)

    Args:
        units: size of the hidden state h.
        activation: act (tanh).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed:
            as for `VanillaCell`.
        return_sequences, return_state, go_backwards, stateful, zero_output_for_mask,
        unroll: as for `Unfold`; also name, dtype, activity_regularizer and other Keras
            layer arguments.

    Example:
        >>> layers = [keras.Input((None, 3)), VanillaRNN(16), keras.layers.Dense(1)]
        >>> model = keras.Sequential(layers)
    """

    _cell_class = VanillaCell
    _cell_name = "vanilla_cell"


@keras.saving.register_keras_serializable(package="unfold_rnn")
class GRU(_PublicLayer):
    """The gated recurrent unit over a sequence: `GRUCell` unfolded; `keras.layers.GRU`'s
    twin (same arguments, same weights, same numbers).

    Args:
        units: size of the hidden state h.
        activation, recurrent_activation, reset_after: as for `GRUCell`.
        Others: as for `VanillaRNN`.
    """

    _cell_class = GRUCell
    _cell_name = "gru_cell"
    _own_cell_args = ("activation", "recurrent_activation", "reset_after")


@keras.saving.register_keras_serializable(package="unfold_rnn")
class LSTM(_PublicLayer):
    """Long short-term memory over a sequence: `LSTMCell`'s equations unfolded (its sibling
    `OnePassLSTMCell`, which XLA vectorises); `keras.layers.LSTM`'s twin (same arguments,
    same weights, same numbers).

    Args:
        units: size of h and c.
        activation, recurrent_activation, unit_forget_bias: as for `LSTMCell`.
        Others: as for `VanillaRNN`; with `return_state`, the states come as `h, c`.

    Example:
        >>> inputs = keras.Input((None, 8))
        >>> outputs = keras.layers.Dense(1)(LSTM(32)(inputs))
        >>> model = keras.Model(inputs, outputs)
    """

    _cell_class = OnePassLSTMCell  # LSTMCell's equations, its activations in one pass
    _cell_name = "lstm_cell"
    _own_cell_args = ("activation", "recurrent_activation", "unit_forget_bias")


@keras.saving.register_keras_serializable(package="unfold_rnn")
class MinGRU(_PublicLayer):
    """minGRU over a sequence (Feng et al. 2024): `MinGRUCell` unfolded, by default with the
    parallel scan.

        z_t  = sigmoid(x_t W_z + b_z),   h~_t = g(x_t W_h + b_h)
        h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

    Args:
        units: size of the hidden state h.
        scan: "parallel" (default) or "sequential", as for `Unfold`.
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint, dropout, seed:
            as for `MinGRUCell`.
        return_sequences, return_state, go_backwards, stateful, zero_output_for_mask:
            as for `Unfold`; also name, dtype and other Keras layer arguments.

    Example:
        >>> layers = [keras.Input((None, 3)), MinGRU(16), keras.layers.Dense(1)]
        >>> model = keras.Sequential(layers)
    """

    _cell_class = MinGRUCell
    _cell_name = "min_gru_cell"
    _cell_args = _MIN_CELL_ARGS
    _own_cell_args = ()


@keras.saving.register_keras_serializable(package="unfold_rnn")
class MinLSTM(_PublicLayer):
    """minLSTM over a sequence (Feng et al. 2024): `MinLSTMCell` unfolded, by default with
    the parallel scan.

        f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t),   h~_t = g(x_t W_h + b_h)
        h_t  = f'_t * h_{t-1} + i'_t * h~_t

    Args:
        units: size of the hidden state h.
        Others: as for `MinGRU`.
    """

    _cell_class = MinLSTMCell
    _cell_name = "min_lstm_cell"
    _cell_args = _MIN_CELL_ARGS
    _own_cell_args = ()
