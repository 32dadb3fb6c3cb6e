"""The fast path: the reference `tf.scan`, with backpropagation through time written by hand.

The forward pass is `unfold_rnn.scan`'s loop, split at the step's one matmul,
r_t = (h_{t-1} * m) U + b' (m: the recurrent dropout mask, b': the GRU's recurrent bias),
with the cell's element-wise rest, `combine`, around it. Going back, with g_t the gradient
of the output h_t:

    for t = T-1 .. 0:                                   # tf.scan(..., reverse=True)
        ds_t        = g_t + (dr_{t+1} U^T) * m  (to h) + what step t+1 sent to states_t
        dp_t, dr_t  = VJP of combine at step t, applied to ds_t
    dU  = sum_t (h_{t-1} * m)^T dr_t                    one matmul after the loop
    db' = sum_t dr_t,     d(x_t W + b) = dp_t

Autodiff through `tf.scan` computes U's gradient at every step and keeps every intermediate
of the step; this keeps what `combine` needs to be run again, and recomputes the rest.

What is kept depends on what the cell declares (`plan`):
- `sums_projections`: combine reads x_t W + b and r_t only through z_t, their sum; z_t is
  kept, and dp_t = dr_t.
- otherwise (the GRU, whose reset gate scales r_t's candidate block): r_t is kept, and the
  backward pass reads x_t W + b too.
- `output_slope()`: h_t = act(z_t) is the only state, and act'(z_t) follows from h_t; nothing
  beyond the outputs is kept.

Both passes can be compiled with XLA on their own (`Passes.compiled()`), so that a plain
`model.fit` gets a compiled time loop; the custom gradient sits around them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from unfold_rnn import scan
from unfold_rnn.scan import State, keep_where


class Plan(NamedTuple):
    """What the forward pass keeps for the backward pass, decided from the cell alone."""

    keeps: str  # "sum" (z_t), "recurrent" (r_t; x_t W + b is read too) or "outputs" (h_t)


def plan(cell: Any) -> Plan | None:
    """The fast path's plan for `cell`, or None when the cell offers no hand-written backward
    pass (its step has more than one matmul): then the reference `scan.unfold` runs."""
    if not getattr(cell, "one_matmul_per_step", False):
        return None
    if cell.output_slope() is not None:
        return Plan("outputs")
    return Plan("sum" if cell.sums_projections else "recurrent")


def _matmul(h: tf.Tensor, recurrent_mask: tf.Tensor | None, kernel: tf.Tensor, bias: Any):
    """r_t = (h_{t-1} * m) U + b'."""
    r = tf.matmul(_masked(h, recurrent_mask), kernel)
    return r if bias is None else r + bias


def forward(
    cell: Any,
    how: Plan,
    projected: tf.Tensor,
    initial_states: State,
    weights: tuple,
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
) -> tuple[State, tf.Tensor | tuple]:
    """The forward `tf.scan`, over t. Returns every state at every step, each (T, B, size),
    and what the plan keeps beyond them: z_t or r_t at every step, (T, B, G), or () for
    "outputs"."""
    kernel, bias = weights

    def step(carry: tuple, t: tf.Tensor) -> tuple:
        states, _ = carry
        p_t, keep_t = projected[t], None if mask is None else mask[t]
        r_t = _matmul(states[0], recurrent_mask, kernel, bias)
        new_states = keep_where(keep_t, cell.combine(p_t, r_t, states)[0], states)
        kept_t = p_t + r_t if how.keeps == "sum" else r_t
        return new_states, kept_t if how.keeps != "outputs" else ()

    # Steps are read by index rather than unstacked into tf.scan's own arrays, which under
    # XLA would copy each (T, B, ...) tensor once more.
    steps = tf.range(tf.shape(projected)[0])
    kept0 = tf.zeros_like(projected[0]) if how.keeps != "outputs" else ()
    return tf.scan(step, steps, initializer=(tuple(initial_states), kept0))


def backward(
    cell: Any,
    how: Plan,
    d_outputs: tf.Tensor,
    d_final_states: State,
    every_state: State,
    kept: tf.Tensor | tuple,
    projected: tf.Tensor | None,
    initial_states: State,
    weights: tuple,
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
) -> tuple[tf.Tensor, State, list[tf.Tensor]]:
    """The reverse `tf.scan`, over t = T-1 .. 0, then the weights' gradients. Returns
    d(x W + b) at every step, (T, B, G), the gradients of the initial states, and [dU, db'
    if the cell has b']."""
    kernel, bias = weights
    kernel_t = tf.transpose(kernel)  # laid out once; each step reads it row by row
    if how.keeps == "outputs":
        back_step = _back_through_slope(cell, every_state[0])
    else:
        back_step = _back_through_combine(cell, how, kept, every_state, initial_states, projected)
    # Only the states a step reads directly send it a gradient back; tf.scan stacks its whole
    # carry, so the others stay out of it.
    carried = _read_by_step(cell, how, kept, d_final_states, mask is not None)
    last = tf.shape(d_outputs)[0] - 1

    def step(carry: tuple, t: tf.Tensor) -> tuple:
        dr_next, _, d_sent = carry
        d_states = _sent_back(d_sent, carried, d_final_states, t == last)
        dh = d_outputs[t] + d_states[0] + _masked(tf.matmul(dr_next, kernel_t), recurrent_mask)
        dr_t, dp_t, d_prev = back_step(t, (dh, *d_states[1:]), None if mask is None else mask[t])
        return dr_t, dp_t, tuple(d for d, read in zip(d_prev, carried, strict=True) if read)

    zeros = tf.zeros_like(kept[0] if how.keeps != "outputs" else d_outputs[0])  # (B, G)
    d_sent = tuple(d for d, read in zip(d_final_states, carried, strict=True) if read)
    initial = (zeros, zeros if how.keeps == "recurrent" else (), d_sent)
    dr, dp, d_sent = tf.scan(step, tf.range(last + 1), initializer=initial, reverse=True)

    d_initial = list(_sent_back(tuple(d[0] for d in d_sent), carried, d_final_states, False))
    d_initial[0] += _masked(tf.matmul(dr[0], kernel_t), recurrent_mask)
    # dU = sum_t (h_{t-1} * m)^T dr_t, with h_{t-1} = h_0 at t = 0.
    h_in = _masked(tf.concat([initial_states[0][None], every_state[0][:-1]], 0), recurrent_mask)
    d_weights = [tf.matmul(_rows(h_in), _rows(dr), transpose_a=True)]
    if bias is not None:
        d_weights.append(tf.reduce_sum(dr, axis=[0, 1]))
    return (dr if how.keeps != "recurrent" else dp), tuple(d_initial), d_weights


def _read_by_step(
    cell: Any, how: Plan, kept: Any, d_final_states: State, masked: bool
) -> tuple[bool, ...]:
    """Which of states_{t-1} a step reads other than through h_{t-1} U, found by tracing
    `combine`'s gradient once in a scratch graph. A masked step reads them all (it may pass
    them on)."""
    if masked:
        return (True,) * len(d_final_states)
    if how.keeps == "outputs":
        return (False,)  # h_t = act(z_t) reads h_{t-1} only through z_t
    with tf.Graph().as_default():
        z = tf.zeros([1, kept.shape[-1]], kept.dtype)
        previous = [tf.zeros([1, d.shape[-1]], d.dtype) for d in d_final_states]
        with tf.GradientTape() as tape:
            tape.watch(previous)
            new_states = cell.combine(z, tf.zeros_like(z), tuple(previous))[0]
        return tuple(g is not None for g in tape.gradient(new_states, previous))


def _sent_back(d_sent: State, carried: tuple, d_final_states: State, at_last: Any) -> list:
    """The gradients of states_t that step t+1 sent back, one per state: carried, or, for a
    state no step reads, the final state's gradient at t = T-1 and zero before."""
    sent = iter(d_sent)
    return [
        next(sent) if read else tf.where(at_last, d, tf.zeros_like(d))
        for read, d in zip(carried, d_final_states, strict=True)
    ]


def _previous(every_state: State, initial_states: State, t: tf.Tensor) -> list[tf.Tensor]:
    """states_{t-1}: the states after step t-1, or the initial states at t = 0."""
    back = tf.maximum(t - 1, 0)
    return [tf.where(t > 0, s[back], s0) for s, s0 in zip(every_state, initial_states, strict=True)]


def _back_through_combine(
    cell: Any,
    how: Plan,
    kept: tf.Tensor,
    every_state: State,
    initial_states: State,
    projected: tf.Tensor | None,
) -> Callable:
    """One backward step by the VJP of `combine` at step t, run again from what was kept."""

    def back_step(t: tf.Tensor, ds_t: State, keep_t: tf.Tensor | None) -> tuple:
        prev_t = _previous(every_state, initial_states, t)
        if how.keeps == "sum":  # z_t, as x_t W + b with r_t = 0
            p_t, r_t = kept[t], tf.zeros_like(kept[t])
        else:
            p_t, r_t = projected[t], kept[t]
        with tf.GradientTape() as tape:
            tape.watch([p_t, r_t, prev_t])
            new_states = keep_where(keep_t, cell.combine(p_t, r_t, tuple(prev_t))[0], prev_t)
        dp_t, dr_t, d_prev = tape.gradient(
            new_states,
            [p_t, r_t, prev_t],
            output_gradients=list(ds_t),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        if how.keeps == "sum":
            return dp_t, (), tuple(d_prev)
        return dr_t, dp_t, tuple(d_prev)

    return back_step


def _back_through_slope(cell: Any, outputs: tf.Tensor) -> Callable:
    """One backward step of h_t = act(z_t): dz_t = dh_t act'(z_t), with act' from h_t. A
    masked step passes dh_t on to h_{t-1} untouched."""
    slope = cell.output_slope()

    def back_step(t: tf.Tensor, ds_t: State, keep_t: tf.Tensor | None) -> tuple:
        (dh,) = ds_t
        zeros = tf.zeros_like(dh)
        (dz_t,) = keep_where(keep_t, [dh * slope(outputs[t])], [zeros])
        (d_prev,) = keep_where(keep_t, [zeros], [dh])
        return dz_t, (), (d_prev,)

    return back_step


def _masked(x: tf.Tensor, recurrent_mask: tf.Tensor | None) -> tf.Tensor:
    return x if recurrent_mask is None else x * recurrent_mask


def _rows(x: tf.Tensor) -> tf.Tensor:
    """(T, B, size) -> (T·B, size)."""
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


class Passes(NamedTuple):
    """The two passes, run as they are or each compiled with XLA."""

    forward: Callable = forward
    backward: Callable = backward

    @classmethod
    def compiled(cls) -> Passes:
        return cls(*(tf.function(f, jit_compile=True) for f in cls()))


_UNCOMPILED = Passes()


def unfold(
    cell: Any,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None = None,
    recurrent_mask: tf.Tensor | None = None,
    passes: Passes = _UNCOMPILED,
) -> tuple[tf.Tensor, State]:
    """`scan.unfold` with the hand-written backward pass, for a cell that has a `plan`; the
    reference `scan.unfold` for any other. Same arguments and results; `passes` may be
    `Passes.compiled()`."""
    how = plan(cell)
    if how is None:
        return scan.unfold(cell, inputs, initial_states, mask, recurrent_mask)
    projected = cell.project_inputs(inputs)  # (T, B, G), all steps at once
    weights = [tf.cast(w, projected.dtype) for w in cell.recurrent_weights() if w is not None]
    count = len(initial_states)
    masks = (mask, recurrent_mask)

    @tf.custom_gradient
    def loop(projected: tf.Tensor, *args: tf.Tensor) -> Any:
        states0, weights = tuple(args[:count]), args[count:]
        weights = (weights[0], weights[1] if len(weights) > 1 else None)  # U, b'
        every_state, kept = passes.forward(cell, how, projected, states0, weights, *masks)

        def grad(d_outputs: tf.Tensor | None, *d_final: tf.Tensor | None) -> tuple:
            d_outputs = tf.zeros_like(every_state[0]) if d_outputs is None else d_outputs
            d_final = tuple(
                tf.zeros_like(s) if d is None else d for s, d in zip(states0, d_final, strict=True)
            )
            read = projected if how.keeps == "recurrent" else None  # x W + b, for the GRU
            d_projected, d_initial, d_weights = passes.backward(
                cell, how, d_outputs, d_final, every_state, kept, read, states0, weights, *masks
            )
            return (d_projected, *d_initial, *d_weights)

        return (every_state[0], *(s[-1] for s in every_state)), grad

    outputs, *final_states = loop(projected, *initial_states, *weights)
    return outputs, tuple(final_states)
