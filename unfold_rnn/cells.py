"""One time step of each recurrent network: weights and maths, nothing about time.

Each cell keeps Keras's fused weight layout, so weights move both ways between these cells
and Keras's built-in ones:

    kernel            (input_dim, gates * units)   W: input  -> every gate
    recurrent_kernel  (units,     gates * units)   U: state  -> every gate
    bias              (gates * units,)             b   (GRU with reset_after: (2, 3 * units))

A cell offers three things:

- the Keras cell contract, `state_size`, `output_size`, `get_initial_state(batch_size)` and
  `call(inputs, states, training)`, so that it also runs inside `keras.layers.RNN`;
- the contract of `unfold_rnn.contract`: named states (`state_names`), and one step split in
  two, so that the unfolding hoists the input half out of the time loop: `project_inputs(x)`
  (x W + b, for every step at once) and `step(x_t W + b, states)`;
- what a faster unfolding may use, declared as a value by `fast_path()`: for the classic
  cells, a `OneMatmulStep`, the step's one matmul r_t = h_{t-1} U + b' (`recurrent_weights`)
  and the element-wise rest (`combine`), for the hand-written backward pass (`unfold_rnn.bptt`).

The minimal cells, whose gates do not read h_{t-1}, live in `unfold_rnn.min_cells`; they
share `_Cell`, the input half, and have no U.

Called step by step through `call`, a cell draws a fresh dropout mask at every step;
`unfold_rnn`'s layers draw one mask per sequence instead (variational dropout, Gal &
Ghahramani 2016), as Keras's own layers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from unfold_rnn import _checks
from unfold_rnn.contract import (
    Combine,
    Equations,
    FastPath,
    OneMatmulStep,
    State,
    state_sizes,
)


class _Cell(keras.layers.Layer):
    """What every cell shares: the input kernel W and bias b, dropout on the inputs, and the
    Keras cell contract.

    Subclasses set `gates` (how many blocks of `units` columns W holds) and write
    `step_with_gates`; they may override `_bias_shape` / `_bias_initializer` / `input_bias`.
    """

    gates: int = 1
    state_names: tuple[str, ...] = ("h",)
    recurrent_dropout: float = 0.0  # only cells with a recurrent kernel drop h_{t-1}

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        _checks.require_tensorflow_backend(type(self).__name__)
        # Keras's choice between kernel layouts; this package has one layout, so it is moot.
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _checks.rate("dropout", dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.output_size = self.units
        self.state_size: Any = self.units

    # -- weights ---------------------------------------------------------------------------

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} needs to know the number of input features; got an "
                f"input shape of {tuple(input_shape)} whose last axis is unknown."
            )
        self.kernel = self.add_weight(
            shape=(input_dim, self.gates * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self._build_recurrent_kernel()  # between W and b: Keras's order of weights
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _build_recurrent_kernel(self) -> None:
        """Cells whose gates read h_{t-1} add U here."""

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def input_bias(self) -> Any:
        """The part of the bias added to x W (all of it, except for GRU's reset_after)."""
        return self.bias

    # -- one step ---------------------------------------------------------------------------

    def project_inputs(self, inputs: tf.Tensor) -> tf.Tensor:
        """x W + b_input for inputs of shape (..., input_dim) -> (..., gates * units)."""
        # Cast here, not by Keras's autocasting, which a recomputing backward pass is outside.
        projected = tf.tensordot(inputs, tf.cast(self.kernel, inputs.dtype), axes=1)
        if not self.use_bias:
            return projected
        return projected + tf.cast(self.input_bias(), inputs.dtype)

    def step(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> State:
        """One step of the recurrence, from x_t W + b (B, gates * units) and the states.

        `recurrent_mask` (B, units), if given, multiplies h_{t-1} where it enters U.
        Returns the new states; the cell's output is always the first of them, h_t.
        """
        return self.step_with_gates(projected, states, recurrent_mask)[0]

    def fast_path(self) -> FastPath | None:
        """What a faster unfolding may use (`unfold_rnn.contract`), or None: the reference."""
        return None

    def step_with_gates(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """`step`, also returning the gates' activations by name, each (B, units), for
        looking inside the network (empty for the gateless Vanilla cell)."""
        raise NotImplementedError

    def _equations(self, name: str, **settings: str | bool) -> Equations:
        """Equations `name` over the weights this cell has (no bias without `use_bias`)."""
        names = ("kernel", "recurrent_kernel", "bias")
        weights = tuple(w for w in names if getattr(self, w, None) is not None)
        return Equations(name, settings, weights)

    # -- the Keras cell contract -----------------------------------------------------------

    def get_initial_state(self, batch_size: int | tf.Tensor | None = None) -> list[tf.Tensor]:
        return [
            tf.zeros((batch_size, size), dtype=self.compute_dtype) for size in state_sizes(self)
        ]

    def call(self, inputs: tf.Tensor, states: Any, training: bool = False) -> tuple[tf.Tensor, Any]:
        nested = isinstance(states, (list, tuple))
        states = tuple(states) if nested else (states,)
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask(tf.shape(inputs), self.dropout)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self.dropout_mask(tf.shape(states[0]), self.recurrent_dropout)
        new_states = self.step(self.project_inputs(inputs), states, recurrent_mask)
        return new_states[0], list(new_states) if nested else new_states[0]

    def dropout_mask(self, shape: Any, rate: float) -> tf.Tensor:
        """A mask of 0 and 1/(1-rate) (inverted dropout), drawn from this cell's seed."""
        ones = tf.ones(shape, dtype=self.compute_dtype)
        return keras.random.dropout(ones, rate=rate, seed=self.seed_generator)

    def get_config(self) -> dict[str, Any]:
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


class _RecurrentCell(_Cell):
    """What the three classic cells share beyond `_Cell`: the recurrent kernel U, an
    activation, dropout on h_{t-1}, and the hooks of the hand-written backward pass.

    Subclasses write `combine` and `fast_path`, and may override `recurrent_weights` (or,
    for a step with more than one matmul, `step_with_gates`).
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_initializer: Any = "orthogonal",
        recurrent_regularizer: Any = None,
        recurrent_constraint: Any = None,
        recurrent_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.recurrent_dropout = _checks.rate("recurrent_dropout", recurrent_dropout)

    def _build_recurrent_kernel(self) -> None:
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.gates * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    def step_with_gates(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> tuple[State, dict[str, tf.Tensor]]:
        kernel, bias = self.recurrent_weights()
        recurrent = tf.matmul(_masked(states[0], recurrent_mask), kernel)
        recurrent = recurrent if bias is None else recurrent + bias
        return self.combine(projected, recurrent, states)

    # -- a OneMatmulStep, for the hand-written backward pass (unfold_rnn.bptt) ---------------

    def recurrent_weights(self) -> tuple[tf.Tensor, tf.Tensor | None]:
        """U and b' of the step's one matmul r_t = h_{t-1} U + b' (b' is None but for GRU)."""
        return self.recurrent_kernel, None

    def combine(
        self, projected: tf.Tensor, recurrent: tf.Tensor, states: State
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """The element-wise rest of a step, from x_t W + b, r_t and states_{t-1} to the new
        states and the gates. Reads no weights."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        config = {
            "activation": keras.activations.serialize(self.activation),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "recurrent_dropout": self.recurrent_dropout,
        }
        return {**super().get_config(), **config}


def _name(activation: Callable) -> str:
    """A Keras activation's name ("tanh"); a function of the user's own is said to be one."""
    name = getattr(activation, "__name__", repr(activation))
    try:
        built_in = keras.activations.get(name) is activation
    except ValueError:
        built_in = False
    return name if built_in else f"{name} (a function of your own)"


# act'(z) from h = act(z), for the activations where h alone decides it. TensorFlow computes
# its own gradients of these three from their outputs in the same way (TanhGrad, SigmoidGrad,
# and ReluGrad given relu's output: h > 0 exactly where z > 0).
_SLOPES_FROM_OUTPUT: dict[Any, Callable[[tf.Tensor], tf.Tensor]] = {
    keras.activations.tanh: lambda h: 1.0 - h * h,
    keras.activations.sigmoid: lambda h: h * (1.0 - h),
    keras.activations.relu: lambda h: tf.cast(h > 0, h.dtype),
}


def _masked(h: tf.Tensor, recurrent_mask: tf.Tensor | None) -> tf.Tensor:
    return h if recurrent_mask is None else h * recurrent_mask


@keras.saving.register_keras_serializable(package="unfold_rnn")
class VanillaCell(_RecurrentCell):
    """The Elman network's step (Elman 1990), Keras's `SimpleRNNCell`.

        h_t = act(x_t W + h_{t-1} U + b)          act = tanh by default

    States: `[h]`, each (batch, units). Output: h_t.

    Args:
        units: size of h.
        activation: act above.
        use_bias: whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer: for W, U and b.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: for W, U and b.
        kernel_constraint, recurrent_constraint, bias_constraint: for W, U and b.
        dropout: fraction of input features dropped (in training only).
        recurrent_dropout: fraction of h_{t-1} dropped where it meets U (in training only).
        seed: seed for the dropout masks.

    Example:
        >>> cell = VanillaCell(8)
        >>> h, [h_again] = cell(tf.ones((2, 3)), [tf.zeros((2, 8))])
    """

    gates = 1

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)

    def combine(
        self, projected: tf.Tensor, recurrent: tf.Tensor, states: State
    ) -> tuple[State, dict[str, tf.Tensor]]:
        return (self.activation(projected + recurrent),), {}

    def fast_path(self) -> FastPath:
        slope = _SLOPES_FROM_OUTPUT.get(self.activation)
        if slope is None:  # softsign, say: act'(z_t) needs z_t itself
            return OneMatmulStep(Combine.SUM)
        return OneMatmulStep(Combine.ACTIVATION, slope=slope)

    def equations(self) -> Equations:
        return self._equations("vanilla", activation=_name(self.activation))


@keras.saving.register_keras_serializable(package="unfold_rnn")
class GRUCell(_RecurrentCell):
    """The gated recurrent unit's step (Cho et al. 2014), Keras's `GRUCell`.

    Gate blocks in W, U and b: z (update), r (reset), h (candidate), in that order.

        z_t  = rec_act(x_t W_z + h_{t-1} U_z + b_z)
        r_t  = rec_act(x_t W_r + h_{t-1} U_r + b_r)
        reset_after=True  (Keras's default, cuDNN's convention; b is (2, 3·units): input, recurrent)
          h~_t = act(x_t W_h + bx_h + r_t * (h_{t-1} U_h + bh_h))
        reset_after=False (the 2014 paper)
          h~_t = act(x_t W_h + (r_t * h_{t-1}) U_h + b_h)
        h_t  = z_t * h_{t-1} + (1 - z_t) * h~_t

    (With reset_after=True the z and r gates get both biases, bx + bh.) States: `[h]`.
    Output: h_t.

    Args:
        units: size of h.
        activation: act above (tanh).
        recurrent_activation: rec_act above (sigmoid).
        reset_after: where the reset gate applies, as above.
        Others: as for `VanillaCell`.
    """

    gates = 3

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self) -> Any:
        return self.bias[0] if self.reset_after else self.bias

    def fast_path(self) -> FastPath | None:
        if not self.reset_after:
            return None  # r_t scales h_{t-1} before U_h: two matmuls a step
        return OneMatmulStep(Combine.PARTS, reads=("h",))  # the reset gate scales a block of r_t

    def recurrent_weights(self) -> tuple[tf.Tensor, tf.Tensor | None]:
        bias = self.bias[1] if self.use_bias and self.reset_after else None
        return self.recurrent_kernel, bias

    def combine(
        self, projected: tf.Tensor, recurrent: tf.Tensor, states: State
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """reset_after=True only: `recurrent` is h_{t-1} U + bh, all three blocks."""
        h_z, h_r, h_h = tf.split(recurrent, 3, axis=-1)
        return self._update(projected, h_z, h_r, lambda r: r * h_h, states)

    def step_with_gates(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> tuple[State, dict[str, tf.Tensor]]:
        if self.reset_after:
            return super().step_with_gates(projected, states, recurrent_mask)
        h_in = _masked(states[0], recurrent_mask)  # (B, H)
        u_zr, u_h = tf.split(self.recurrent_kernel, [2 * self.units, self.units], axis=-1)
        h_z, h_r = tf.split(tf.matmul(h_in, u_zr), 2, axis=-1)
        return self._update(projected, h_z, h_r, lambda r: tf.matmul(r * h_in, u_h), states)

    def _update(
        self,
        projected: tf.Tensor,
        h_z: tf.Tensor,
        h_r: tf.Tensor,
        reset_candidate: Callable[[tf.Tensor], tf.Tensor],
        states: State,
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """The equations above, given h_{t-1} U's z and r blocks and the candidate's
        recurrent term as a function of r_t (the one place the two forms differ)."""
        (h,) = states  # (B, H)
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        candidate = self.activation(x_h + reset_candidate(r))
        return (z * h + (1 - z) * candidate,), {"update": z, "reset": r}

    def equations(self) -> Equations:
        return self._equations(
            "gru",
            activation=_name(self.activation),
            recurrent_activation=_name(self.recurrent_activation),
            reset_after=self.reset_after,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }


@keras.saving.register_keras_serializable(package="unfold_rnn")
class LSTMCell(_RecurrentCell):
    """The long short-term memory step (Hochreiter & Schmidhuber 1997, with the forget gate
    of Gers et al. 2000), Keras's `LSTMCell`.

    Gate blocks in W, U and b: i (input), f (forget), c (candidate), o (output), in that order.

        i_t  = rec_act(x_t W_i + h_{t-1} U_i + b_i)
        f_t  = rec_act(x_t W_f + h_{t-1} U_f + b_f)
        c~_t = act(x_t W_c + h_{t-1} U_c + b_c)
        o_t  = rec_act(x_t W_o + h_{t-1} U_o + b_o)
        c_t  = f_t * c_{t-1} + i_t * c~_t
        h_t  = o_t * act(c_t)

    States: `[h, c]`, each (batch, units). Output: h_t.

    Args:
        units: size of h and c.
        activation: act above (tanh).
        recurrent_activation: rec_act above (sigmoid).
        unit_forget_bias: start b_f at 1 (Jozefowicz et al. 2015), the rest of b from
            `bias_initializer`.
        Others: as for `VanillaCell`.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def forget_gate_ones(shape: Any, dtype: Any = None) -> tf.Tensor:
            blocks = [base((units,), dtype), tf.ones((units,), dtype), base((2 * units,), dtype)]
            return tf.concat(blocks, axis=0)

        return forget_gate_ones

    def fast_path(self) -> FastPath:
        return OneMatmulStep(Combine.SUM, reads=("c",))  # h_{t-1} enters through U alone

    def combine(
        self, projected: tf.Tensor, recurrent: tf.Tensor, states: State
    ) -> tuple[State, dict[str, tf.Tensor]]:
        _, c = states  # (B, H)
        i, f, candidate, o = self.gate_activations(projected + recurrent)
        c = f * c + i * candidate
        h = o * self.activation(c)
        return (h, c), {"input": i, "forget": f, "output": o}

    def gate_activations(self, z: tf.Tensor) -> Sequence[tf.Tensor]:
        """i, f, c~ and o from z_t = x_t W + h_{t-1} U + b, (B, 4H)."""
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        rec_act = self.recurrent_activation
        return rec_act(z_i), rec_act(z_f), self.activation(z_c), rec_act(z_o)

    def equations(self) -> Equations:
        return self._equations(
            "lstm",
            activation=_name(self.activation),
            recurrent_activation=_name(self.recurrent_activation),
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }


# Activations whose slope is bounded everywhere (no inf, no NaN for finite inputs).
_BOUNDED_SLOPES = (
    keras.activations.sigmoid,
    keras.activations.tanh,
    keras.activations.hard_sigmoid,
    keras.activations.softsign,
)


@keras.saving.register_keras_serializable(package="unfold_rnn")
class OnePassLSTMCell(LSTMCell):
    """`LSTMCell` with its activations in one pass over all of z_t: the same parameters, the
    same numbers, and the cell the `LSTM` layer runs.

    Both activations go over the whole (B, 4H), each kept in its own blocks by `tf.where`:
    XLA's CPU backend vectorises that, where it makes the block-by-block form a scalar loop
    (docs/performance.md measures it). Only for activations with bounded slopes, since
    `tf.where` sends the values it drops a zero gradient, and 0 * inf is NaN.
    """

    def gate_activations(self, z: tf.Tensor) -> Sequence[tf.Tensor]:
        act, rec_act = self.activation, self.recurrent_activation
        if act not in _BOUNDED_SLOPES or rec_act not in _BOUNDED_SLOPES:
            return super().gate_activations(z)
        block = tf.range(tf.shape(z)[-1]) // self.units  # 0, 1, 2, 3: i, f, c~, o
        return tf.split(tf.where(block == 2, act(z), rec_act(z)), 4, axis=-1)
