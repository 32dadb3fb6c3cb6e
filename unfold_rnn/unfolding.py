"""Which time loop a layer runs: chosen once, when the layer is made, from what its cell
offers (`cell.fast_path()`, see `unfold_rnn.contract`) and what the user asked for.

Every choice is a function with `scan.unfold`'s signature,

    unfold(cell, inputs, initial_states, mask=None, recurrent_mask=None) -> outputs, states

and all give the same numbers; tests hold them together:

    scan.unfold        the reference: tf.scan over the cell's step, autodiff for the gradient
    bptt.unfold        the same tf.scan, backpropagation through time written by hand
    parallel.unfold    a parallel scan, for a step linear in h (minGRU, minLSTM)

A combination that cannot run as asked is refused here, with what to ask for instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from unfold_rnn import _checks, bptt, parallel
from unfold_rnn.contract import Combine, LinearInH, OneMatmulStep, State
from unfold_rnn.scan import unfold as reference

BACKWARDS = ("handwritten", "autodiff")
SCANS = ("parallel", "sequential")

Unfolding = Callable[..., tuple[tf.Tensor, State]]


def choose(
    cell: Any,
    backward: str | None = None,
    scan: str | None = None,
    jit_compile: bool | None = None,
    recompute: bool | None = None,
) -> Unfolding:
    """The unfolding for `cell`.

    Args:
        backward: "handwritten" or "autodiff"; None, the default, takes the hand-written
            backward pass where the cell offers one (`OneMatmulStep`, or the parallel scan's
            own), autodiff through the reference `tf.scan` elsewhere.
        scan: "parallel" or "sequential"; None, the default, takes the parallel scan for a
            cell that offers it (`LinearInH`) wherever the number of steps is known when the
            layer is traced, and the sequential `tf.scan` where it is not.
        jit_compile: compile the hand-written passes with XLA when the layer is traced (eager
            calls run them uncompiled), or run them as TensorFlow's own graph (False); None,
            the default, compiles them where XLA runs them faster (`compiles_faster`). The
            other unfoldings are not compiled on their own.
        recompute: keep only h_t and the states at every K-th step, and run each chunk of K
            steps forward again going back (`bptt.unfold`'s `chunk`); None, the default,
            does so from `RECOMPUTED_FROM` steps on where the forward pass keeps more than
            the states (not for `Combine.ACTIVATION`). Only the hand-written backward pass
            recomputes.
    """
    if backward is not None:
        _checks.one_of("backward", backward, BACKWARDS)
    if scan is not None:
        _checks.one_of("scan", scan, SCANS)
    offered, name = cell.fast_path(), type(cell).__name__
    linear, one_matmul = isinstance(offered, LinearInH), isinstance(offered, OneMatmulStep)
    if recompute and (backward == "autodiff" or not one_matmul):
        raise ValueError(
            "recompute=True recomputes in the hand-written backward pass of a one-matmul step, "
            f"{'which autodiff is not' if one_matmul else f'which {name} does not offer'}; "
            "leave recompute unset."
        )
    if scan == "parallel" and not linear:
        raise ValueError(
            f"scan='parallel' needs a cell whose step is linear in h (such as MinGRUCell); "
            f"{name}'s is not. Use scan='sequential', or leave scan unset."
        )
    if linear and scan != "sequential":
        if backward == "autodiff":
            raise ValueError(
                "The parallel scan has its own gradient, written by hand; for autodiff through "
                f"the reference tf.scan, give {name} scan='sequential' too."
            )
        return parallel.unfold if scan == "parallel" else _parallel_where_length_known
    if backward == "handwritten" and not one_matmul:
        raise ValueError(
            f"{name} offers no hand-written backward pass (its step is not one matmul and "
            "element-wise work); use backward='autodiff', or leave backward unset."
        )
    if backward == "autodiff" or not one_matmul:
        return reference
    compiled = compiles_faster(offered) if jit_compile is None else jit_compile
    if recompute is None and offered.combine is Combine.ACTIVATION:
        # Its forward pass keeps the states alone, which recomputing cannot drop: it would pay
        # a forward pass for little (docs/performance.md, "Memory at 1,000 steps").
        recompute = False
    return _HandWritten(bptt.Passes.compiled() if compiled else bptt.Passes(), recompute)


def compiles_faster(plan: OneMatmulStep) -> bool:
    """Whether XLA runs the hand-written passes of a step like `plan` faster than TensorFlow's
    own graph: for every step but one whose `combine` reads p_t and r_t apart (the GRU's),
    whose element-wise work XLA's CPU loop ran slower (docs/performance.md, "Compiled or
    not", names the CPUs measured)."""
    return plan.combine is not Combine.PARTS


# Recomputing costs one more forward pass, and saves memory in proportion to T. Below this
# many steps, what the forward pass keeps (a few (T, B, G) arrays) is small beside the rest
# of a training process, and speed matters more.
RECOMPUTED_FROM = 512


def chunk_length(steps: int | None, recompute: bool | None = None) -> int | None:
    """The chunk length K the hand-written backward pass recomputes over, for `steps` steps
    (None: no recomputation): the divisor of `steps` nearest its square root, as Chen et
    al. 2016 ("Training Deep Nets with Sublinear Memory Cost") choose, within a factor of
    two of it. A divisor K and T / K are as near; the larger is taken (fewer chunks).
    `recompute` True asks for it at any length, False never; None, from `RECOMPUTED_FROM`
    steps."""
    if recompute is False or (recompute is None and (steps or 0) < RECOMPUTED_FROM):
        return None
    if steps is None:
        raise ValueError(
            "recompute=True needs the number of steps when the layer is traced; give the "
            "model's input a fixed length, or leave recompute unset."
        )
    root = math.sqrt(steps)
    near = [k for k in range(2, steps) if steps % k == 0 and root / 2 <= k <= 2 * root]
    if near:
        return min(near, key=lambda k: (round(abs(math.log(k / root)), 9), -k))
    if recompute:
        raise ValueError(
            f"recompute=True found no chunk length for {steps} steps (a divisor between "
            f"{math.ceil(root / 2)} and {math.floor(2 * root)}); pad the sequences to a length "
            "with one, such as a multiple of 8, or leave recompute unset."
        )
    return None


def _parallel_where_length_known(
    cell: Any,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None = None,
    recurrent_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, State]:
    """The default for a cell linear in h: the parallel scan lays out its levels when traced,
    so it needs the number of steps then; with it unknown, the reference `tf.scan`."""
    unfold = parallel.unfold if inputs.shape[0] is not None else reference
    return unfold(cell, inputs, initial_states, mask, recurrent_mask)


class _HandWritten:
    """`bptt.unfold` with its passes compiled by XLA when traced, as they are when eager, and
    the chunk length chosen from the number of steps."""

    def __init__(self, passes: bptt.Passes, recompute: bool | None) -> None:
        self.passes = passes
        self.recompute = recompute

    def __call__(
        self,
        cell: Any,
        inputs: tf.Tensor,
        initial_states: Sequence[tf.Tensor],
        mask: tf.Tensor | None = None,
        recurrent_mask: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, State]:
        passes = bptt.Passes() if tf.executing_eagerly() else self.passes
        chunk = chunk_length(inputs.shape[0], self.recompute)
        return bptt.unfold(cell, inputs, initial_states, mask, recurrent_mask, passes, chunk)
