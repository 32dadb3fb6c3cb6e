"""Pictures of what `inspection` finds: text coloured by a unit's activation (HTML and PNG),
gate saturation scatter plots, and a unit's activation against the carry bit.

The colours are those of Karpathy et al. (2015): blue for negative activations, red for
positive, white for zero; each unit is scaled by its largest absolute value over the text,
so that an LSTM's unbounded cell state shows as well as a tanh state.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from unfold_rnn._files import write_atomically


@dataclass
class Trace:
    """A unit's activation at each character of a text, with what to call it."""

    title: str
    values: np.ndarray  # (len(text),)


def _colours(values: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] per value: blue (-) through white (0) to red (+), scaled to the largest
    absolute value."""
    peak = float(np.abs(values).max()) or 1.0
    v = np.clip(values / peak, -1.0, 1.0)[:, None]
    white, red, blue = np.ones(3), np.array([0.84, 0.19, 0.15]), np.array([0.17, 0.4, 0.74])
    return np.where(v >= 0, white + v * (red - white), white - v * (blue - white))


def text_html(text: str, traces: Sequence[Trace], heading: str) -> str:
    """A self-contained HTML page: for each trace, the text with every character's
    background coloured by the activation (hover a character to read its value)."""
    blocks = []
    for trace in traces:
        spans = []
        for char, value, rgb in zip(text, trace.values, _colours(trace.values), strict=True):
            r, g, b = (round(255 * float(c)) for c in rgb)
            shown = "↵\n" if char == "\n" else html.escape(char)
            spans.append(
                f'<span style="background:rgb({r},{g},{b})" title="{value:+.3f}">{shown}</span>'
            )
        blocks.append(f"<h2>{html.escape(trace.title)}</h2>\n<pre>{''.join(spans)}</pre>")
    style = (
        "body{font-family:sans-serif;margin:2em}h2{font-size:1em;margin-top:2em}"
        "pre{font-family:monospace;font-size:14px;line-height:1.5;white-space:pre-wrap}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(heading)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(heading)}</h1>\n"
        "<p>Blue: negative, white: zero, red: positive; each unit scaled to its largest "
        "value.</p>\n" + "\n".join(blocks) + "\n</body>\n</html>\n"
    )


# The PNG's layout, in pixels: a grid of character cells.
CELL_WIDTH, CELL_HEIGHT, MARGIN, DPI = 9, 16, 8, 100


def _lines(text: str, columns: int) -> list[list[int]]:
    """Positions of `text` per picture line: broken at newlines and after `columns`."""
    lines, line = [], []
    for t, char in enumerate(text):
        line.append(t)
        if char == "\n" or len(line) == columns:
            lines.append(line)
            line = []
    if line:
        lines.append(line)
    return lines


def text_png_size(text: str, traces: int, columns: int = 100) -> tuple[int, int]:
    """(width, height) in pixels of `text_png` for this text and number of traces: each
    trace is a title row, then the text's lines (at most `columns` characters, and no wider
    than the longest), then an empty row; the titles need 60 columns."""
    lines = _lines(text, columns)
    used = max(60, *(len(line) for line in lines))
    rows = traces * (len(lines) + 2)
    return used * CELL_WIDTH + 2 * MARGIN, rows * CELL_HEIGHT + 2 * MARGIN


def text_png(text: str, traces: Sequence[Trace], columns: int = 100) -> bytes:
    """The picture of `text_html` as a PNG (size: `text_png_size`)."""
    width, height = text_png_size(text, len(traces), columns)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)  # no pyplot: no global state
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    lines = _lines(text, columns)
    row = 0
    for trace in traces:
        y = MARGIN + row * CELL_HEIGHT
        axes.text(MARGIN, y + CELL_HEIGHT - 4, trace.title, fontsize=9, weight="bold")
        row += 1
        colours = _colours(trace.values)
        for line in lines:
            y = MARGIN + row * CELL_HEIGHT
            for column, t in enumerate(line):
                x = MARGIN + column * CELL_WIDTH
                axes.add_patch(Rectangle((x, y), CELL_WIDTH, CELL_HEIGHT, color=colours[t], lw=0))
                char = "↵" if text[t] == "\n" else text[t]
                if not char.isspace():
                    axes.text(x + 1, y + CELL_HEIGHT - 4, char, fontsize=9, family="monospace")
            row += 1
        row += 1
    return _png(figure)


def saturation_png(panels: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> bytes:
    """One scatter plot per (title, left, right): a point per unit at the fraction of time
    its gate is left-saturated (< 0.1, x) and right-saturated (> 0.9, y), as in Karpathy et
    al. (2015), Figure 3. Points near the diagonal's far end are gates almost always
    saturated one way or the other; near the origin, gates that rarely saturate."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(3.2 * columns, 3.2 * rows), dpi=DPI)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat[len(panels) :]:
        axes.axis("off")
    for axes, (title, left, right) in zip(grid.flat, panels, strict=False):
        axes.plot([0, 1], [1, 0], color="0.8", lw=1)
        axes.scatter(left, right, s=10, alpha=0.6)
        axes.set(xlim=(0, 1), ylim=(0, 1), title=title, aspect="equal")
        axes.set_xlabel("fraction left-saturated", fontsize=8)
        axes.set_ylabel("fraction right-saturated", fontsize=8)
    figure.tight_layout()
    return _png(figure)


def carry_png(values: np.ndarray, carry: np.ndarray, title: str) -> bytes:
    """A unit's activation at every step (y) against the true carry out of that step (x,
    jittered so the points show)."""
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=carry.shape)
    figure = Figure(figsize=(4.5, 3.5), dpi=DPI)
    axes = figure.subplots()
    axes.scatter(carry + jitter, values, s=4, alpha=0.3)
    axes.set(xticks=[0, 1], xticklabels=["no carry", "carry"], ylabel="activation", title=title)
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    """Write a picture or page atomically; return its path."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))
    return path
