"""Where a training step's time goes: the recurrent layer's forward pass, its backward pass,
and everything else (embedding, logits, loss, Adam), for our layer and Keras's.

Times, in one process, compiled functions that do a growing part of the step of
`benchmarks/speed.py`'s language model (its `base` configuration: batch 64, 100 steps,
embedding 64, 1 x 256 units, 65 characters), with XLA as its `ours+xla` and `keras+xla`
systems and without, as its `ours` and `keras`, and prints the median of each and the differences:

    layer forward                        the scan alone
    layer forward + backward             + the reverse scan and the weight gradients
    whole training step                  + embedding, logits, loss, gradients, Adam

    python benchmarks/step_profile.py [--cell lstm] [--units 256] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from speed import CELLS, CONFIGS, EMBEDDING, VOCAB, language_model


def median_ms(fn, repeats: int) -> float:
    fn()  # trace and compile
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def profile(system: str, cell: str, units: int, repeats: int) -> dict[str, float]:
    config = {**CONFIGS["base"], "units": units}
    model = language_model(system, cell, config)
    layer, jit = model.get_layer("rnn_0"), system.endswith("+xla")
    rng = np.random.default_rng(0)
    batch, steps = config["batch"], config["steps"]
    x = tf.constant(rng.normal(size=(batch, steps, EMBEDDING)).astype("float32"))
    ids = rng.integers(0, VOCAB, (batch, steps + 1)).astype("int32")

    @tf.function(jit_compile=jit)
    def forward():
        return tf.reduce_sum(layer(x))

    @tf.function(jit_compile=jit)
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    model.train_on_batch(ids[:, :-1], ids[:, 1:])  # builds the train function
    return {
        "layer forward": median_ms(forward, repeats),
        "layer forward + backward": median_ms(forward_backward, repeats),
        "whole training step": median_ms(
            lambda: model.train_on_batch(ids[:, :-1], ids[:, 1:]), repeats
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=CELLS)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rows = {
        "ours (XLA)": profile("ours+xla", args.cell, args.units, args.repeats),
        "ours (plain)": profile("ours", args.cell, args.units, args.repeats),
        "keras (XLA)": profile("keras+xla", args.cell, args.units, args.repeats),
        "keras (plain)": profile("keras", args.cell, args.units, args.repeats),
    }
    base = CONFIGS["base"]
    print(f"{args.cell}, {args.units} units, batch {base['batch']} x {base['steps']} steps; ms")
    print(f"{'':28}" + "".join(f"{name:>16}" for name in rows))
    for part in next(iter(rows.values())):
        print(f"{part:28}" + "".join(f"{r[part]:16.1f}" for r in rows.values()))
    for name, r in rows.items():
        backward = r["layer forward + backward"] - r["layer forward"]
        rest = r["whole training step"] - r["layer forward + backward"]
        share = {
            "forward": r["layer forward"],
            "backward": backward,
            "rest of step": rest,
        }
        total = r["whole training step"]
        parts = ", ".join(f"{k} {v / total:.0%}" for k, v in share.items())
        print(f"{name}: {parts}")


if __name__ == "__main__":
    main()
