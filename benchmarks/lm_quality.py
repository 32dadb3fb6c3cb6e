"""Validation loss against training time: our layers next to Keras's built-ins in the same
character-level language model, each given the same time budget.

Every system is the same 2 x 256 model from `build_language_model` (batch 64, 100 steps,
embedding 64, dropout `--dropout` after the embedding and each recurrent layer, Adam clipped
at global norm 5) with only the recurrent layer class changed, trained in its own process,
one after another, on the first 90% of the text and evaluated on the last 10% every
`--eval-steps` training steps (evaluation time not counted).

Dropout defaults to 0.2, the rate nanoGPT uses for its character-level Shakespeare model
(`config/train_shakespeare_char.py`): without it, a fast CPU makes many passes over the
training text in 20 minutes and both systems over-fit, the faster one first, so the race
would measure over-fitting more than learning (docs/models.md).
`--dropout 0` gives the earlier protocol.

`torch.nn.LSTM` is PyTorch's LSTM in the same model, trained the same way: the same batches
(read from the same pipeline), the same dropout (one mask per sequence), Adam clipped at 5,
schedule and evaluations, written in the usual PyTorch loop with PyTorch's own initial
weights. It is a yardstick, measured only when torch is installed.

The learning rate follows a cosine from 2e-3 down to `--final-lr` over the time budget, by
training seconds: every system gets the same schedule in time, and one that runs more steps
per second takes more steps at each rate. Decaying the rate to the end of a fixed budget
is what budgeted training recommends (Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020);
`--final-lr 2e-3` keeps it constant.

Each evaluation gives two validation losses. The first, `val_loss`, is Keras's: the loss
over consecutive 100-character windows, each read from zero states, so a window's first
characters are predicted with little or no context. The second reads the validation text
as streams, the way a language model's loss on a text is usually reported (char-rnn carries
its states through the validation text too): `unfold_rnn.evaluation.StreamReader` cuts it
into 16 equal contiguous parts, reads them side by side in 100-character windows, and
carries each recurrent layer's states from one window to the next, so only each part's first
window starts cold.

    python benchmarks/lm_quality.py ../shared/data/tinyshakespeare.txt --minutes 10

Prints two tables of validation loss (nats/char, bits/char) at equal training times, one
per way of reading the validation text, with each system's tokens/s and parameter count,
and writes the curves as CSV (both) and SVG (the windows) to --out (default
benchmarks/results/), as --name (default lm_quality) .csv and .svg.
"""

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SYSTEMS = {  # name -> (module, layer class) for the recurrent layers
    "unfold_rnn.LSTM": ("unfold_rnn", "LSTM"),
    "keras.layers.LSTM": ("keras.layers", "LSTM"),
    "unfold_rnn.GRU": ("unfold_rnn", "GRU"),
    "keras.layers.GRU": ("keras.layers", "GRU"),
    "unfold_rnn.MinGRU": ("unfold_rnn", "MinGRU"),
    "unfold_rnn.MinLSTM": ("unfold_rnn", "MinLSTM"),
    "torch.nn.LSTM": ("torch.nn", "LSTM"),  # a yardstick: PyTorch's LSTM, trained the same way
}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("text", help="a UTF-8 text file, e.g. tinyshakespeare.txt")
parser.add_argument("--minutes", type=float, default=10.0, help="training time per system")
parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
parser.add_argument("--eval-steps", type=int, default=100, help="training steps between evals")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--dropout", type=float, default=0.2, help="rate of the Dropout layers")
parser.add_argument("--final-lr", type=float, default=1e-4, help="learning rate at the end")
parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
parser.add_argument("--name", default="lm_quality", help="the files' name in --out")
parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one system, print JSON
args = parser.parse_args()

seq_len = 100  # characters per training window
batch_size = 64  # windows per batch
units = 256  # state size of each recurrent layer
num_layers = 2  # recurrent layers stacked
embedding_dim = 64  # size of each character's embedding
learning_rate = 2e-3  # Adam, at the start
val_fraction = 0.1  # the text's last 10% is for validation


def train_one(name: str) -> dict:
    """Train one system within the budget; its curve of (seconds, val nats/char)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import importlib

    import keras

    from unfold_rnn import build_language_model
    from unfold_rnn.callbacks import TimeBudget
    from unfold_rnn.data import read_text, text_data
    from unfold_rnn.evaluation import STREAMS, StreamReader

    keras.utils.set_random_seed(args.seed)
    text = read_text(args.text)
    data = text_data(text, seq_len, batch_size, val_fraction, seed=args.seed)
    module, cls = SYSTEMS[name]
    layer_class = getattr(importlib.import_module(module), cls)
    model = build_language_model(
        len(data.vocab),
        layer_class,
        units,
        num_layers,
        embedding_dim,
        dropout=args.dropout,
        learning_rate=learning_rate,
    )
    budget = TimeBudget(args.minutes * 60)
    # One id per character: the validation part's ids are its characters' (the rest of
    # the text needs no second encoding).
    validation_ids = data.vocab.encode(text[len(text) - data.validation_chars :])
    reader = StreamReader(model)

    class StreamValidation(keras.callbacks.Callback):
        """The validation text's loss read as streams, into the epoch's logs (before
        `budget` records them; its clock has stopped by then)."""

        def on_epoch_end(self, epoch, logs=None):
            logs["val_stream_loss"] = reader.loss(validation_ids, STREAMS, seq_len)

    class CosineInTime(keras.callbacks.Callback):
        """The learning rate from `learning_rate` to --final-lr along a half cosine, by the
        fraction of the time budget spent so far."""

        def on_train_batch_begin(self, batch, logs=None):
            done = min(1.0, budget.training_seconds() / budget.seconds)
            cosine = (1 + math.cos(math.pi * done)) / 2  # 1 -> 0
            rate = args.final_lr + (learning_rate - args.final_lr) * cosine
            self.model.optimizer.learning_rate.assign(rate)

    model.fit(
        data.train,
        steps_per_epoch=args.eval_steps,
        epochs=10**9,  # the budget stops it
        validation_data=data.validation,
        shuffle=False,
        callbacks=[CosineInTime(), StreamValidation(), budget],
        verbose=0,
    )
    steps_per_second = args.eval_steps * len(budget.history) / budget.elapsed
    return {
        "name": name,
        "tokens_per_second": steps_per_second * batch_size * seq_len,
        "parameters": model.count_params(),
        "curve": [(seconds, logs["val_loss"]) for seconds, logs in budget.history],
        "stream_curve": [(s, logs["val_stream_loss"]) for s, logs in budget.history],
        "streams": STREAMS,
    }


def train_torch(name: str) -> dict:
    """`train_one` for PyTorch's LSTM: the same data, model, schedule and evaluations."""
    import time

    import numpy as np
    import torch

    from unfold_rnn.data import read_text, text_data
    from unfold_rnn.evaluation import STREAMS

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(args.seed)
    text = read_text(args.text)
    data = text_data(text, seq_len, batch_size, val_fraction, seed=args.seed)
    validation_ids = np.asarray(data.vocab.encode(text[len(text) - data.validation_chars :]))
    vocab = len(data.vocab)

    def sequence_dropout(x: torch.Tensor) -> torch.Tensor:
        """One mask per sequence, the same at every step, as the Keras model's Dropout."""
        if not model.training or args.dropout == 0:
            return x
        keep = torch.rand(x.shape[0], 1, x.shape[2]) >= args.dropout
        return x * keep / (1 - args.dropout)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, embedding_dim)
            sizes = [embedding_dim] + [units] * num_layers
            self.rnns = torch.nn.ModuleList(
                torch.nn.LSTM(a, units, batch_first=True) for a in sizes[:-1]
            )
            self.logits = torch.nn.Linear(units, vocab)

        def forward(self, ids: torch.Tensor, states: list | None = None) -> tuple:
            h, after = sequence_dropout(self.embedding(ids)), []
            for i, rnn in enumerate(self.rnns):
                h, state = rnn(h, None if states is None else states[i])
                h = sequence_dropout(h)
                after.append(state)
            return self.logits(h), after

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()

    def mean_loss(batches: Any) -> float:  # a tf.data dataset of (ids, targets)
        total = count = 0
        with torch.no_grad():
            for x, y in batches.as_numpy_iterator():
                logits, _ = model(torch.from_numpy(x).long())
                targets = torch.from_numpy(y).long().reshape(-1)
                total += float(loss_fn(logits.reshape(-1, vocab), targets)) * y.size
                count += y.size
        return total / count

    def stream_loss() -> float:  # as unfold_rnn.evaluation.StreamReader reads the text
        length = (len(validation_ids) - 1) // STREAMS
        used = torch.from_numpy(validation_ids[: STREAMS * length + 1]).long()
        inputs, targets = used[:-1].reshape(STREAMS, length), used[1:].reshape(STREAMS, length)
        total, states = 0.0, None
        with torch.no_grad():
            for start in range(0, length, seq_len):
                logits, states = model(inputs[:, start : start + seq_len], states)
                step_targets = targets[:, start : start + seq_len].reshape(-1)
                total += float(loss_fn(logits.reshape(-1, vocab), step_targets)) * len(step_targets)
        return total / inputs.numel()

    budget, elapsed, steps = args.minutes * 60, 0.0, 0
    curve, stream_curve = [], []
    train = data.train.as_numpy_iterator()
    while elapsed < budget:
        model.train()
        start = time.perf_counter()
        for _ in range(args.eval_steps):
            done = min(1.0, (elapsed + time.perf_counter() - start) / budget)
            cosine = (1 + math.cos(math.pi * done)) / 2  # 1 -> 0, as CosineInTime
            rate = args.final_lr + (learning_rate - args.final_lr) * cosine
            for group in optimizer.param_groups:
                group["lr"] = rate
            x, y = next(train)
            optimizer.zero_grad()
            logits, _ = model(torch.from_numpy(x).long())
            loss = loss_fn(logits.reshape(-1, vocab), torch.from_numpy(y).long().reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        elapsed += time.perf_counter() - start
        steps += args.eval_steps
        model.eval()
        curve.append((elapsed, mean_loss(data.validation)))
        stream_curve.append((elapsed, stream_loss()))
    return {
        "name": name,
        "tokens_per_second": steps * batch_size * seq_len / elapsed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "curve": curve,
        "stream_curve": stream_curve,
        "streams": STREAMS,
    }


def loss_at(curve: list, seconds: float) -> float:
    """The validation loss of the last evaluation at or before `seconds` of training."""
    done = [loss for t, loss in curve if t <= seconds]
    return done[-1] if done else math.nan


def svg_plot(curves: dict, width: int = 640, height: int = 400) -> str:
    """Validation loss against minutes, one line per system, as a small standalone SVG."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
    left, right, top, bottom = 60, 170, 20, 50
    points = [(t / 60, loss) for curve in curves.values() for t, loss in curve]
    x_max = max(x for x, _ in points)
    y_low = math.floor(min(y for _, y in points) * 10) / 10
    y_high = min(3.0, math.ceil(max(y for _, y in points) * 10) / 10)

    def xy(x: float, y: float) -> str:
        px = left + (width - left - right) * x / x_max
        py = top + (height - top - bottom) * (y_high - min(y, y_high)) / (y_high - y_low)
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<polyline points="{xy(0, y_high)} {xy(0, y_low)} {xy(x_max, y_low)}" '
        'fill="none" stroke="black"/>',
    ]
    for i in range(int(x_max) + 1):
        x, y = xy(i, y_low).split(",")
        parts.append(f'<text x="{x}" y="{float(y) + 16}" text-anchor="middle">{i}</text>')
    steps = round((y_high - y_low) / 0.1)
    for i in range(steps + 1):
        value = y_low + i * 0.1
        x, y = xy(0, value).split(",")
        parts.append(
            f'<text x="{float(x) - 6}" y="{float(y) + 4}" text-anchor="end">{value:.1f}</text>'
        )
    parts.append(
        f'<text x="{(width - right + left) / 2}" y="{height - 12}" '
        'text-anchor="middle">training time (minutes)</text>'
    )
    parts.append(
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
        'text-anchor="middle">validation loss (nats/char)</text>'
    )
    for i, (name, curve) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        line = " ".join(xy(t / 60, loss) for t, loss in curve)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 20 * i + 10
        parts.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 30}" '
            f'y2="{ly}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{width - right + 35}" y="{ly + 4}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if args.one:
    print(json.dumps((train_torch if args.one.startswith("torch.") else train_one)(args.one)))
    sys.exit(0)

results = {}
for name in args.systems:
    command = [
        sys.executable,
        __file__,
        args.text,
        "--one",
        name,
        "--minutes",
        str(args.minutes),
        "--eval-steps",
        str(args.eval_steps),
        "--seed",
        str(args.seed),
        "--dropout",
        str(args.dropout),
        "--final-lr",
        str(args.final_lr),
    ]
    print(f"training {name} for {args.minutes:g} minutes ...", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    results[name] = json.loads(done.stdout.strip().splitlines()[-1])

checkpoints = [m * 60 for m in (1, 2, 5, 10, 20, 30, 60) if m <= args.minutes] + [args.minutes * 60]
checkpoints = sorted(set(checkpoints))
streams = next(iter(results.values()))["streams"]
for curve, title in (
    ("curve", "windows from zero states"),
    ("stream_curve", f"the text as {streams} streams, states carried"),
):
    print(f"\nValidation loss ({title}), nats/char (bits/char), after equal training time:")
    print(f"{'minutes':>8} " + " ".join(f"{name:>20}" for name in results))
    for seconds in checkpoints:
        cells = []
        for result in results.values():
            loss = loss_at(result[curve], seconds)
            cells.append(f"{loss:.3f} ({loss / math.log(2):.2f})" if loss == loss else "-")
        print(f"{seconds / 60:8.1f} " + " ".join(f"{c:>20}" for c in cells))
    best = " ".join(f"{min(loss for _, loss in r[curve]):20.3f}" for r in results.values())
    print(f"{'best':>8} {best}")
print(f"{'tokens/s':>8} " + " ".join(f"{r['tokens_per_second']:20,.0f}" for r in results.values()))
print(f"{'params':>8} " + " ".join(f"{r['parameters']:20,}" for r in results.values()))

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
with open(out / f"{args.name}.csv", "w") as f:
    f.write("system,training_seconds,val_nats_per_char,val_stream_nats_per_char\n")
    for name, result in results.items():
        for (seconds, loss), (_, streamed) in zip(
            result["curve"], result["stream_curve"], strict=True
        ):
            f.write(f"{name},{seconds:.1f},{loss:.4f},{streamed:.4f}\n")
(out / f"{args.name}.svg").write_text(svg_plot({n: r["curve"] for n, r in results.items()}))
print(f"\ncurves written to {out / args.name}.csv and .svg")
