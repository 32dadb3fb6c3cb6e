"""Looking inside a trained network: what its units' states and gates track.

The states and gates themselves, every unit at every step, come from `unfold_rnn.stepper`
(`layer_activations`, `LanguageModelStepper.activations`). Then the search for units that
mean something (Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding Recurrent
Networks", 2015): `text_properties(text)` gives simple properties of every position of a
text (inside quotes, inside brackets, position in the line, indentation, just after a
newline), `carries(bits)` the carry of binary additions, and `find_units` ranks every unit of
every layer by how well its activation tracks each of them (Pearson's r). `gate_saturation`
gives, per unit, how often each gate is saturated, the paper's Figure 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unfold_rnn.stepper import Activations

SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9  # a gate below / above is left / right saturated


def saturation(gate: np.ndarray) -> tuple[float, float]:
    """Fractions of a gate's activations that are left (< 0.1) and right (> 0.9) saturated."""
    left, right = gate_saturation(gate)  # every unit has as many values: the mean is exact
    return float(left.mean()), float(right.mean())


def gate_saturation(gate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each unit of a gate's activations (..., units): the fractions of its values that
    are left (< 0.1) and right (> 0.9) saturated."""
    values = gate.reshape(-1, gate.shape[-1])
    return (values < SATURATED_LOW).mean(axis=0), (values > SATURATED_HIGH).mean(axis=0)


# -- units that mean something ------------------------------------------------------------------

TEXT_PROPERTIES = ("in_quotes", "in_brackets", "line_position", "indentation", "after_newline")


def text_properties(text: str) -> dict[str, np.ndarray]:
    """Properties of each position of `text`, as a network has them once it has read the
    character there, each a float array of len(text):

        in_quotes      1 between a double quote and the next (the closing one is outside)
        in_brackets    1 while more of ( [ { have been opened than closed
        line_position  characters of the current line read so far (0 just after a newline)
        indentation    the spaces that begin the current line
        after_newline  1 where the character is a newline: the next one starts a line
    """
    values = {name: np.zeros(len(text), np.float32) for name in TEXT_PROPERTIES}
    inside, depth, column, indent, leading = False, 0, 0, 0, True
    for t, char in enumerate(text):
        if char == '"':
            inside = not inside
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        if char == "\n":
            column, indent, leading = 0, 0, True
        else:
            column += 1
            if leading and char == " ":
                indent += 1
            else:
                leading = False
        values["in_quotes"][t] = inside
        values["in_brackets"][t] = depth > 0
        values["line_position"][t] = column
        values["indentation"][t] = indent
        values["after_newline"][t] = char == "\n"
    return values


def carries(bits: np.ndarray) -> np.ndarray:
    """The carry out of each position of binary additions (num, bits, 2), least significant
    bit first, as addition_problems makes them: (num, bits) of 0.0 and 1.0."""
    a, b = bits[..., 0].astype(int), bits[..., 1].astype(int)
    carry = np.zeros(a.shape[0], int)
    out = np.zeros(a.shape, np.float32)
    for t in range(a.shape[1]):
        carry = (a[:, t] + b[:, t] + carry) >= 2
        out[:, t] = carry
    return out


def correlations(values: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Pearson's r between each unit of `values` (..., units) and `signal` (...,): one per
    unit; 0 where either does not vary."""
    x = values.reshape(-1, values.shape[-1]).astype(np.float64)
    y = signal.reshape(-1).astype(np.float64)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} activations per unit, but {len(y)} signal values.")
    x, y = x - x.mean(axis=0), y - y.mean()
    scale = np.sqrt((x**2).sum(axis=0) * (y**2).sum())
    return np.divide(x.T @ y, scale, out=np.zeros(x.shape[1]), where=scale > 0)


@dataclass(frozen=True)
class Unit:
    """A unit of a recurrent layer, and how well it tracks a signal."""

    layer: int  # which recurrent layer, from 0 at the bottom
    layer_name: str
    state: str  # "h", or an LSTM's "c"
    index: int
    r: float  # Pearson's correlation with the signal

    def __str__(self) -> str:
        return f"{self.layer_name} {self.state}[{self.index}] (r = {self.r:+.2f})"


def varies(signal: np.ndarray) -> bool:
    """Whether a signal takes more than one value (a unit cannot be found to track one that
    does not: a text without quotes, say)."""
    return bool(np.ptp(signal) > 0)


def find_units(
    activations: Sequence[Activations],
    signals: dict[str, np.ndarray],
    top: int = 3,
) -> dict[str, list[Unit]]:
    """For each signal (one value per position of the activations), the `top` units of all
    layers' states whose activation correlates with it most strongly, either way; none for
    a signal that does not vary (a text without quotes, say)."""
    found = {}
    for name, signal in signals.items():
        units = []
        if not varies(signal):
            found[name] = units
            continue
        for layer, recorded in enumerate(activations):
            for state, values in recorded.states.items():
                r = correlations(values, signal)
                units += [Unit(layer, recorded.layer, state, i, float(r[i])) for i in range(len(r))]
        found[name] = sorted(units, key=lambda unit: -abs(unit.r))[:top]
    return found
