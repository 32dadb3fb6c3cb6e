"""The cell contract: what `Unfold`, `scan.unfold` and the fast paths need from a cell.

A cell is a Keras layer with

    state_names           the names of its states, in order: ("h",), or ("h", "c") for the LSTM
    state_size            one size per state (an int for one state), as Keras's cells
    output_size           the size of its output, which is its first state, h_t
    get_initial_state(batch_size)      the states before the first step, each (B, size)
    project_inputs(x)     x W + b, (..., G), for every step at once
    step(p_t, states, recurrent_mask=None)   the new states, from p_t = x_t W + b
    dropout, recurrent_dropout    rates (0 for none); with a rate above 0, also
                          dropout_mask(shape, rate): the layer draws one mask per sequence
    fast_path()           what a faster unfolding may use, as a value, or None

That, `fast_path()` aside, is all the reference unfolding (`unfold_rnn.scan`) reads. What a
cell may offer beyond it:

- `OneMatmulStep`: the step is one matmul r_t = (h_{t-1} * m) U + b' (`recurrent_weights()`)
  and element-wise work around it (`combine(p_t, r_t, states)`); `unfold_rnn.bptt` then runs
  the same `tf.scan` with backpropagation through time written by hand. Recomputing, it calls
  `project_inputs` again in the backward pass, outside the layer's call and so outside
  Keras's mixed-precision autocasting: `project_inputs` casts its weights to x's dtype.
- `LinearInH`: the step is h_t = a_t * h_{t-1} + b_t, with a_t and b_t from p_t alone
  (`coefficients(p_t)`); `unfold_rnn.parallel` then solves it with a parallel scan.

`step_with_gates(p_t, states)`, if a cell has it, also returns the gates by name, for
`unfold_rnn.inspection`. `equations()`, if a cell has it, names the equations its step
follows, as an `Equations` value, so that a step written outside TensorFlow (the web page's
JavaScript, `unfold_rnn.web`) can follow them with the cell's weights. docs/design.md shows
a cell of a user's own, in 30 lines.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import tensorflow as tf

State = tuple[tf.Tensor, ...]


@runtime_checkable
class Cell(Protocol):
    """What every unfolding reads from a cell (see the module's docstring)."""

    state_names: tuple[str, ...]
    state_size: int | Sequence[int]
    output_size: int
    dropout: float
    recurrent_dropout: float

    def get_initial_state(self, batch_size: Any = None) -> list[tf.Tensor]: ...

    def project_inputs(self, inputs: tf.Tensor) -> tf.Tensor: ...

    def step(
        self, projected: tf.Tensor, states: State, recurrent_mask: tf.Tensor | None = None
    ) -> State: ...

    def fast_path(self) -> FastPath | None: ...


class Combine(enum.Enum):
    """How a one-matmul step's element-wise rest, `combine`, reads p_t = x_t W + b and r_t."""

    SUM = "z_t = p_t + r_t"  # only through their sum z_t (Vanilla, LSTM)
    PARTS = "p_t and r_t apart"  # a gate scales part of r_t (the GRU's reset gate)
    ACTIVATION = "h_t = act(z_t)"  # the one state is act(z_t), and act'(z_t) follows from h_t


@dataclass(frozen=True)
class OneMatmulStep:
    """The step is r_t = (h_{t-1} * m) U + b', then `combine(p_t, r_t, states)`.

    Attributes:
        combine: how `combine` reads p_t and r_t.
        reads: the states `combine` reads itself, beyond h_{t-1} through r_t: ("c",) for the
            LSTM, ("h",) for the GRU, () for Vanilla.
        slope: for `Combine.ACTIVATION`, act'(z_t) as a function of h_t.
    """

    combine: Combine
    reads: tuple[str, ...] = ()
    slope: Callable[[tf.Tensor], tf.Tensor] | None = None

    def __post_init__(self) -> None:
        if (self.combine is Combine.ACTIVATION) != (self.slope is not None):
            raise ValueError("A slope goes with Combine.ACTIVATION, and with it alone.")


@dataclass(frozen=True)
class LinearInH:
    """The step is h_t = a_t * h_{t-1} + b_t, with `coefficients(p_t)` giving a_t, b_t and
    the gates, a_t in (0, 1) and b_t > 0, and one state, h."""


FastPath = OneMatmulStep | LinearInH


@dataclass(frozen=True)
class Equations:
    """Which of the five steps' equations a cell follows, and the settings that change them.

    Attributes:
        name: "vanilla", "gru", "lstm", "mingru" or "minlstm": the equations in the
            docstrings of `VanillaCell`, `GRUCell`, `LSTMCell`, `MinGRUCell`, `MinLSTMCell`.
        settings: what changes them: activations by their Keras names ("activation",
            "recurrent_activation") and the GRU's "reset_after".
        weights: the weights the step reads, by Keras's names ("kernel", "recurrent_kernel",
            "bias"), with Keras's shapes and gate orders; a weight the cell has not (no bias,
            say) is left out.
    """

    name: str
    settings: dict[str, str | bool]
    weights: tuple[str, ...]


def state_sizes(cell: Any) -> list[int]:
    """A cell's `state_size` as a list, one size per state (any Keras cell)."""
    size = cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]
