"""Does each cell learn to add? Train at 8 bits within a time budget, test at 8 to 64 bits.

For every cell and seed: train `build_binary_addition_model` on fresh random 8-bit problems
until every bit of 1,000 held-out 8-bit problems is predicted within 0.005 of its value (or the
budget runs out), then count
whole sums right on 1,000 new problems at 8, 16, 32 and 64 bits. Prints one row per run and
a summary per cell.

    python benchmarks/binary_addition.py [--cells vanilla gru lstm] [--seeds 0 1 2 3 4]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from unfold_rnn import build_binary_addition_model
from unfold_rnn.data import addition_problems, bits_to_ints

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cells", nargs="+", default=["vanilla", "gru", "lstm"])
parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per run")
parser.add_argument("--units", type=int, default=16)
parser.add_argument(
    "--propagate",
    type=float,
    default=0.5,
    help="chance that a training problem's bits differ at a position (0.5: uniform)",
)
parser.add_argument(
    "--confident",
    type=float,
    default=0.005,
    help="stop once no held-out 8-bit prediction is further than this from its bit",
)
args = parser.parse_args()

train_bits = 8  # the only width seen in training
test_bits = (8, 16, 32, 64)  # widths tested after training
problems_per_epoch = 2048  # fresh problems each epoch
batch_size = 32
held_out = 1000  # problems per check


def whole_sums_right(model: keras.Model, bits: int, seed: int) -> float:
    x, y = addition_problems(held_out, bits, seed=seed)
    predicted = bits_to_ints(model.predict(x, batch_size=held_out, verbose=0))
    return float(np.mean(predicted == bits_to_ints(y)))


def largest_error(model: keras.Model, bits: int, seed: int) -> float:
    """How far the least confident bit of held-out problems is from its target."""
    x, y = addition_problems(held_out, bits, seed=seed)
    return float(np.max(np.abs(model.predict(x, batch_size=held_out, verbose=0) - y)))


results = {}
print(
    f"{'cell':8} {'seed':>4} {'train s':>8} {'epochs':>6} "
    + " ".join(f"{b:>6}b" for b in test_bits)
)
for cell in args.cells:
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        model = build_binary_addition_model(cell, units=args.units)
        rng = np.random.default_rng(seed)
        start, epochs = time.perf_counter(), 0
        while time.perf_counter() - start < args.budget:
            model.fit(
                *addition_problems(
                    problems_per_epoch, train_bits, seed=rng, propagate=args.propagate
                ),
                batch_size=batch_size,
                epochs=1,
                verbose=0,
            )
            epochs += 1
            # Right is not enough to generalize: stop once every held-out bit is confidently
            # right, which needs a saturated (clean) carry.
            if largest_error(model, train_bits, seed=10_000 + seed) < args.confident:
                break
        seconds = time.perf_counter() - start
        scores = [whole_sums_right(model, bits, seed=20_000 + seed) for bits in test_bits]
        results[cell, seed] = (seconds, scores)
        row = " ".join(f"{s:7.1%}" for s in scores)
        print(f"{cell:8} {seed:>4} {seconds:8.1f} {epochs:>6} {row}", flush=True)

print("\nPassing runs (100% at 8 bits within the budget and >= 99.9% at 16, 32 and 64 bits):")
for cell in args.cells:
    runs = [results[cell, seed] for seed in args.seeds]
    passed = sum(
        s <= args.budget and scores[0] == 1.0 and min(scores[1:]) >= 0.999 for s, scores in runs
    )
    median = np.median([seconds for seconds, _ in runs])
    print(f"  {cell:8} {passed}/{len(runs)}   median training time {median:.1f} s")
