"""The reference unfolding: a cell's step, `tf.scan`ned over time, differentiated by autodiff.

Read this first. It is the loop

    states = initial_states
    for t in range(T):
        states = cell.step(x[t] W + b, states)    # where mask[t] is False: states unchanged
        outputs[t] = states[0]

written with `tf.scan`, which runs `step` once per time step, carries the states from one
step to the next, and stacks what each step returns. `unfold_rnn.bptt` runs the same loop with
backpropagation through time written by hand; tests hold the two (and Keras's layers) to the
same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

State = tuple[tf.Tensor, ...]


def unfold(
    cell: Any,
    inputs: tf.Tensor,
    initial_states: Sequence[tf.Tensor],
    mask: tf.Tensor | None = None,
    recurrent_mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, State]:
    """Run `cell` over every step of `inputs`, time-major.

    Args:
        cell: a cell of this package (`project_inputs` and `step`).
        inputs: (T, B, D) float tensor, time-major.
        initial_states: one (B, size) tensor per state of the cell.
        mask: (T, B) bool, or None. A step whose mask is False keeps the states it was given.
        recurrent_mask: (B, units) dropout mask on h_{t-1} where it meets U, or None.

    Returns:
        h_t at every step, (T, B, units), and the final states, each (B, size).
    """
    projected = cell.project_inputs(inputs)  # (T, B, G): x_t W + b for every t at once

    def step(states: State, elems: tuple) -> State:
        x_t, keep_t = elems if mask is not None else (elems, None)
        new_states = cell.step(x_t, states, recurrent_mask)
        return keep_where(keep_t, new_states, states)

    elems = projected if mask is None else (projected, mask)
    every_state = tf.scan(step, elems, initializer=tuple(initial_states))  # each (T, B, size)
    return every_state[0], tuple(s[-1] for s in every_state)


def keep_where(
    keep_t: tf.Tensor | None, new: Sequence[tf.Tensor], old: Sequence[tf.Tensor]
) -> State:
    """The new states where keep_t (B,) is True, the old ones where it is False."""
    if keep_t is None:
        return tuple(new)
    return tuple(tf.where(keep_t[:, None], n, o) for n, o in zip(new, old, strict=True))
