"""Unfolding a cell over time: the package's only time loop.

`Unfold` turns a cell's single step into a layer over whole sequences. Written as the loop it
replaces, for inputs x of shape (batch, time, features):

    states = initial_state or zeros
    for t in range(time):                       # reversed(range(time)) with go_backwards
        states = cell.step(x[:, t] W + b, states)
        outputs[:, t] = states[0]

What the loop really does, in order:

1. swap to time-major, (B, T, D) -> (T, B, D), and reverse time for `go_backwards`;
2. project the inputs of every step at once, x W + b: one (T·B, D) x (D, gates·units) matmul
   instead of T small ones inside the loop;
3. `tf.scan` the cell's recurrent half over t, carrying the states; where a mask is given,
   a masked step carries the states unchanged (for cells whose step is one matmul,
   `_scan_with_bptt` runs the same loop with backpropagation through time written by hand,
   and a GRU or an LSTM takes a sequence longer than `_TIME_CHUNK` steps through steps 2 and
   3 in pieces of that many steps, one after another);
4. swap the outputs back to batch-major.

The public layers `VanillaRNN`, `GRU` and `LSTM` are thin: a cell plus Keras's arguments, so
any of them replaces `keras.layers.SimpleRNN`, `keras.layers.GRU` or `keras.layers.LSTM`
(same arguments, weights and numbers) in existing Keras code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from unfold_rnn import _checks
from unfold_rnn.cells import GRUCell, LSTMCell, VanillaCell, _masked, state_sizes

# Keras arguments that only matter to cuDNN or to Keras's own loop. Old scripts pass them, so
# they are accepted; our loop is always our own (tf.scan), never unrolled, never cuDNN.
_IGNORED_KERAS_ARGS = ("use_cudnn", "implementation", "time_major")


def _swap_batch_and_time(x: tf.Tensor) -> tf.Tensor:
    """(B, T, ...) <-> (T, B, ...): batch-major at every boundary, time-major in the loop."""
    return tf.transpose(x, [1, 0, *range(2, x.shape.rank)])


def _scan(step: Any, projected: tf.Tensor, initial_states: tuple, mask: tf.Tensor | None):
    """The time loop: states_t = step(projected[t], states_{t-1}), for every t.

    Args:
        step: `(x_t, states) -> new states`, one time step.
        projected: (T, B, G) inputs, time-major.
        initial_states: tuple of (B, size) tensors.
        mask: (T, B) bool or None. A masked step keeps the states it was given.

    Returns:
        A tuple with each state at every step, each (T, B, size).
    """
    if mask is None:
        return tf.scan(lambda states, x_t: tuple(step(x_t, states)), projected, initial_states)

    def masked_step(states, elems):
        x_t, keep_t = elems  # (B, G), (B,)
        return _keep_where(keep_t, step(x_t, states), states)

    return tf.scan(masked_step, (projected, mask), initial_states)


def _keep_where(keep_t: tf.Tensor | None, new: Sequence[tf.Tensor], old: Sequence[tf.Tensor]):
    """The new states where keep_t (B,) is True, the old ones elsewhere."""
    if keep_t is None:
        return tuple(new)
    return tuple(tf.where(keep_t[:, None], n, o) for n, o in zip(new, old, strict=True))


def _slots(tensor: tf.Tensor) -> tf.TensorArray:
    """`tensor` (T, ...) as a TensorArray of its T slices. Under XLA a write to slot t
    overwrites that slice of the same buffer (no copy), so a loop can replace what it reads.
    Slots stay after a read (eager TensorArrays would otherwise empty them)."""
    slots = tf.TensorArray(tensor.dtype, size=tf.shape(tensor)[0], clear_after_read=False)
    return slots.unstack(tensor)


class _Columns(NamedTuple):
    """A batch-major (B, T, size) tensor read and written one step t at a time, as the
    TensorArrays of the time-major loops are. Under XLA a write updates column t of the same
    buffer, as a TensorArray's does slot t (a scatter: XLA has it in place, at the same
    speed as a TensorArray's write, measured here)."""

    tensor: tf.Tensor

    def read(self, t: tf.Tensor) -> tf.Tensor:
        return self.tensor[:, t]

    def write(self, t: tf.Tensor, value: tf.Tensor) -> _Columns:
        batch = tf.shape(value)[0]
        where = tf.stack([tf.range(batch), tf.fill([batch], t)], axis=1)
        return _Columns(tf.tensor_scatter_nd_update(self.tensor, where, value))

    def stack(self) -> tf.Tensor:
        return self.tensor


def _empty_slots(steps: tf.Tensor, like: tf.Tensor) -> tf.TensorArray:
    """A TensorArray of `steps` slots, each shaped like `like`."""
    return tf.TensorArray(like.dtype, size=steps, element_shape=like.shape, clear_after_read=False)


class _Step(NamedTuple):
    """One step of `_scan_with_bptt`, split as both of its loops use it: the matmul
    r_t = (h_{t-1} * m) U + b', then the cell's element-wise rest."""

    cell: Any
    projection: tuple  # (U, b' or None): the tensors the gradient is taken for
    input_bias: tf.Tensor | None  # b, added to each x_t W inside the loop (None: no bias)
    mask: tf.Tensor | None  # (T, B): False where a step keeps the states it was given
    recurrent_mask: tf.Tensor | None  # (B, H): m, the recurrent dropout mask
    # For a cell that does not add its projections: 0 to keep r_t and x W whole for the
    # backward pass; a > 0 to keep k_t = r_t + (x_t W + b with its last a columns zeroed),
    # and x W's last a columns, which are all that cell's `combine` reads apart.
    apart: int = 0
    # x W and the states' history batch-major, (B, T, size), not time-major (`_Columns`).
    batch_major: bool = False
    # The forward loop keeps h_t, the outputs, rather than h_{t-1}; the backward pass reads
    # h_{t-1} from them (`_backward_in_pieces`).
    keeps_outputs: bool = False

    def at(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:  # step t of x W or of a history
        return x[:, t] if self.batch_major else x[t]

    def steps(self, x: tf.Tensor) -> tf.Tensor:  # how many steps x W or a history holds
        return tf.shape(x)[1 if self.batch_major else 0]

    def plus_input_bias(self, p: tf.Tensor) -> tf.Tensor:  # x_t W -> x_t W + b
        return p if self.input_bias is None else p + self.input_bias

    def matmul(self, h: tf.Tensor) -> tf.Tensor:
        return self.cell.project_state(h, self.recurrent_mask, self.projection)

    def rest(self, t: tf.Tensor, p_t: Any, saved_t: tf.Tensor, states: Sequence[tf.Tensor]):
        """The new states from the saved z_t (cells that add the projections) or from p_t
        and r_t; the old ones where step t is masked."""
        if self.cell.adds_projections:
            new = self.cell.combine_sum(saved_t, tuple(states))[0]
        else:
            new = self.cell.combine(p_t, saved_t, tuple(states))[0]
        return _keep_where(None if self.mask is None else self.mask[t], new, states)


def _forward_through_time(step: _Step, projected: tf.Tensor, initial_states: tuple):
    """The forward loop over x_t W (T, B, G). Returns h at every step, batch-major (B, T, H),
    the final states, and what the backward loop reads: the states each step started from
    (states_{t-1}, each (T, B, size)) and, (T, B, G), z_t = x_t W + b + r_t for cells that
    add the projections, r_t otherwise (k_t with `step.apart`); nothing, `()`, for a cell
    whose act'(z_t) follows from h_t (`slope_from_output`). With `step.batch_major`, x W and
    the states' history are (B, T, ...). With `step.keeps_outputs` the loop keeps h_t, not
    states_{t-1}, and returns no history: the outputs are what the backward pass reads."""
    adds = step.cell.adds_projections
    keeps = step.cell.slope_from_output() is None
    steps = step.steps(projected)

    # A cell that adds the projections reads x_t W only in z_t's sum, which is written out.
    # One that does not (GRU) reads three blocks of it in its element-wise step, and XLA's
    # CPU backend made that fusion, with the slice x W[t] inside it, a scalar loop (~0.2 ms a
    # step at 64 x 256); so the loop carries x_t W, sliced one step ahead. The GRU language
    # model's training step (batch 64 x 100, benchmarks/speed.py, ours+xla base) went from
    # ~44-52k to ~59-63k tokens/s. The LSTM and Vanilla steps were ~10% slower with the carry.
    carry = not adds

    def forward(t, states, saved, stacks, carried):
        if not step.keeps_outputs:  # states_{t-1}
            stacks = [s.write(t, state) for s, state in zip(stacks, states, strict=True)]
        p_t = step.plus_input_bias(carried if carry else step.at(projected, t))
        r_t = step.matmul(states[0])
        saved_t = p_t + r_t if adds else r_t
        # z_t goes to an array of its own. Written over x_t W's slot and read back from it,
        # it saved one (T, B, G) array but cost XLA on CPU ~0.2 ms a step: the training step
        # of a 1 x 256 LSTM language model (batch 64 x 100, benchmarks/step_profile.py) took
        # 131-143 ms that way, 112-114 ms this way.
        new_states = step.rest(t, p_t, saved_t, states)
        if step.keeps_outputs:  # h_t
            stacks = [stacks[0].write(t, new_states[0])]
        carried = projected[tf.minimum(t + 1, steps - 1)] if carry else ()
        if step.apart:  # k_t: the sums of the blocks read summed, then r_t's columns apart
            a = step.apart
            saved_t = tf.concat([saved_t[:, :-a] + p_t[:, :-a], saved_t[:, -a:]], axis=1)
        return t + 1, new_states, saved.write(t, saved_t) if keeps else (), stacks, carried

    saved = _empty_slots(steps, projected[0]) if keeps else ()
    kept = initial_states[:1] if step.keeps_outputs else initial_states  # h, or every state
    if step.batch_major:
        # Every column is written before it is read. (tf.zeros_like here had XLA's compiler
        # take ~130 MB more resident memory at 1,000 steps; x W times 0 is not a constant.)
        stacks = [_Columns(projected * 0.0) for _ in kept]
    else:
        stacks = [_empty_slots(steps, s) for s in kept]
    _, final_states, saved, stacks, _ = tf.while_loop(
        lambda t, *_: t < steps,
        forward,
        (tf.constant(0), initial_states, saved, stacks, projected[0] if carry else ()),
        maximum_iterations=steps,
    )
    # states_{t-1}: what the backward loop reads, and h_{t-1} is the left factor of dU as it
    # stands (h_t would need a shifted copy).
    previous = tuple(s.stack() for s in stacks)
    if step.keeps_outputs:
        outputs = previous[0] if step.batch_major else _swap_batch_and_time(previous[0])
        return outputs, tuple(final_states), (), ()
    # h_t at every step, batch-major: the gradient arrives batch-major too, and the backward
    # loop reads it in place (a time-major output would be transposed into a copy going back).
    if step.batch_major:
        outputs = tf.concat([previous[0][:, 1:], final_states[0][:, None]], axis=1)
    else:
        outputs = tf.concat([previous[0][1:], final_states[0][None]], axis=0)
        outputs = _swap_batch_and_time(outputs)
    return outputs, tuple(final_states), previous, saved.stack() if keeps else ()


def _backward_through_time(
    step: _Step,
    d_outputs: tf.Tensor | None,
    d_final_states: list[tf.Tensor],
    saved: tf.Tensor | tuple,
    previous: tuple,
    projected: tf.Tensor | None,
    last_h: tf.Tensor | tuple,
):
    """The backward loop, t = T-1 .. 0, given the gradients of h at every step (B, T, H),
    and of the final states, then the weights' gradients. Returns dp_t at every step, (T, B,
    G) (written over x_t W; dr_t itself, written over `saved`, if the cell adds its
    projections), the gradients of the initial states, and [dU, db' if the step has b', db
    if it adds b]. `projected` (x W; its last `step.apart` columns, if any) is read only by a
    cell that does not add them; `last_h`, h_T, only by a cell whose act'(z_t) follows from
    h_t (it keeps no `saved`, and the loop carries h_t back from h_T). With
    `step.batch_major`, the history and dp_t are (B, T, ...), and dz_t is written over the
    gradient of h_t, `d_outputs`."""
    adds = step.cell.adds_projections
    slope = step.cell.slope_from_output()
    # U^T laid out once before the loop: each step's dr_t U^T then reads it row by row
    # (with transpose_b XLA's CPU matmul was ~12% slower per step, measured here).
    kernel_t = tf.transpose(step.projection[0])

    def backward(t, ds, d_saved, d_projected, h_t):
        prev_t = [step.at(s, t) for s in previous]
        if step.batch_major:  # g_t arrives in the slot that dz_t overwrites
            ds = [ds[0] + d_saved.read(t), *ds[1:]]
        elif d_outputs is not None:
            ds = [ds[0] + d_outputs[:, t], *ds[1:]]
        if slope is not None:
            # h_t = act(z_t), or h_{t-1} where step t is masked: dz_t = g_t act'(z_t) there
            # and 0 here, where g_t passes to h_{t-1} instead.
            keep_t = None if step.mask is None else step.mask[t]
            zeros = tf.zeros_like(ds[0])
            (dr_t,) = _keep_where(keep_t, [ds[0] * slope(h_t)], [zeros])
            dprev = list(_keep_where(keep_t, [zeros], [ds[0]]))
            h_t = prev_t[0]
        else:
            saved_t = d_saved.read(t)
            if step.apart:  # x_t W + b and r_t as `combine` takes them, from k_t
                p_t, saved_t = _from_kept(step, saved_t, d_projected.read(t))
            else:
                p_t = () if adds else step.plus_input_bias(d_projected.read(t))
            sources = [saved_t, *prev_t] + ([] if adds else [p_t])
            with tf.GradientTape() as tape:
                tape.watch(sources)
                new_states = step.rest(t, p_t, saved_t, prev_t)
            dr_t, *dprev = tape.gradient(
                new_states,
                sources,
                output_gradients=ds,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
        if not adds:  # dp_t; with `apart`, its last columns (the others are dr_t's)
            dp_t = dprev.pop()
            d_projected = d_projected.write(t, dp_t[:, -step.apart :] if step.apart else dp_t)
        dh = tf.matmul(dr_t, kernel_t)  # (B, H)
        dprev[0] = dprev[0] + _masked(dh, step.recurrent_mask)
        return t - 1, dprev, d_saved.write(t, dr_t), d_projected, h_t

    steps = step.steps(previous[0])
    # dr_t overwrites z_t (or r_t), and dp_t overwrites p_t. With no z_t kept, dz_t goes to
    # an array of its own, or batch-major over the gradient of h_t, read just before.
    if step.batch_major:
        d_saved = _Columns(tf.zeros_like(previous[0]) if d_outputs is None else d_outputs)
    elif slope is None:
        d_saved = _slots(saved)
    else:
        d_saved = _empty_slots(steps, last_h)
    d_projected = () if adds else _slots(projected)
    carried_h = last_h if slope is not None else ()
    _, d_initial, d_recurrent, d_projected, _ = tf.while_loop(
        lambda t, *_: t >= 0,
        backward,
        (steps - 1, d_final_states, d_saved, d_projected, carried_h),
        maximum_iterations=steps,
    )
    d_recurrent = d_recurrent.stack()
    d_projected = d_recurrent if adds else d_projected.stack()
    m = step.recurrent_mask
    if m is not None and step.batch_major:
        m = m[:, None]  # (B, 1, H), for every step
    h_in = _masked(previous[0], m)  # (T, B, H) or (B, T, H): h_{t-1} * m
    # (T·B, H)ᵀ (T·B, G) as one matmul that reads h_in transposed (a tensordot would first
    # write out a transposed copy).
    d_weights = [tf.matmul(_rows(h_in), _rows(d_recurrent), transpose_a=True)]
    # db' and db, each summed over an array the loop wrote. With `apart`, dp_t's summed blocks
    # are dr_t's, and db takes their part from db'. (The sum of the joined dp_t, a concat,
    # XLA made a strided reduce-window: 3.5 ms a step at batch 64 x 100 and 256 units.)
    d_recurrent_sum = None
    if step.projection[1] is not None or step.apart:
        d_recurrent_sum = tf.reduce_sum(d_recurrent, axis=[0, 1])
    if step.projection[1] is not None:
        d_weights.append(d_recurrent_sum)
    if step.input_bias is not None:
        d_input_bias = tf.reduce_sum(d_projected, axis=[0, 1])
        if step.apart:
            d_input_bias = tf.concat([d_recurrent_sum[: -step.apart], d_input_bias], axis=0)
        d_weights.append(d_input_bias)
    if step.apart:  # the summed blocks' gradient is dr_t's
        d_projected = tf.concat([d_recurrent[..., : -step.apart], d_projected], axis=-1)
    return d_projected, d_initial, d_weights


def _backward_in_pieces(
    step: _Step,
    d_outputs: tf.Tensor | None,
    d_final_states: list[tf.Tensor],
    outputs: tf.Tensor,
    h0: tf.Tensor,
    inputs: tf.Tensor,
    input_kernel: tf.Tensor,
):
    """The backward pass of a Vanilla RNN whose forward pass kept only its outputs
    (`step.keeps_outputs`), a piece of `_TIME_CHUNK` steps at a time, the last piece (which
    holds what is left over) first. Each piece reads its h_{t-1} from the outputs (h_0 before
    the first step), runs `_backward_through_time` over its steps from the states' gradients
    that the piece after it ended with, and then takes its share of dU, of dW (x_pieceᵀ
    dz_piece) and of dx (dz_piece Wᵀ), one matmul each, so that no dz_t is kept for the
    whole sequence. x (`inputs`) and dx are (T, B, D), or (B, T, D) with `step.batch_major`;
    each piece runs time-major (batch-major, writing dz_t over a copy of the piece's
    gradient, it trained 2-10% slower at 100 and 1,000 steps). Returns dx, the gradients of
    the initial states, and `_backward_through_time`'s weights' gradients, then dW."""
    steps = step.steps(inputs)
    # The last piece holds what is left over (all of it when steps <= _TIME_CHUNK).
    top = steps - _TIME_CHUNK * ((steps - 1) // _TIME_CHUNK)
    kernel_t = tf.transpose(input_kernel)

    def piece(start, size, ds, dx):
        def cut(x, axis):  # steps [start, start + size) of x along `axis`
            begin, sizes = [0] * x.shape.rank, tf.unstack(tf.shape(x))
            begin[axis], sizes[axis] = start, size
            return tf.slice(x, tf.stack(begin), tf.stack(sizes))

        mask = None if step.mask is None else cut(step.mask, 0)
        d_piece = None if d_outputs is None else cut(d_outputs, 1)
        # h_{t-1} of the piece's steps, time-major: the outputs one step back, h_0 before them.
        back_one = start - 1 + tf.range(size)
        previous = tf.gather(outputs, tf.maximum(back_one, 0), axis=1)
        previous = tf.where((back_one >= 0)[None, :, None], previous, h0[:, None])
        last_h = outputs[:, start + size - 1]
        dz, ds, d_weights = _backward_through_time(
            step._replace(mask=mask, batch_major=False),
            d_piece,
            ds,
            (),
            (_swap_batch_and_time(previous),),
            None,
            last_h,
        )
        x = cut(inputs, 1 if step.batch_major else 0)
        if step.batch_major:
            x = _swap_batch_and_time(x)
        d_weights.append(tf.matmul(_rows(x), _rows(dz), transpose_a=True))
        dx_piece = tf.reshape(tf.matmul(_rows(dz), kernel_t), tf.shape(x))
        return (
            ds,
            d_weights,
            tf.tensor_scatter_nd_update(dx, (start + tf.range(size))[:, None], dx_piece),
        )

    # dx, written a piece at a time (under XLA in place). Every step is written; x times 0
    # is not a constant, which tf.zeros_like would have XLA's compiler hold.
    dx = (_swap_batch_and_time(inputs) if step.batch_major else inputs) * 0.0
    ds, d_weights, dx = piece(steps - top, top, d_final_states, dx)
    # The loop's pieces are _TIME_CHUNK steps long; `size` says so to XLA, which compiles the
    # loop (and checks its slices) even when it runs no piece.
    size = tf.minimum(steps, _TIME_CHUNK)

    def back(c, ds, d_weights, dx):
        ds, more, dx = piece(c * size, size, ds, dx)
        return c - 1, ds, [a + b for a, b in zip(d_weights, more, strict=True)], dx

    count = (steps - top) // _TIME_CHUNK
    _, d_initial, d_weights, dx = tf.while_loop(
        lambda c, *_: c >= 0, back, (count - 1, ds, d_weights, dx), maximum_iterations=count
    )
    return _swap_batch_and_time(dx) if step.batch_major else dx, d_initial, d_weights


def _from_kept(step: _Step, kept_t: tf.Tensor, apart_t: tf.Tensor):
    """x_t W + b and r_t as the cell's `combine` reads them, rebuilt from k_t and x_t W's
    last columns: the summed blocks' sums stand in for x_t W + b there, zeros for r_t. The
    gradients `combine` then gives them are dp_t's and dr_t's: the sum's, in both, for the
    blocks read summed."""
    a = step.apart
    bias = 0.0 if step.input_bias is None else step.input_bias[-a:]
    summed, recurrent_apart = kept_t[:, :-a], kept_t[:, -a:]
    p_t = tf.concat([summed, apart_t + bias], axis=1)
    r_t = tf.concat([tf.zeros_like(summed), recurrent_apart], axis=1)
    return p_t, r_t


class _Passes(NamedTuple):
    """The passes of `_scan_with_bptt` (forward; backward whole or in pieces), run as they
    are or each compiled with XLA."""

    forward: Any = _forward_through_time
    backward: Any = _backward_through_time
    backward_in_pieces: Any = _backward_in_pieces

    @classmethod
    def compiled(cls) -> _Passes:
        return cls(*(tf.function(f, jit_compile=True) for f in cls()))


_UNCOMPILED = _Passes()


def _scan_with_bptt(
    cell: Any,
    projected: tf.Tensor,
    initial_states: tuple,
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
    input_bias: tf.Tensor | None = None,
    passes: _Passes = _UNCOMPILED,
    batch_major: bool = False,
    input_kernel: tf.Tensor | None = None,
):
    """`_scan` over `cell.step`, with backpropagation through time written by hand.

    `projected` holds x_t W + b for every step, or x_t W alone when `input_bias` (b) is given,
    which the loop then adds to each step's slice. The forward pass is the same loop; it also
    keeps r_t = (h_{t-1} * m) U + b', the step's one matmul (m: the recurrent dropout mask,
    b': GRU's recurrent bias), or for cells that only use the sum z_t = x_t W + b + r_t,
    z_t. Going back, with g_t the gradient reaching the states at step t,

        for t = T-1 .. 0:
            dp_t, dr_t, ds = VJP of cell.combine at step t, applied to g_t + ds
            ds[h] += (dr_t U^T) * m           the one matmul of a backward step
        dU  = sum_t (h_{t-1} * m)^T dr_t      one (H, T·B) x (T·B, G) matmul after the loop
        db' = sum_t dr_t,   db = sum_t dp_t

    Autodiff through tf.scan instead computes dU at every step and keeps every intermediate
    of the step; this keeps r_t (or z_t) only and recomputes the element-wise rest. The numbers
    are the same (tests compare both against Keras's layers and against autodiff).

    A Vanilla RNN whose activation's slope follows from its output (tanh, sigmoid, relu:
    `cell.slope_from_output()`) keeps not even z_t: dz_t = g_t act'(z_t) is computed from
    h_t, which the states' stacks hold anyway (h_T for the last step). In a plain `fit` of
    the Vanilla language model at 1,000 steps (`benchmarks/speed.py --memory-only`, three
    runs each, taking turns) the step's peak went from 349-351 to 287-289 MB allocated and
    from 486-494 to 418-425 MB resident, and it trained 0-16% faster (median 7%, base and
    long, four processes each); inside XLA its memory stayed 256 MB (dz_t, which overwrote
    z_t, now needs an array of its own) and its speed moved 0.98-1.01x.

    Inside one XLA program such a Vanilla RNN runs batch-major (`step.batch_major`): x W and
    the history of h are (B, T, H), as the outputs and their gradient are, and the backward
    loop writes dz_t over the gradient of h_t where it arrived, once it has read it. Time-
    major, three (T, B, H) arrays were alive at once going back (h_{t-1}, the outputs'
    gradient and dz_t, which has no z_t to overwrite); batch-major, two, and dU, dW and the
    gradient of x are still one matmul each, of batch-major arrays. At 1,000 steps the
    step's tensors went from 237 to 175 MiB (`benchmarks/speed.py --memory-only`, its
    `tensors` row; the BFC allocator counts 256 MB for both) and its resident memory from
    438-439 to 355-360 MB (two runs each, taking turns), at the same speed (0.89-1.06x,
    median 1.02; base, wide, long and 2 layers, three processes each, taking turns).
    Outside XLA a write into a column (a scatter) copies the whole array, 2.8 ms a step at
    1,000 steps here, so passes that are not compiled keep the time-major TensorArrays.

    In a plain `fit` (each pass its own XLA program) such a Vanilla RNN, over more than
    `_TIME_CHUNK` steps, is given x and W (`input_kernel`) rather than x W, and its forward
    pass keeps only the outputs, h_t. Its backward pass (`_backward_in_pieces`) reads h_{t-1}
    from them, and goes back a piece of `_TIME_CHUNK` steps at a time, taking that piece's
    share of dU, dW and dx (one matmul each) before the next, so that no dz_t is kept for
    the whole sequence. The backward program cannot overwrite the gradient of the outputs
    (TensorFlow does not donate a compiled function's inputs), so before this it held four
    (T, B, H) arrays at its peak: the outputs, h_{t-1}, their gradient and dz_t. At 1,000
    steps the plain step's tensors went from 266-283 to 200-216 MiB (Keras's SimpleRNN:
    236 in the earlier runs, 298 in these) and the BFC allocator's count from 270 to 207 MB
    (`benchmarks/speed.py --memory-only --cells vanilla`, two runs), at 0.98-1.03x the speed
    (median 1.00, four processes each, taking turns); its resident memory stayed where it
    was (385-436 MB against 417-431: TensorFlow's default allocator keeps what it has
    taken). Going back in one piece saves nothing, and at 100 steps it measured 0.87-0.98x
    the speed (median 0.96), so shorter sequences go back whole, as before.

    A GRU in a plain `fit` (outside one XLA program; `step.apart`) keeps less: its gates z
    and r read x_t W + b and r_t only through their sum, and its candidate reads both apart,
    so the forward pass keeps k_t = [the sums' blocks, r_t's candidate block] and the
    backward pass x W's candidate block alone, instead of r_t and all of x W. Going back,
    `combine` gets the sums in place of x_t W + b and zeros in place of r_t there, and the
    gradients it gives are then dp_t's and dr_t's (`_from_kept`). At 1,000 steps the plain
    step went from 668-722 to 556-573 MB allocated and from 908-916 to 784-805 MB resident
    (`benchmarks/speed.py --memory-only --cells gru`, two runs each, taking turns), and
    trained 0.92-1.14x as fast (median 0.98; base and long, three processes each). Inside
    one XLA program a first version raised the step from 549 to 595 MB and slowed it to
    0.88-0.91x, so it is not used there.

    Recomputing beats keeping the activations here. A version that kept each step's gate
    activations and wrote each cell's derivative by hand (sigmoid' = s (1 - s), tanh' =
    1 - t², so that the backward step computes no sigmoid or tanh) trained the language model
    of `benchmarks/speed.py` (ours+xla, base) slower or no faster on a Zen 5 CPU, three
    processes each, taking turns: LSTM 98-100k against 118-120k tokens/s, GRU 119-123k
    against 122-124k, Vanilla RNN 294-301k against 305-314k (in a plain `fit` the Vanilla RNN
    gained 4%). XLA spread the hand-written step over more fusions, each reading the kept
    arrays again (the LSTM's tanh(c_t), recomputed there, alone took ~70 us a step), and the
    gradients had to go to an array of their own: written over the kept slots, they made XLA
    copy the whole array at every step.

    Both loops are `tf.while_loop`s over TensorArrays, the parts `tf.scan` is made of, written
    out so that each backward step overwrites the slot it has read: dz_t replaces z_t (GRU:
    dr_t replaces r_t, dp_t replaces x_t W). `tf.scan` writes every step's result into a new
    array, and XLA then keeps several (T, B, G) arrays alive at once. The forward loop writes
    z_t (or r_t) into one new array; x W is not needed after it when the cell adds the
    projections. Peak memory of an LSTM language model's XLA training step at 1,000 steps,
    run in `Unfold`'s pieces (`benchmarks/speed.py --memory-only`): 853-879 MB resident,
    Keras's built-in 795-919 from run to run; 516 MB of tensors alive at once, Keras's
    628-690.

    The gradient is defined around the two passes, not inside them: `passes` may compile
    each with XLA (`_Passes.compiled()`), and each then gets exactly the tensors it reads.
    (With `tf.custom_gradient` inside one compiled function, TensorFlow's gradient of that
    function kept a copy of each of its inputs, x W included, for zeros it never used. In a
    plain `model.fit` at 1,000 steps, memory went 1,497 -> 1,214 MB for an LSTM, 1,428 ->
    1,184 for a GRU and 560 -> 488 for a Vanilla RNN language model, at the same speed.)

    Returns:
        h at every step, batch-major (B, T, H), and the final states, each (B, size).
    """
    kernel, bias = cell.recurrent_weights()
    dtype = projected.dtype
    weights = [tf.cast(w, dtype) for w in (kernel, bias, input_bias, input_kernel) if w is not None]
    count = len(initial_states)

    @tf.custom_gradient
    def loop(projected, *args):
        states0, weights = tuple(args[:count]), list(args[count:])
        w_in = [weights.pop()] if input_kernel is not None else []  # with x, given as projected
        b_in = weights.pop() if input_bias is not None else None
        projection = (weights[0], weights[1] if bias is not None else None)
        # A plain `fit` (outside one XLA program) keeps of the GRU's x W only its candidate's
        # block; see the docstring.
        apart = 0 if _inside_xla_program() else cell.columns_apart
        step = _Step(cell, projection, b_in, mask, recurrent_mask, apart, batch_major, bool(w_in))
        # What the backward pass reads of x W, taken here so that it keeps no more of it.
        read_apart = projected[..., -apart:] if apart else projected
        if w_in:
            x, projected = projected, tf.tensordot(projected, w_in[0], axes=1)
        outputs, final_states, previous, saved = passes.forward(step, projected, states0)

        def grad(d_outputs, *d_final_states):
            # The gradients of h_t at every step, and of the final states (the gradient of
            # a state's whole sequence would be zeros but for its last step: it stays out).
            d_final = [
                tf.zeros_like(s) if d is None else d
                for s, d in zip(states0, d_final_states, strict=True)
            ]
            if input_kernel is not None:
                d_inputs, d_initial, d_weights = passes.backward_in_pieces(
                    step, d_outputs, d_final, outputs, states0[0], x, *w_in
                )
                return (d_inputs, *d_initial, *d_weights)
            # x W goes back only to a cell that reads it in its element-wise step.
            inputs = None if cell.adds_projections else read_apart
            # h_T, from which a cell that keeps no z_t walks back.
            last_h = final_states[0] if cell.slope_from_output() is not None else ()
            d_projected, d_initial, d_weights = passes.backward(
                step, d_outputs, d_final, saved, previous, inputs, last_h
            )
            return (d_projected, *d_initial, *d_weights)

        return (outputs, *final_states), grad

    outputs, *final_states = loop(projected, *initial_states, *weights)
    return outputs, final_states


# A GRU's or an LSTM's sequences longer than this many steps go through `_scan_with_bptt` in
# pieces of this many steps, one after another, each piece starting from the states the one
# before it ended with. Outside an XLA program (a plain `fit`), the forward and backward
# passes are programs of their own, and the backward one copies its saved (T, B, gates·units)
# arrays before it overwrites them: then a piece's only. An LSTM gains in both kinds of
# training step: a piece's x W is freed once its own loop has run, so x W and the saved z_t
# together fill one (T, B, 4·units) array's room, not two (at 1,000 steps, batch 64 and 256
# units: 250 MB). (In a plain `fit` TensorFlow computes every piece's x W up front; each gives
# way to its piece's z_t as the pieces run, by TensorFlow's memory profile of a step.) Inside
# an XLA program the GRU runs whole, as pieces raised its peak memory there (joining the
# pieces' outputs costs one more copy of them, and its backward pass keeps every piece's x W
# anyway). The Vanilla RNN runs whole everywhere: its arrays are no wider than its outputs,
# and pieces did not lower its memory (outside XLA it goes back through time in pieces of
# this many steps instead: `_backward_in_pieces`). Measured at 1,000 steps, at the same
# speed: README, "Speed". Sequences of unknown length run whole.
_TIME_CHUNK = 100
_CELLS_IN_PIECES: tuple[type, ...] = (GRUCell, LSTMCell)
_CELLS_IN_PIECES_UNDER_XLA: tuple[type, ...] = (LSTMCell,)


def _inside_xla_program() -> bool:
    """Whether the layer is being traced into a program that XLA compiles whole, such as
    Keras's training step with `jit_compile=True`. `tf.__internal__` is the namespace that
    TensorFlow exports for Keras; were the function gone, a GRU would run in pieces there too."""
    enclosing = getattr(tf.__internal__, "get_enclosing_xla_context", None)
    return enclosing is not None and enclosing() is not None


def _time_chunks(cell: Any, steps: int | None) -> list[slice]:
    """The pieces of a time axis of `steps` steps that `cell` runs over, one after another."""
    cells = _CELLS_IN_PIECES_UNDER_XLA if _inside_xla_program() else _CELLS_IN_PIECES
    if steps is None or steps <= _TIME_CHUNK or not isinstance(cell, cells):
        return [slice(None)]
    return [slice(t, min(t + _TIME_CHUNK, steps)) for t in range(0, steps, _TIME_CHUNK)]


def _runs_batch_major(cell: Any, chunks: list[slice], in_pieces: bool, passes: _Passes) -> bool:
    """Whether `cell` runs batch-major (see `_scan_with_bptt`): a Vanilla RNN whose slope
    follows from its output, over the whole sequence inside one XLA program, or going back in
    pieces (`in_pieces`) with compiled passes (outside XLA a write into a column copies the
    whole array)."""
    if in_pieces:
        return passes is not _UNCOMPILED
    whole = chunks == [slice(None)]
    return whole and cell.slope_from_output() is not None and _inside_xla_program()


def _goes_back_in_pieces(cell: Any, steps: int | None) -> bool:
    """Whether `cell` goes back through time a piece at a time (`_backward_in_pieces`): a
    Vanilla RNN whose slope follows from its output, outside one XLA program, over more than
    `_TIME_CHUNK` steps (or a number not known when traced)."""
    longer = steps is None or steps > _TIME_CHUNK
    return longer and cell.slope_from_output() is not None and not _inside_xla_program()


def _rows(x: tf.Tensor) -> tf.Tensor:
    """(T, B, size) -> (T·B, size)."""
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


@keras.saving.register_keras_serializable(package="unfold_rnn")
class Unfold(keras.layers.Layer):
    """A cell of this package, unfolded over time with `tf.scan`.

    The layer knows nothing of gates: the cell gives `project_inputs` (x W + b for all steps)
    and `step` (the recurrent half); the layer owns time, masks, direction, initial and
    carried states and dropout masks. The cell's output is the first of its states (h_t).

    Args:
        cell: a `VanillaCell`, `GRUCell` or `LSTMCell` (or a cell with the same methods).
        return_sequences: return the output at every step, (B, T, units), rather than the
            last, (B, units).
        return_state: also return the final states, as `[output, *states]`.
        go_backwards: read the sequence from the end; outputs come in the order processed.
        stateful: carry the final states of one batch into the next (sample i to sample i);
            needs a fixed batch size. `reset_state()` sets them back to zeros.
        zero_output_for_mask: write zeros at masked steps rather than repeating the last
            output (`keras.layers.Bidirectional` turns this on when returning sequences).
        unroll: accepted for compatibility with Keras and ignored: the loop is always a scan.
        jit_compile: when the layer runs in a graph (`model.fit`, `tf.function`), compile its
            time loop, forward and backward, with XLA, even when the model around it is not
            compiled (Keras does not use XLA on CPU-only machines unless asked). Measured on
            a 2-core CPU, 1 x 256 LSTM language model in a plain `model.fit`: ~40k tokens/s
            with it, ~30k without (`benchmarks/speed.py`). Each new input shape is compiled
            once (about a second); with sequence lengths that change from batch to batch,
            turn it off. Eager calls never compile.

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
        jit_compile: bool = True,
        **kwargs: Any,
    ) -> None:
        _checks.require_tensorflow_backend(type(self).__name__)
        for name in _IGNORED_KERAS_ARGS:
            kwargs.pop(name, None)
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.jit_compile = bool(jit_compile)
        self.supports_masking = True
        # The time loop's two passes, forward and backward, each compiled by XLA; traced (and
        # compiled) once per input shape. Kept past Keras's tracking: they are functions, not
        # sublayers. x W stays outside them: with tensordot (which reshapes by the dynamic
        # batch size) inside, a Keras XLA step over batches of unknown size was recompiled at
        # every call.
        object.__setattr__(self, "_compiled_passes", _Passes.compiled())
        # As in Keras, the carried states of a stateful layer are not weights: they are not
        # saved, and a stateful layer has exactly the weights of a stateless one. Setting them
        # past Keras's attribute tracking keeps them out of `weights`.
        object.__setattr__(self, "_state_variables", None)

    @property
    def states(self) -> list[keras.Variable] | None:
        """The carried states of a stateful layer (None otherwise, or before it is built)."""
        return self._state_variables

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
        if self.stateful and self._state_variables is None:
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
            object.__setattr__(self, "_state_variables", variables)

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
        for variable in self._state_variables or ():
            variable.assign(tf.zeros_like(variable))

    reset_states = reset_state  # Keras 2's name, still used by older scripts

    def _initial_states(self, sequences: tf.Tensor, initial_state: Any) -> tuple:
        dtype = self.compute_dtype
        if initial_state is None:
            if self._state_variables is not None:
                return tuple(tf.cast(v, dtype) for v in self._state_variables)
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
        expected = self._state_variables[0].shape[0]
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
        self._check_sequences_shape(sequences.shape)
        if not sequences.dtype.is_floating:
            raise ValueError(
                f"{type(self).__name__} expects float inputs; got {sequences.dtype.name}. "
                "For token ids, put a keras.layers.Embedding in front."
            )
        if self._state_variables is not None:
            self._check_stateful_batch(sequences)
        cell = self.cell
        states = self._initial_states(sequences, initial_state)
        batch_size = tf.shape(sequences)[0]

        # Variational dropout: one mask per sequence, the same at every step.
        if training and cell.dropout > 0:
            input_mask = cell.dropout_mask((batch_size, sequences.shape[-1]), cell.dropout)
            sequences = sequences * input_mask[:, None, :]
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.dropout_mask(
                (batch_size, cell.output_size), cell.recurrent_dropout
            )

        if mask is not None:
            if isinstance(mask, (list, tuple)):
                mask = mask[0]
            mask = tf.transpose(tf.cast(mask, tf.bool))  # (T, B)
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
            mask = None if mask is None else tf.reverse(mask, [0])
        inputs = _swap_batch_and_time(sequences)  # (T, B, D)

        if getattr(cell, "one_matmul_per_step", False):
            passes = _UNCOMPILED
            if self.jit_compile and not tf.executing_eagerly():
                passes = self._compiled_passes
            input_bias = tf.convert_to_tensor(cell.input_bias()) if cell.use_bias else None
            pieces, final_states = [], states
            chunks = _time_chunks(cell, inputs.shape[0])
            in_pieces = _goes_back_in_pieces(cell, inputs.shape[0])
            batch_major = _runs_batch_major(cell, chunks, in_pieces, passes)
            for piece in chunks:
                # x W for every step of the piece at once, (T', B, G), or (B, T, G); the loop
                # adds b to each step's slice.
                whole = piece == slice(None)
                if in_pieces:  # x itself: the loop projects it
                    projected = sequences[:, piece] if batch_major else inputs[piece]
                elif batch_major:
                    projected = cell.project_inputs(sequences, bias=False)
                else:
                    projected = cell.project_inputs(inputs if whole else inputs[piece], bias=False)
                piece_outputs, final_states = _scan_with_bptt(
                    cell,
                    projected,
                    tuple(final_states),
                    mask if mask is None or whole else mask[piece],
                    recurrent_mask,
                    input_bias,
                    passes,
                    batch_major=batch_major,
                    input_kernel=cell.kernel if in_pieces else None,
                )
                pieces.append(piece_outputs)
            outputs = pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=1)
        else:
            projected = cell.project_inputs(inputs)  # (T, B, G): x W + b, all steps at once
            all_states = _scan(
                lambda x_t, s: cell.step(x_t, s, recurrent_mask), projected, states, mask
            )
            outputs = _swap_batch_and_time(all_states[0])
            final_states = [s[-1] for s in all_states]
        # outputs: (B, T, H), h at every step; final_states: each (B, size)
        if mask is not None:
            # Before the first kept step Keras outputs zeros (after it, h carries over masked
            # steps, which is what Keras repeats); with zero_output_for_mask, zeros at every
            # masked step.
            keep = mask if self.zero_output_for_mask else tf.cumsum(tf.cast(mask, tf.int32)) > 0
            keep = tf.transpose(keep)  # (B, T)
            outputs = tf.where(keep[:, :, None], outputs, tf.zeros_like(outputs))

        if self._state_variables is not None:
            for variable, state in zip(self._state_variables, final_states, strict=True):
                variable.assign(tf.cast(state, variable.dtype))

        output = outputs if self.return_sequences else outputs[:, -1]
        if self.return_state:
            return output, *final_states
        return output

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
_SHARED_ARGS = ("dtype", "trainable")  # given to the cell and to the layer


class _PublicLayer(Unfold):
    """An `Unfold` that builds its own cell and flattens the cell's arguments into its own, as
    Keras's `LSTM`, `GRU` and `SimpleRNN` do (so a Keras layer's config builds ours)."""

    cell_class: type = VanillaCell
    cell_name: str = "vanilla_cell"
    own_cell_args: tuple[str, ...] = ("activation",)  # the cell's arguments beyond _CELL_ARGS

    def __init__(self, units: int, **kwargs: Any) -> None:
        cell_kwargs = {k: kwargs.pop(k) for k in _CELL_ARGS + self.own_cell_args if k in kwargs}
        cell_kwargs.update({k: kwargs[k] for k in _SHARED_ARGS if k in kwargs})
        cell = self.cell_class(units, name=self.cell_name, **cell_kwargs)
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

    cell_class = VanillaCell
    cell_name = "vanilla_cell"


@keras.saving.register_keras_serializable(package="unfold_rnn")
class GRU(_PublicLayer):
    """The gated recurrent unit over a sequence: `GRUCell` unfolded; `keras.layers.GRU`'s
    twin (same arguments, same weights, same numbers).

    Args:
        units: size of the hidden state h.
        activation, recurrent_activation, reset_after: as for `GRUCell`.
        Others: as for `VanillaRNN`.
    """

    cell_class = GRUCell
    cell_name = "gru_cell"
    own_cell_args = ("activation", "recurrent_activation", "reset_after")


@keras.saving.register_keras_serializable(package="unfold_rnn")
class LSTM(_PublicLayer):
    """Long short-term memory over a sequence: `LSTMCell` unfolded; `keras.layers.LSTM`'s
    twin (same arguments, same weights, same numbers).

    Args:
        units: size of h and c.
        activation, recurrent_activation, unit_forget_bias: as for `LSTMCell`.
        Others: as for `VanillaRNN`; with `return_state`, the states come as `h, c`.

    Example:
        >>> inputs = keras.Input((None, 8))
        >>> outputs = keras.layers.Dense(1)(LSTM(32)(inputs))
        >>> model = keras.Model(inputs, outputs)
    """

    cell_class = LSTMCell
    cell_name = "lstm_cell"
    own_cell_args = ("activation", "recurrent_activation", "unit_forget_bias")
