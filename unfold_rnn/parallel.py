"""The parallel unfolding of a linear recurrence, in log space.

For a cell whose step is h_t = a_t * h_{t-1} + b_t with a_t > 0, b_t > 0 read from the
inputs alone (`unfold_rnn.min_cells`), the loop unrolls to

    h_t = A_t * h_0 + sum_{k<=t} (A_t / A_k) * b_k,        A_t = a_1 a_2 ... a_t

and in logs (Heinsen 2023, "Efficient Parallelization of a Ubiquitous Sequential
Computation", arXiv 2311.06281), with a*_t = sum_{k<=t} log a_k:

    h_t = exp(a*_t) * h_0 + exp(a*_t + logcumsumexp_{k<=t}(log b_k - a*_k))

two cumulative operations over time (`tf.cumsum`, `tf.math.cumulative_logsumexp`), each of
depth O(log T) on parallel hardware, instead of T dependent steps. The h_0 term is kept
apart and linear, so any real initial state works. Gradients are TensorFlow's autodiff.
`unfold_rnn.scan.unfold` runs the same cell one step at a time; tests hold the two to the
same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from unfold_rnn.scan import State

# log 0 for a masked step's b_t, finite so that no gradient meets inf - inf.
_LOG_ZERO = -1e30


def unfold(
    cell: Any,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None = None,
    recurrent_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, State]:
    """`scan.unfold`'s arguments and results, for a cell with `log_coefficients`.

    A step whose mask is False is a_t = 1, b_t = 0: it keeps h. `recurrent_mask` must be
    None (these cells have no recurrent kernel to drop).
    """
    if recurrent_mask is not None:
        raise ValueError(f"{type(cell).__name__} has no recurrent kernel to apply dropout to.")
    (h0,) = initial_states
    log_a, log_b = cell.log_coefficients(cell.project_inputs(inputs))  # each (T, B, units)
    # a*_t grows with t, and h_t is the exponential of a difference of two such sums: in
    # float32 that difference would lose about log10|a*_t| of its seven digits.
    wide = tf.float64
    log_a, log_b = tf.cast(log_a, wide), tf.cast(log_b, wide)
    if mask is not None:
        keep = mask[:, :, None]
        log_a = tf.where(keep, log_a, tf.zeros_like(log_a))
        log_b = tf.where(keep, log_b, tf.fill(tf.shape(log_b), tf.constant(_LOG_ZERO, wide)))
    a_star = tf.cumsum(log_a, axis=0)
    h = tf.exp(a_star + tf.math.cumulative_logsumexp(log_b - a_star, axis=0))
    h = tf.cast(h + tf.exp(a_star) * tf.cast(h0, wide), h0.dtype)
    return h, (h[-1],)
