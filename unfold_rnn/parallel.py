"""The parallel unfolding of a linear recurrence: an associative scan.

For a cell whose step is linear in h (`unfold_rnn.min_cells`),

    h_t = a_t * h_{t-1} + b_t          a_t, b_t from x_t alone

two steps compose into one step of the same form,

    h_{t+1} = (a_{t+1} a_t) * h_{t-1} + (a_{t+1} b_t + b_{t+1})

so the steps can be paired up, the half-as-long recurrence of the pairs solved the same way,
and the steps between filled in: log2(T) levels of element-wise work over all steps at once
(the associative scan; Blelloch 1990, "Prefix sums and their applications"), where the loop
has T dependent steps. Going back, the gradient is the same recurrence run in reverse,

    d_t = dh_t + a_{t+1} * d_{t+1},    d b_t = d_t,    d a_t = d_t * h_{t-1}

solved by the same scan. The minimal cells keep a_t in (0, 1) and b_t > 0 (Feng et al.
2024 write them for a scan in log space; Heinsen 2023), so every product and sum here is of
positive numbers, and float32 keeps its digits over any length.

`unfold_rnn.scan.unfold` runs the same cell one step at a time; tests hold the two to the
same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from unfold_rnn.scan import State


def unfold(
    cell: Any,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None = None,
    recurrent_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, State]:
    """`scan.unfold`'s arguments and results, for a cell whose `fast_path()` is `LinearInH`.
    The levels of the scan are laid out when traced, so the number of steps must be known
    then."""
    if inputs.shape[0] is None:
        raise ValueError(
            "scan='parallel' needs the number of time steps when the layer is traced, and "
            "this sequence's is unknown then (batches of varying length, say). Give batches "
            "one length, or leave scan unset: it then unfolds such batches sequentially."
        )
    if recurrent_mask is not None:
        raise ValueError("A cell linear in h has no recurrent kernel for recurrent dropout.")
    (h0,) = initial_states
    a, b, _ = cell.coefficients(cell.project_inputs(inputs))  # each (T, B, units)
    if mask is not None:  # a masked step keeps h: a_t = 1, b_t = 0
        keep = mask[:, :, None]
        a, b = tf.where(keep, a, tf.ones_like(a)), tf.where(keep, b, tf.zeros_like(b))
    # h_0 = a_0 h_init + b_0: the initial state folds into the first step.
    b = tf.concat([a[:1] * h0[None] + b[:1], b[1:]], axis=0)
    h = linear_recurrence(a, b)
    return h, (h[-1],)


@tf.custom_gradient
def linear_recurrence(a: tf.Tensor, b: tf.Tensor) -> Any:
    """h_t = a_t * h_{t-1} + b_t for every t along axis 0, from h_{-1} = 0."""
    h = _scan(a, b)

    def grad(dh: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        a_next = tf.concat([a[1:], tf.zeros_like(a[:1])], axis=0)  # a_{t+1}, 0 after the end
        d = tf.reverse(_scan(tf.reverse(a_next, [0]), tf.reverse(dh, [0])), [0])
        h_before = tf.concat([tf.zeros_like(h[:1]), h[:-1]], axis=0)  # h_{t-1}
        return d * h_before, d

    return h, grad


def _scan(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """The associative scan of `linear_recurrence`; T, the length of axis 0, known."""
    steps = a.shape[0]
    if steps == 1:
        return b
    if steps % 2:  # an even count: one more step that keeps h (a = 1, b = 0)
        a = tf.concat([a, tf.ones_like(a[:1])], axis=0)
        b = tf.concat([b, tf.zeros_like(b[:1])], axis=0)
    rest = tf.shape(a)[1:]  # the batch may be unknown when traced
    # Steps 2i and 2i+1 side by side: (T/2, 2, ...) split into the first and the second.
    (a_first, a_second), (b_first, b_second) = (
        tf.unstack(tf.reshape(x, tf.concat([[a.shape[0] // 2, 2], rest], 0)), axis=1)
        for x in (a, b)
    )
    h_second = _scan(a_second * a_first, a_second * b_first + b_second)  # h_1, h_3, ...
    h_before = tf.concat([tf.zeros_like(h_second[:1]), h_second[:-1]], axis=0)
    h_first = a_first * h_before + b_first  # h_0, h_2, ...
    both = tf.reshape(tf.stack([h_first, h_second], axis=1), tf.concat([[a.shape[0]], rest], 0))
    return both[:steps]
