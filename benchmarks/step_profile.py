"""Where a training step's time goes: the recurrent layer's forward pass, its backward pass,
and everything else (embedding, logits, loss, Adam), for our layer and Keras's.

Times, in one process, compiled functions that do a growing part of the step of
`benchmarks/speed.py`'s language model (its `base` configuration: batch 64, 100 steps,
embedding 64, 1 x 256 units, 65 characters), with XLA as its `ours+xla` and `keras+xla`
systems and without, as its `ours` and `keras`, all taking turns, and prints the median of
each and the differences:

    layer forward                        the scan alone
    layer forward + backward             + the reverse scan and the weight gradients
    whole training step                  + embedding, logits, loss, gradients, Adam

and, as a yardstick, the same three parts made of the step's matmuls alone, with their shapes
and order (XLA): h_{t-1} U at each step of a forward loop after x W for all steps, dr_t U^T
at each step of a reverse loop, then dU, dW and dx, then the output layer's three. Each
loop step keeps one add of (B, H) to carry its result; there is no other element-wise work.
A second yardstick, "matmuls, TF's", runs the two loops as XLA programs of their own and
the large matmuls with TensorFlow's own kernels (oneDNN, which Keras's layers use without
XLA). Neither is a proof of the least a step of these shapes can take (neither program is
tuned), but the faster of the two is the least we know of; what a step spends beyond the
matmuls includes the rest of the step (embedding, softmax and loss, Adam), which every
system has.

    python benchmarks/step_profile.py [--cell lstm] [--units 256] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from speed import CELLS, CONFIGS, EMBEDDING, VOCAB, language_model

from unfold_rnn.models import CELLS as LAYERS


def medians_ms(parts: dict[str, dict[str, Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Median milliseconds of each function in `parts` (system -> part -> function), timed
    in turns: each round runs every function once, so a slow spell of this shared machine
    falls on all of them alike rather than on one system's column."""
    functions = [fn for fns in parts.values() for fn in fns.values()]
    for fn in functions:  # trace and compile, then once more warm
        fn()
        fn()
    times: dict[Any, list[float]] = {fn: [] for fn in functions}
    for _ in range(repeats):
        for fn in functions:
            start = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - start)
    return {
        system: {part: 1000 * statistics.median(times[fn]) for part, fn in fns.items()}
        for system, fns in parts.items()
    }


def profile(system: str, cell: str, units: int) -> dict[str, Any]:
    """The three parts of a training step with `system`'s layer, as functions to time."""
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
        "layer forward": forward,
        "layer forward + backward": forward_backward,
        "whole training step": lambda: model.train_on_batch(ids[:, :-1], ids[:, 1:]),
    }


def matmul_floor(cell: str, units: int, tf_kernels: bool = False) -> dict[str, Any]:
    """The three parts of `profile`, made of the training step's matmuls alone: all in one
    XLA program, or, with `tf_kernels`, the two time loops each compiled with XLA (whose
    small matmuls were the fastest here) and the large matmuls (x W, dU, dW, dx and the
    output layer's three) with TensorFlow's own kernels (oneDNN in its Linux x86 builds),
    which ran a (T·B, H)ᵀ (T·B, G) matmul faster than XLA's on Zen 5."""
    config = {**CONFIGS["base"], "units": units}
    batch, steps = config["batch"], config["steps"]
    width = LAYERS[cell](units).cell.gates * units  # the columns of W and U
    rows = batch * steps
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> tf.Tensor:
        return tf.constant(0.05 * rng.normal(size=shape).astype("float32"))

    kernel, recurrent, output = normal(EMBEDDING, width), normal(units, width), normal(units, VOCAB)
    x, d_logits = normal(rows, EMBEDDING), normal(rows, VOCAB)
    # Apart, each part is a function of its own; together, one XLA program calls them all.
    loop = tf.function(jit_compile=True) if tf_kernels else lambda f: f
    large = tf.function(jit_compile=False) if tf_kernels else lambda f: f

    @large
    def project() -> tf.Tensor:
        return tf.reshape(tf.matmul(x, kernel), (steps, batch, width))

    @loop
    def forward_loop(projected: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        def step(carry, p_t):
            r_t = tf.matmul(carry[0], recurrent) + p_t  # r_t is kept, as the layer keeps it
            return r_t[:, :units], r_t

        start = (tf.zeros((batch, units)), tf.zeros((batch, width)))
        h, kept = tf.scan(step, projected, initializer=start)
        return tf.reshape(h, (rows, units)), tf.reshape(kept, (rows, width))

    @loop
    def backward_loop(kept: tf.Tensor, d_h: tf.Tensor) -> tf.Tensor:
        kept_t, d_h_t = (tf.reshape(a, (steps, batch, -1)) for a in (kept, d_h))

        def step(d_state, inputs):  # kept stands in for dr_t: same shape, no extra work
            return tf.matmul(inputs[0], recurrent, transpose_b=True) + inputs[1] + d_state

        return tf.scan(step, (kept_t, d_h_t), initializer=tf.zeros((batch, units)))

    @large
    def weight_gradients(h: tf.Tensor, kept: tf.Tensor) -> list[tf.Tensor]:
        d_recurrent = tf.matmul(h, kept, transpose_a=True)
        d_kernel = tf.matmul(x, kept, transpose_a=True)
        d_x = tf.matmul(kept, kernel, transpose_b=True)
        return [d_recurrent, d_kernel, d_x]

    @large
    def output_layer(h: tf.Tensor) -> list[tf.Tensor]:
        logits = tf.matmul(h, output)
        d_output = tf.matmul(h, d_logits, transpose_a=True)
        d_h = tf.matmul(d_logits, output, transpose_b=True)
        return [logits, d_output, d_h]

    def layer_forward() -> list[tf.Tensor]:
        return list(forward_loop(project()))

    def layer_forward_backward() -> list[tf.Tensor]:
        h, kept = forward_loop(project())
        return [backward_loop(kept, h), *weight_gradients(h, kept)]

    def training_step() -> list[tf.Tensor]:
        h, kept = forward_loop(project())
        logits, d_output, d_h = output_layer(h)
        return [logits, d_output, backward_loop(kept, d_h), *weight_gradients(h, kept)]

    parts = {
        "layer forward": layer_forward,
        "layer forward + backward": layer_forward_backward,
        "whole training step": training_step,
    }
    if tf_kernels:
        return parts

    def whole(part: Any) -> Any:  # one XLA program, which returns only sums
        return tf.function(lambda: [tf.reduce_sum(a) for a in part()], jit_compile=True)

    return {name: whole(part) for name, part in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=CELLS)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    parts = {
        "ours (XLA)": profile("ours+xla", args.cell, args.units),
        "ours (plain)": profile("ours", args.cell, args.units),
        "keras (XLA)": profile("keras+xla", args.cell, args.units),
        "keras (plain)": profile("keras", args.cell, args.units),
        "matmuls alone": matmul_floor(args.cell, args.units),
        "matmuls, TF's": matmul_floor(args.cell, args.units, tf_kernels=True),
    }
    rows = medians_ms(parts, args.repeats)
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
    step = {name: r["whole training step"] for name, r in rows.items()}
    floor = step["matmuls alone"]
    for name in ("ours (XLA)", "ours (plain)"):
        print(f"{name}: the matmuls alone take {floor / step[name]:.0%} of its training step")
    for name in ("keras (XLA)", "keras (plain)"):
        print(
            f"1.5x {name} is {step[name] / 1.5:.1f} ms a step, of which the matmuls alone take"
            f" {floor:.1f}; beyond them, {name} spends {step[name] - floor:.1f} ms,"
            f" ours (XLA) {step['ours (XLA)'] - floor:.1f}"
        )
    fastest = min(floor, step["matmuls, TF's"])
    print(
        f"the fastest matmuls here take {fastest:.1f} ms a step; 1.5x keras (plain) leaves"
        f" {step['keras (plain)'] / 1.5 - fastest:.1f} ms beyond them for everything else"
    )


if __name__ == "__main__":
    main()
