"""The fast path: the reference `tf.scan`, with backpropagation through time written by hand.

For a cell whose step is a `OneMatmulStep` (`unfold_rnn.contract`): the forward pass is
`unfold_rnn.scan`'s loop, split at the step's one matmul, r_t = (h_{t-1} * m) U + b'
(m: the recurrent dropout mask, b': the GRU's recurrent bias), with the cell's element-wise
rest, `combine`, around it. Going back, with g_t the gradient of the output h_t:

    for t = T-1 .. 0:                                   # tf.scan(..., reverse=True)
        ds_t        = g_t + (dr_{t+1} U^T) * m  (to h) + what step t+1 sent to states_t
        dp_t, dr_t  = VJP of combine at step t, applied to ds_t
    dU  = sum_t (h_{t-1} * m)^T dr_t                    one matmul after the loop
    db' = sum_t dr_t,     d(x_t W + b) = dp_t

Autodiff through `tf.scan` computes U's gradient at every step and keeps every intermediate
of the step; this keeps what `combine` needs to be run again, and recomputes the rest. What
that is follows from how the cell's `combine` reads p_t = x_t W + b and r_t (`Combine`):

- SUM: only through z_t = p_t + r_t; z_t is kept, and dp_t = dr_t.
- PARTS: apart (the GRU's reset gate scales r_t's candidate block); r_t is kept, and p_t
  is read again.
- ACTIVATION: h_t = act(z_t) is the one state and act'(z_t) follows from h_t; nothing
  beyond h_t is kept.

Going back, a step sends a gradient to the states it reads itself (`OneMatmulStep.reads`)
besides the one through h_{t-1} U; a masked step, which may pass any state on, to all.

With `chunk` (K), the passes recompute: the forward pass keeps h_t and the states at the
start of every chunk of K steps only; the backward pass is a reverse `tf.scan` over the
chunks, each projecting its own x W + b, running its forward `tf.scan` again and then its
reverse one, and adding its part of every gradient:

    for j = T/K-1 .. 0:                                 tf.scan(..., reverse=True)
        p = x_j W + b;  kept = forward over chunk j from its checkpoint
        dr, dp = the reverse scan above over chunk j, from what chunk j+1 handed back
        dx_j, dW, db from p's VJP;  dU += (h_{t-1} * m)^T dr over chunk j
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from unfold_rnn.contract import Combine, OneMatmulStep, State
from unfold_rnn.scan import keep_where


class Loop(NamedTuple):
    """What both passes read, besides the gradients."""

    cell: Any
    plan: OneMatmulStep
    projected: tf.Tensor | None  # p_t = x_t W + b, (T, B, G); going back, for PARTS only
    initial_states: State
    kernel: tf.Tensor  # U, (H, G)
    bias: tf.Tensor | None  # b', the GRU's recurrent bias
    mask: tf.Tensor | None  # (T, B) bool: where False, a step keeps its states
    recurrent_mask: tf.Tensor | None  # m, (B, H)


class Kept(NamedTuple):
    """What the forward pass keeps for the backward pass."""

    states: State  # every state after every step, each (T, B, size)
    sums: tf.Tensor | tuple  # z_t (SUM) or r_t (PARTS) at every step, (T, B, G); () else


def forward(loop: Loop, keeps_sums: bool = True) -> Kept:
    """The forward `tf.scan`, over t; `keeps_sums=False` keeps the states alone."""
    keeps_sums = keeps_sums and loop.plan.combine is not Combine.ACTIVATION

    def step(carry: Kept, t: tf.Tensor) -> Kept:
        states = carry.states
        p_t = loop.projected[t]
        r_t = _recurrent(loop, states[0])
        new_states = loop.cell.combine(p_t, r_t, states)[0]
        new_states = keep_where(None if loop.mask is None else loop.mask[t], new_states, states)
        if not keeps_sums:
            return Kept(new_states, ())
        return Kept(new_states, p_t + r_t if loop.plan.combine is Combine.SUM else r_t)

    # Steps are read by index rather than unstacked into tf.scan's own arrays, which under
    # XLA would copy each (T, B, ...) tensor once more.
    steps = tf.range(tf.shape(loop.projected)[0])
    sums0 = tf.zeros_like(loop.projected[0]) if keeps_sums else ()
    return tf.scan(step, steps, initializer=Kept(tuple(loop.initial_states), sums0))


def backward(
    loop: Loop, kept: Kept, d_outputs: tf.Tensor, d_final_states: State
) -> tuple[tf.Tensor, State, list[tf.Tensor]]:
    """The reverse `tf.scan`, over t = T-1 .. 0, then the weights' gradients. Returns
    d(x W + b) at every step, (T, B, G), the gradients of the initial states, and [dU, db'
    if the cell has b']."""
    dr, dp, d_read = _reverse(loop, kept, d_outputs, d_final_states, _at_end(loop, d_final_states))
    d_initial = _initial_gradients(loop, dr[0], tuple(d[0] for d in d_read), d_final_states)
    d_weights = _recurrent_gradients(loop, kept.states[0], dr)
    return (dp if loop.plan.combine is Combine.PARTS else dr), d_initial, d_weights


def _at_end(loop: Loop, d_final_states: State) -> tuple:
    """What the reverse scan starts from after the last step: no dr_{T}, and the final
    states' gradients of the states a step reads."""
    batch = tf.shape(loop.initial_states[0])[0]
    zeros = tf.zeros([batch, loop.kernel.shape[-1]], loop.kernel.dtype)  # (B, G)
    parts = loop.plan.combine is Combine.PARTS
    return zeros, zeros if parts else (), _pack(d_final_states, _reads(loop))


def _reverse(
    loop: Loop, kept: Kept, d_outputs: tf.Tensor, d_final_states: State, after: tuple
) -> tuple:
    """The reverse `tf.scan` over the steps of `loop`, from `after` (dr, dp, the read states'
    gradients) at the step after its last; `d_final_states` reach the states no step reads
    at its last step. Returns dr_t, dp_t (PARTS only) and the read states' gradients at
    every step."""
    kernel_t = tf.transpose(loop.kernel)  # laid out once; each step reads it row by row
    back_step = _back_step(loop, kept)
    # Which states a step reads itself; tf.scan stacks its whole carry, so only their
    # gradients travel in it.
    reads = _reads(loop)
    last = tf.shape(d_outputs)[0] - 1

    def step(carry: tuple, t: tf.Tensor) -> tuple:
        dr_next, _, d_read = carry
        d_states = _unpack(d_read, reads, d_final_states, t == last)
        dh = d_outputs[t] + d_states[0] + _masked(tf.matmul(dr_next, kernel_t), loop)
        dr_t, dp_t, d_previous = back_step(t, (dh, *d_states[1:]))
        return dr_t, dp_t, _pack(d_previous, reads)

    return tf.scan(step, tf.range(last + 1), initializer=after, reverse=True)


def _initial_gradients(loop: Loop, dr_0: tf.Tensor, d_read_0: State, d_final: State) -> State:
    """The initial states' gradients, from step 0's dr and the read states' gradients."""
    d_initial = _unpack(d_read_0, _reads(loop), d_final, False)
    d_initial[0] += _masked(tf.matmul(dr_0, loop.kernel, transpose_b=True), loop)
    return tuple(d_initial)


def _recurrent_gradients(loop: Loop, outputs: tf.Tensor, dr: tf.Tensor) -> list[tf.Tensor]:
    """[dU, db' if the cell has b'] over the steps of `loop`, whose outputs are `outputs`:
    dU = sum_t (h_{t-1} * m)^T dr_t, with h_{t-1} = h_0 at t = 0."""
    h_before = tf.concat([loop.initial_states[0][None], outputs[:-1]], 0)
    d_weights = [tf.matmul(_rows(_masked(h_before, loop)), _rows(dr), transpose_a=True)]
    if loop.bias is not None:
        d_weights.append(tf.reduce_sum(dr, axis=[0, 1]))
    return d_weights


def _reads(loop: Loop) -> tuple[bool, ...]:
    """For each state, whether a step reads it other than through h_{t-1} U."""
    if loop.mask is not None:
        return (True,) * len(loop.initial_states)
    return tuple(name in loop.plan.reads for name in loop.cell.state_names)


def _pack(d_states: Sequence[tf.Tensor], reads: tuple[bool, ...]) -> State:
    """The gradients of the states a step reads, the ones the reverse scan carries."""
    return tuple(d for d, read in zip(d_states, reads, strict=True) if read)


def _unpack(d_read: State, reads: tuple, d_final_states: State, at_last: Any) -> list:
    """All the states' gradients from the carried ones: a state no step reads gets the final
    state's gradient at t = T-1 and zero before."""
    carried = iter(d_read)
    return [
        next(carried) if read else tf.where(at_last, d, tf.zeros_like(d))
        for read, d in zip(reads, d_final_states, strict=True)
    ]


def _back_step(loop: Loop, kept: Kept) -> Callable:
    """One backward step: (t, ds_t) -> dr_t, dp_t (PARTS only, else ()), d states_{t-1}."""
    if loop.plan.combine is Combine.ACTIVATION:
        return _back_through_slope(loop, kept)
    return _back_through_combine(loop, kept)


def _back_through_combine(loop: Loop, kept: Kept) -> Callable:
    """The VJP of `combine` at step t, run again from what was kept."""
    sums = loop.plan.combine is Combine.SUM

    def back_step(t: tf.Tensor, ds_t: State) -> tuple:
        back = tf.maximum(t - 1, 0)  # states_{t-1}: the initial states at t = 0
        previous = [
            tf.where(t > 0, s[back], s0)
            for s, s0 in zip(kept.states, loop.initial_states, strict=True)
        ]
        if sums:  # z_t, as p_t with r_t = 0
            p_t, r_t = kept.sums[t], tf.zeros_like(kept.sums[t])
        else:
            p_t, r_t = loop.projected[t], kept.sums[t]
        keep_t = None if loop.mask is None else loop.mask[t]
        with tf.GradientTape() as tape:
            tape.watch([p_t, r_t, previous])
            new_states = loop.cell.combine(p_t, r_t, tuple(previous))[0]
            new_states = keep_where(keep_t, new_states, previous)
        dp_t, dr_t, d_previous = tape.gradient(
            new_states,
            [p_t, r_t, previous],
            output_gradients=list(ds_t),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return (dp_t, (), d_previous) if sums else (dr_t, dp_t, d_previous)

    return back_step


def _back_through_slope(loop: Loop, kept: Kept) -> Callable:
    """h_t = act(z_t): dz_t = dh_t act'(z_t), with act' from h_t. A masked step passes dh_t
    on to h_{t-1} untouched."""
    slope, outputs = loop.plan.slope, kept.states[0]

    def back_step(t: tf.Tensor, ds_t: State) -> tuple:
        (dh,) = ds_t
        keep_t = None if loop.mask is None else loop.mask[t]
        zeros = tf.zeros_like(dh)
        (dz_t,) = keep_where(keep_t, [dh * slope(outputs[t])], [zeros])
        (d_previous,) = keep_where(keep_t, [zeros], [dh])
        return dz_t, (), (d_previous,)

    return back_step


def _recurrent(loop: Loop, h: tf.Tensor) -> tf.Tensor:
    """r_t = (h_{t-1} * m) U + b'."""
    r = tf.matmul(_masked(h, loop), loop.kernel)
    return r if loop.bias is None else r + loop.bias


def _masked(x: tf.Tensor, loop: Loop) -> tf.Tensor:
    return x if loop.recurrent_mask is None else x * loop.recurrent_mask


def _rows(x: tf.Tensor) -> tf.Tensor:
    """(T, B, size) -> (T·B, size)."""
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


class Checkpoints(NamedTuple):
    """What the forward pass in chunks keeps: h_t, the output, and the states at the start
    of every chunk; the rest is run again going back."""

    outputs: tf.Tensor  # h_t at every step, (T, B, H)
    starts: State  # each (T / K, B, size)


def forward_in_chunks(loop: Loop, inputs: tf.Tensor, chunk: int) -> tuple[Checkpoints, State]:
    """The forward pass from the inputs x (T, B, E), K = `chunk` steps at a time, each
    chunk projecting its own x W + b. Returns the checkpoints and the final states."""
    x = _in_chunks(inputs, chunk)
    masks = None if loop.mask is None else _in_chunks(loop.mask, chunk)
    h0 = loop.initial_states[0]
    first = (tuple(loop.initial_states), tf.zeros(tf.concat([[chunk], tf.shape(h0)], 0), h0.dtype))

    def step(previous: tuple, j: tf.Tensor) -> tuple:
        starts = previous[0]  # the states at the end of chunk j - 1
        piece = _chunk(loop, loop.cell.project_inputs(x[j]), starts, masks, j)
        kept = forward(piece, keeps_sums=False)
        return _shaped_as(first, (tuple(s[-1] for s in kept.states), kept.states[0]))

    ends, outputs = tf.scan(step, tf.range(x.shape[0]), initializer=first, parallel_iterations=1)
    starts = tuple(
        tf.concat([s0[None], e[:-1]], 0) for s0, e in zip(loop.initial_states, ends, strict=True)
    )
    return Checkpoints(_in_steps(outputs), starts), tuple(e[-1] for e in ends)


class _Later(NamedTuple):
    """What a chunk's reverse pass hands to the chunk before it, and its own gradients."""

    dr: tf.Tensor  # dr_t at the chunk's first step, (B, G)
    d_read: State  # the read states' gradients there
    d_inputs: tf.Tensor  # dx over the chunk, (K, B, E)
    d_weights: list  # the chunk's part of [dU, db']
    d_variables: list  # the chunk's part of the projection's variables' gradients


def backward_in_chunks(
    loop: Loop,
    inputs: tf.Tensor,
    kept: Checkpoints,
    d_outputs: tf.Tensor,
    d_final_states: State,
    chunk: int,
    variables: Sequence[tf.Variable],
) -> tuple[tf.Tensor, State, list[tf.Tensor], list[tf.Tensor]]:
    """The reverse `tf.scan` over the chunks, last first: each runs its forward pass again
    from its checkpoint, then its reverse scan, and adds its part of the weights' gradients.
    Returns dx (T, B, E), the initial states' gradients, [dU, db'] and the gradients of the
    `variables` that x W + b reads."""
    x = _in_chunks(inputs, chunk)
    d_out, outputs = _in_chunks(d_outputs, chunk), _in_chunks(kept.outputs, chunk)
    masks = None if loop.mask is None else _in_chunks(loop.mask, chunk)
    last = x.shape[0] - 1  # chunks, known when traced
    parts = loop.plan.combine is Combine.PARTS
    dr_end, _, d_read_end = _at_end(loop, d_final_states)
    weights = [loop.kernel] + ([] if loop.bias is None else [loop.bias])
    first = _Later(
        dr_end,
        d_read_end,
        tf.zeros_like(x[0]),
        [tf.zeros_like(w) for w in weights],
        [tf.zeros_like(v) for v in variables],
    )

    def step(later: _Later, j: tf.Tensor) -> _Later:
        x_j = x[j]
        with tf.GradientTape() as tape:
            tape.watch(x_j)
            projected = loop.cell.project_inputs(x_j)
        piece = _chunk(loop, projected, tuple(s[j] for s in kept.starts), masks, j)
        at_end = tf.equal(j, last)  # the final states' gradients reach the last chunk only
        d_final = tuple(tf.where(at_end, d, tf.zeros_like(d)) for d in d_final_states)
        after = (later.dr, tf.zeros_like(later.dr) if parts else (), later.d_read)
        dr, dp, d_read = _reverse(piece, forward(piece), d_out[j], d_final, after)
        d_x, *d_variables = tape.gradient(
            projected,
            [x_j, *variables],
            output_gradients=dp if parts else dr,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        d_weights = _recurrent_gradients(piece, outputs[j], dr)
        return _shaped_as(
            first, _Later(dr[0], tuple(d[0] for d in d_read), d_x, d_weights, d_variables)
        )

    # One chunk at a time: run side by side, TensorFlow's graph would hold several chunks'
    # recomputed arrays at once.
    back = tf.scan(step, tf.range(last + 1), initializer=first, reverse=True, parallel_iterations=1)
    d_initial = _initial_gradients(
        loop, back.dr[0], tuple(d[0] for d in back.d_read), d_final_states
    )
    d_weights = [tf.reduce_sum(d, 0) for d in back.d_weights]
    return (
        _in_steps(back.d_inputs),
        d_initial,
        d_weights,
        [tf.reduce_sum(d, 0) for d in back.d_variables],
    )


def _shaped_as(first: Any, values: Any) -> Any:
    """`values` with the shapes `first` has when traced, which a scan's carry must keep (the
    batch size, known outside the loop, is lost inside it)."""
    return tf.nest.map_structure(lambda f, v: tf.ensure_shape(v, f.shape), first, values)


def _chunk(loop: Loop, projected: tf.Tensor, starts: State, masks: Any, j: tf.Tensor) -> Loop:
    """Chunk j of `loop`, a loop of its own from the states `starts`."""
    mask = None if masks is None else masks[j]
    return loop._replace(projected=projected, initial_states=starts, mask=mask)


def _in_chunks(x: tf.Tensor, chunk: int) -> tf.Tensor:
    """(T, ...) -> (T / K, K, ...), keeping the shape known when traced."""
    chunks = tf.reshape(x, tf.concat([[-1, chunk], tf.shape(x)[1:]], 0))
    return tf.ensure_shape(chunks, [x.shape[0] // chunk, chunk, *x.shape[1:]])


def _in_steps(x: tf.Tensor) -> tf.Tensor:
    """(T / K, K, ...) -> (T, ...), keeping the shape known when traced."""
    steps = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
    return tf.ensure_shape(steps, [x.shape[0] * x.shape[1], *x.shape[2:]])


class Passes(NamedTuple):
    """The passes, run as they are or each compiled with XLA."""

    forward: Callable[[Loop], Kept] = forward
    backward: Callable[..., tuple] = backward
    forward_in_chunks: Callable[..., tuple] = forward_in_chunks
    backward_in_chunks: Callable[..., tuple] = backward_in_chunks

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
    chunk: int | None = None,
) -> tuple[tf.Tensor, State]:
    """`scan.unfold` with the hand-written backward pass, for a cell whose `fast_path()` is a
    `OneMatmulStep`: same arguments, same results. `passes` may be `Passes.compiled()`.

    `chunk`: keep only h_t and the states at every `chunk`-th step, and run each chunk's
    forward pass again going back (recomputation, Chen et al. 2016, "Training Deep Nets with
    Sublinear Memory Cost"); it must divide the number of steps, known when traced."""
    plan = cell.fast_path()
    if not isinstance(plan, OneMatmulStep):
        raise ValueError(
            f"{type(cell).__name__} offers no hand-written backward pass (its fast_path() is "
            f"{plan!r}); unfold it with unfold_rnn.scan.unfold."
        )
    if chunk is not None:
        return _unfold_in_chunks(
            cell, plan, inputs, initial_states, mask, recurrent_mask, passes, chunk
        )
    projected = cell.project_inputs(inputs)  # (T, B, G), all steps at once
    kernel, bias = cell.recurrent_weights()
    weights = [tf.cast(w, projected.dtype) for w in (kernel, bias) if w is not None]
    count = len(initial_states)

    @tf.custom_gradient
    def loop(projected: tf.Tensor, *args: tf.Tensor) -> Any:
        how = _loop(cell, plan, projected, args[:count], args[count:], mask, recurrent_mask)
        kept = passes.forward(how)

        def grad(d_outputs: tf.Tensor | None, *d_final: tf.Tensor | None) -> tuple:
            d_outputs, d_final = _filled(kept.states[0], how.initial_states, d_outputs, d_final)
            # Only a step that reads p_t apart from r_t (PARTS) reads it again: for the others,
            # x W + b need not be kept until the backward pass.
            back = how if plan.combine is Combine.PARTS else how._replace(projected=None)
            d_projected, d_initial, d_weights = passes.backward(back, kept, d_outputs, d_final)
            return (d_projected, *d_initial, *d_weights)

        return (kept.states[0], *(s[-1] for s in kept.states)), grad

    outputs, *final_states = loop(projected, *initial_states, *weights)
    return outputs, tuple(final_states)


def _unfold_in_chunks(
    cell: Any,
    plan: OneMatmulStep,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
    passes: Passes,
    chunk: int,
) -> tuple[tf.Tensor, State]:
    """`unfold` with `chunk`: the gradient also takes in x W + b, which each chunk projects
    and differentiates itself, so that no (T, B, G) array outlives a chunk."""
    steps = inputs.shape[0]
    if steps is None or chunk < 1 or steps % chunk:
        raise ValueError(
            f"chunk={chunk} must be a positive divisor of the number of steps, known when the "
            f"layer is traced; got {steps} steps."
        )
    kernel, bias = cell.recurrent_weights()
    weights = [tf.cast(w, inputs.dtype) for w in (kernel, bias) if w is not None]
    count = len(initial_states)

    @tf.custom_gradient
    def loop(inputs: tf.Tensor, *args: tf.Tensor) -> Any:
        how = _loop(cell, plan, None, args[:count], args[count:], mask, recurrent_mask)
        kept, final_states = passes.forward_in_chunks(how, inputs, chunk)

        def grad(d_outputs: Any, *d_final: Any, variables: Any = None) -> Any:
            d_outputs, d_final = _filled(kept.outputs, how.initial_states, d_outputs, d_final)
            variables = list(variables or [])
            d_inputs, d_initial, d_weights, d_variables = passes.backward_in_chunks(
                how, inputs, kept, d_outputs, d_final, chunk, variables
            )
            grads = (d_inputs, *d_initial, *d_weights)
            return (grads, d_variables) if variables else grads

        return (kept.outputs, *final_states), grad

    outputs, *final_states = loop(inputs, *initial_states, *weights)
    return outputs, tuple(final_states)


def _loop(
    cell: Any,
    plan: OneMatmulStep,
    projected: tf.Tensor | None,
    states0: Sequence[tf.Tensor],
    weights: Sequence[tf.Tensor],
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
) -> Loop:
    """The `Loop` of a custom gradient's arguments: the initial states, then U and b'."""
    bias = weights[1] if len(weights) > 1 else None
    return Loop(cell, plan, projected, tuple(states0), weights[0], bias, mask, recurrent_mask)


def _filled(outputs: tf.Tensor, states0: State, d_outputs: Any, d_final: Sequence) -> tuple:
    """The gradients of the outputs and final states, zeros where TensorFlow gave None."""
    d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
    d_final = tuple(
        tf.zeros_like(s) if d is None else d for s, d in zip(states0, d_final, strict=True)
    )
    return d_outputs, d_final
