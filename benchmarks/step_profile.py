"""Where a training step's time goes: the recurrent layer's forward pass, its backward pass,
and everything else (embedding, logits, loss, Adam), for our layer and Keras's.

Times, in one process, compiled functions that do a growing part of the step (batch 64,
100 steps, embedding 64, 1 x 256 units, 65 characters), each with XLA as `ours+xla` in
`benchmarks/speed.py`, and prints the median of each and the differences:

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

import keras
import numpy as np
import tensorflow as tf

import unfold_rnn
from unfold_rnn.models import CELLS

KERAS_LAYERS = {
    "vanilla": keras.layers.SimpleRNN,
    "gru": keras.layers.GRU,
    "lstm": keras.layers.LSTM,
}
BATCH, STEPS, EMBEDDING, VOCAB = 64, 100, 64, 65


def median_ms(fn, repeats: int) -> float:
    fn()  # trace and compile
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def profile(layer_class: type, units: int, repeats: int, jit: bool) -> dict[str, float]:
    keras.utils.set_random_seed(0)
    layer = layer_class(units, return_sequences=True)
    model = unfold_rnn.build_language_model(VOCAB, layer_class, units, 1, EMBEDDING, compile=False)
    model.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, STEPS, EMBEDDING)).astype("float32"))
    ids = rng.integers(0, VOCAB, (BATCH, STEPS + 1)).astype("int32")
    layer(x)

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
    parser.add_argument("--cell", default="lstm", choices=list(CELLS))
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rows = {
        "ours (XLA)": profile(CELLS[args.cell], args.units, args.repeats, jit=True),
        "keras (XLA)": profile(KERAS_LAYERS[args.cell], args.units, args.repeats, jit=True),
        "keras (plain)": profile(KERAS_LAYERS[args.cell], args.units, args.repeats, jit=False),
    }
    print(f"{args.cell}, {args.units} units, batch {BATCH} x {STEPS} steps; ms, median")
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
