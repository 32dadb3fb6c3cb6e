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

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from unfold_rnn import _checks, bptt, parallel
from unfold_rnn.contract import LinearInH, OneMatmulStep, State
from unfold_rnn.scan import unfold as reference

BACKWARDS = ("handwritten", "autodiff")
SCANS = ("parallel", "sequential")

Unfolding = Callable[..., tuple[tf.Tensor, State]]


def choose(
    cell: Any, backward: str | None = None, scan: str | None = None, jit_compile: bool = True
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
            calls run them uncompiled). The other unfoldings are not compiled on their own.
    """
    if backward is not None:
        _checks.one_of("backward", backward, BACKWARDS)
    if scan is not None:
        _checks.one_of("scan", scan, SCANS)
    offered, name = cell.fast_path(), type(cell).__name__
    linear = isinstance(offered, LinearInH)
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
    one_matmul = isinstance(offered, OneMatmulStep)
    if backward == "handwritten" and not one_matmul:
        raise ValueError(
            f"{name} offers no hand-written backward pass (its step is not one matmul and "
            "element-wise work); use backward='autodiff', or leave backward unset."
        )
    if backward == "autodiff" or not one_matmul:
        return reference
    return _HandWritten(bptt.Passes.compiled() if jit_compile else bptt.Passes())


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
    """`bptt.unfold` with its passes compiled by XLA when traced, as they are when eager."""

    def __init__(self, passes: bptt.Passes) -> None:
        self.passes = passes

    def __call__(
        self,
        cell: Any,
        inputs: tf.Tensor,
        initial_states: Sequence[tf.Tensor],
        mask: tf.Tensor | None = None,
        recurrent_mask: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, State]:
        passes = bptt.Passes() if tf.executing_eagerly() else self.passes
        return bptt.unfold(cell, inputs, initial_states, mask, recurrent_mask, passes)
