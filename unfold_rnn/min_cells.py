"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201).

Their gates read x_t only, never h_{t-1}, so each step is linear in h:

    h_t = a_t * h_{t-1} + b_t          a_t, b_t from x_t W + b alone

which `unfold_rnn.parallel` unfolds with a parallel scan; `step` is the same recurrence one
step at a time, for the sequential `tf.scan` and for sampling. The candidate goes through g,
positive everywhere, so that b_t > 0 (the paper's form, which a scan in log space needs):

    g(x) = x + 0.5 for x >= 0,  sigmoid(x) for x < 0

Weights: `kernel` (input_dim, gates * units) and `bias` (gates * units,); no recurrent
kernel. State: `[h]`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from unfold_rnn.cells import _Cell
from unfold_rnn.contract import Equations, LinearInH, State


def g(x: tf.Tensor) -> tf.Tensor:
    """x + 0.5 for x >= 0, sigmoid(x) below: positive, continuous, linear for large x."""
    return tf.where(x >= 0, x + 0.5, tf.sigmoid(x))


class _MinimalCell(_Cell):
    """A cell whose step is h_t = a_t * h_{t-1} + b_t with a_t, b_t read from x_t W + b."""

    def fast_path(self) -> LinearInH:
        return LinearInH()  # `coefficients` a_t and b_t: unfold_rnn.parallel

    def step_with_gates(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> tuple[State, dict[str, tf.Tensor]]:
        # No recurrent kernel, so there is nothing for a recurrent dropout mask to drop.
        (h,) = states
        keep, add, gates = self.coefficients(projected)
        return (keep * h + add,), gates

    def coefficients(self, projected: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, dict]:
        """a_t, b_t and the gates by name, from x_t W + b (..., gates * units)."""
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="unfold_rnn")
class MinGRUCell(_MinimalCell):
    """minGRU's step: a GRU whose update gate and candidate read x_t only.

    Blocks in W and b: z (update), h (candidate), in that order.

        z_t  = sigmoid(x_t W_z + b_z)
        h~_t = g(x_t W_h + b_h)
        h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

    Args:
        units: size of h.
        use_bias: whether to add b.
        kernel_initializer, bias_initializer: for W and b.
        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint: for W and b.
        dropout: fraction of input features dropped (in training only).
        seed: seed for the dropout masks.

    Example:
        >>> cell = MinGRUCell(8)
        >>> h, [h_again] = cell(tf.ones((2, 3)), [tf.zeros((2, 8))])
    """

    gates = 2

    def equations(self) -> Equations:
        return self._equations("mingru")

    def coefficients(self, projected: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, dict]:
        k, x_h = tf.split(projected, 2, axis=-1)
        z = tf.sigmoid(k)
        return 1 - z, z * g(x_h), {"update": z}


@keras.saving.register_keras_serializable(package="unfold_rnn")
class MinLSTMCell(_MinimalCell):
    """minLSTM's step: an LSTM whose gates read x_t only, with forget and input gates
    normalised to sum to one, and no output gate or separate cell state.

    Blocks in W and b: f (forget), i (input), h (candidate), in that order.

        f_t  = sigmoid(x_t W_f + b_f),   i_t = sigmoid(x_t W_i + b_i)
        f'_t = f_t / (f_t + i_t),        i'_t = i_t / (f_t + i_t)
        h~_t = g(x_t W_h + b_h)
        h_t  = f'_t * h_{t-1} + i'_t * h~_t

    Args:
        units: size of h.
        Others: as for `MinGRUCell`.
    """

    gates = 3

    def equations(self) -> Equations:
        return self._equations("minlstm")

    def coefficients(self, projected: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, dict]:
        k_f, k_i, x_h = tf.split(projected, 3, axis=-1)
        # f / (f + i) = sigmoid(log f - log i), with log sigmoid(k) = -softplus(-k): both
        # gates can be far below float32's range without a 0 / 0 or an infinite gradient.
        forget = tf.sigmoid(tf.nn.softplus(-k_i) - tf.nn.softplus(-k_f))
        remember = 1 - forget
        return forget, remember * g(x_h), {"forget": forget, "input": remember}
