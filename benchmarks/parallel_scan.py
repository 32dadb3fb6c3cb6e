"""minGRU and minLSTM against the classic cells as the sequence grows: training tokens/s of
the character-level language model's step at 100, 1,000 and 4,000 steps.

The model is `benchmarks/speed.py`'s: embedding 64, one recurrent layer of 256 units, dense
logits over 65 characters, Adam, here with batches of 16 sequences, in a plain
`model.compile` + `model.fit`. Columns: minGRU and minLSTM with the parallel scan (their
default) and with the sequential `tf.scan`, our GRU and LSTM, and Keras's. Each runs in a
process of its own (`speed.py`'s worker), all taking turns, round after round; printed are
medians over rounds and ratios of minGRU's to our GRU's.

    python benchmarks/parallel_scan.py [--rounds 3] [--lengths 100 1000 4000]

A plot of the table is written beside it with --svg PATH.
"""

from __future__ import annotations

import argparse
import math
import statistics

from speed import LENGTHS, run

# (label, system, cell): the columns, in the order printed.
COLUMNS = [
    ("mingru", "ours", "mingru"),
    ("mingru-seq", "ours", "mingru-sequential"),
    ("minlstm", "ours", "minlstm"),
    ("minlstm-seq", "ours", "minlstm-sequential"),
    ("gru", "ours", "gru"),
    ("lstm", "ours", "lstm"),
    ("keras-gru", "keras", "gru"),
    ("keras-lstm", "keras", "lstm"),
]
RATIOS = [("mingru", "gru"), ("minlstm", "lstm"), ("mingru", "mingru-seq")]


def batches(steps: int) -> int:
    """Training steps per process: the first third warms up (tracing, XLA)."""
    return {100: 12, 1000: 6}.get(steps, 3)


def measure(lengths: list[int], rounds: int) -> dict[int, dict[str, float]]:
    """The median tokens/s of every column at every length."""
    found: dict[int, dict[str, list[float]]] = {n: {c[0]: [] for c in COLUMNS} for n in lengths}
    for _ in range(rounds):
        for n in lengths:
            for label, system, cell in COLUMNS:
                result = run(system, cell, f"len{n}", batches(n))
                found[n][label].append(result["tokens_per_s"])
    return {n: {c: statistics.median(v) for c, v in row.items()} for n, row in found.items()}


def table(medians: dict[int, dict[str, float]]) -> str:
    labels = [c[0] for c in COLUMNS]
    ratio_names = [f"{a}/{b}" for a, b in RATIOS]
    width = 2 + max(len(name) for name in labels + ratio_names)
    lines = [f"{'steps':>6}" + "".join(f"{c:>{width}}" for c in labels + ratio_names)]
    for n, row in medians.items():
        line = f"{n:>6}" + "".join(f"{row[c]:{width},.0f}" for c in labels)
        line += "".join(f"{row[a] / row[b]:{width - 1}.2f}x" for a, b in RATIOS)
        lines.append(line)
    return "\n".join(lines)


def svg_plot(medians: dict[int, dict[str, float]], width: int = 640, height: int = 400) -> str:
    """Tokens/s against steps, both on log scales, one line per column."""
    colours = ["#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#2ca02c", "#ff7f0e", "#7f7f7f", "#000"]
    left, right, top, bottom = 70, 150, 20, 50
    lengths = sorted(medians)
    values = [v for row in medians.values() for v in row.values()]
    x_low, x_high = math.log10(lengths[0]), math.log10(lengths[-1])
    y_low, y_high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))

    def xy(steps: float, tokens: float) -> tuple[float, float]:
        px = left + (width - left - right) * (math.log10(steps) - x_low) / (x_high - x_low or 1)
        py = top + (height - top - bottom) * (y_high - math.log10(tokens)) / (y_high - y_low)
        return px, py

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for n in lengths:
        px, py = xy(n, 10**y_low)
        parts.append(f'<text x="{px:.1f}" y="{py + 16:.1f}" text-anchor="middle">{n:,}</text>')
    for power in range(y_low, y_high + 1):
        px, py = xy(lengths[0], 10**power)
        parts.append(
            f'<line x1="{left}" y1="{py:.1f}" x2="{width - right}" y2="{py:.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{px - 6:.1f}" y="{py + 4:.1f}" text-anchor="end">{10**power:,}</text>'
        )
    parts.append(
        f'<text x="{(width - right + left) / 2}" y="{height - 12}" '
        'text-anchor="middle">sequence length (steps)</text>'
    )
    parts.append(
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
        'text-anchor="middle">training tokens/s</text>'
    )
    for i, (label, *_) in enumerate(COLUMNS):
        colour = colours[i % len(colours)]
        line = " ".join("{:.1f},{:.1f}".format(*xy(n, medians[n][label])) for n in lengths)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 20 * i + 10
        parts.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 30}" '
            f'y2="{ly}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{width - right + 35}" y="{ly + 4}">{label}</text>')
    return "\n".join([*parts, "</svg>"]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="turns each column takes")
    parser.add_argument(
        "--lengths", nargs="+", type=int, default=list(LENGTHS), choices=list(LENGTHS)
    )
    parser.add_argument("--svg", help="also write the plot here")
    args = parser.parse_args()
    medians = measure(args.lengths, args.rounds)
    print(f"{args.rounds} rounds; batch 16, 256 units; tokens/s, median over rounds")
    print(table(medians), flush=True)
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg_plot(medians))


if __name__ == "__main__":
    main()
