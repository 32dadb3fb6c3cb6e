"""Where one training step's time goes, pass by pass and op by op, ours against PyTorch's.

The step is `benchmarks/speed.py`'s plain `fit` of its `base` language model (batch 64, 100
steps, embedding 64, 1 x 256 units, 65 characters, Adam). Each part is a function of its own,
compiled as the layer's plan compiles that pass (`--mode`), and all of them take turns, so a
slow spell of this shared machine falls on every row alike; the table gives medians in ms.
By default the time loops compile as the layer's plan compiles them
(`unfold_rnn.unfolding.compiles_faster`: with XLA for every cell but the GRU).

    forward    input projection        x W + b for all steps at once
               recurrent matmul        h_{t-1} U at each of the T steps (tf.foldl: nothing kept)
               scan stacking/reading   the same loop as tf.scan, reading step t and keeping r_t
               element-wise and rest   the layer's forward pass less the three rows above
    backward   recurrent matmul        dr_t U^T at each step, in a reverse tf.foldl
               scan stacking/reading   the same as a reverse tf.scan reading what was kept
               weight gradients        dU, dW and dx: three large matmuls after the loop
               element-wise and rest   the layer's backward pass less the three rows above
    step       logits and loss         the dense layer and the cross-entropy, with gradients
               optimizer               Adam's update of every weight
               rest of the step        the whole `train_on_batch` less everything above

PyTorch's step is timed the same way where its parts can be told apart: its recurrent layer
(oneDNN's fused RNN primitive: projection, matmuls and gates in one kernel) forward and
backward, the logits and loss, and Adam.

The roofline compares the recurrent matmul's rate inside the loop, 2·B·H·G flops a step,
with the same flops as one (T·B, H) x (H, G) matmul, the most this machine does at these
shapes (TensorFlow's kernel, XLA's and PyTorch's), and with T separate (B, H) x (H, G)
matmuls in PyTorch's loop.

    python benchmarks/pass_profile.py [--cells vanilla gru lstm] [--mode plan|xla|graph]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
from speed import CELLS, CONFIGS, EMBEDDING, VOCAB, language_model, torch_language_model

from unfold_rnn.models import CELLS as LAYERS
from unfold_rnn.unfolding import compiles_faster

Timed = dict[str, Callable[[], Any]]


def turns(parts: Timed, repeats: int) -> dict[str, float]:
    """Median ms of each function, run in turns after two warm-up calls."""
    for fn in parts.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def ours(cell: str, mode: str) -> tuple[Timed, dict[str, int]]:
    """The parts of our layer's training step, as functions to time, with the time loops
    compiled as `mode` says ("xla" or "graph")."""
    config = CONFIGS["base"]
    model = language_model("ours", cell, config, jit_compile=mode == "xla")
    layer = model.get_layer("rnn_0")
    units, batch, steps = config["units"], config["batch"], config["steps"]
    width = layer.cell.recurrent_kernel.shape[-1]  # G: the columns of U
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (batch, steps + 1)).astype("int32")
    x = tf.constant(rng.normal(size=(batch, steps, EMBEDDING)).astype("float32"))
    x_time = tf.transpose(x, [1, 0, 2])
    h = tf.constant(rng.normal(size=(steps, batch, units)).astype("float32"))
    kept = tf.constant(rng.normal(size=(steps, batch, width)).astype("float32"))
    kernel = layer.cell.recurrent_kernel
    loop = tf.function(jit_compile=mode == "xla")
    graph = tf.function(jit_compile=False)

    @graph
    def projection():
        return layer.cell.project_inputs(x_time)

    @loop
    def forward_matmuls():  # carry r_t; h_{t-1} is its first H columns
        return tf.foldl(lambda r, _: tf.matmul(r[:, :units], kernel), tf.range(steps), kept[0])

    @loop
    def forward_scan():
        def step(r, t):
            return tf.matmul(r[:, :units], kernel) + kept[t]

        return tf.scan(step, tf.range(steps), initializer=kept[0])

    gates = width // units

    @loop
    def backward_matmuls():  # carry dr_t; dr_t U^T tiled back to G columns stands in for it
        def step(dr, _):
            return tf.tile(tf.matmul(dr, kernel, transpose_b=True), [1, gates])

        return tf.foldl(step, tf.range(steps), kept[0])

    @loop
    def backward_scan():
        def step(dr, t):
            return tf.tile(tf.matmul(dr, kernel, transpose_b=True) + h[t], [1, gates]) + kept[t]

        return tf.scan(step, tf.range(steps), initializer=kept[0], reverse=True)

    rows = tf.reshape(h, (-1, units))
    kept_rows = tf.reshape(kept, (-1, width))
    x_rows = tf.reshape(x, (-1, EMBEDDING))

    @graph
    def weight_gradients():
        return (
            tf.matmul(rows, kept_rows, transpose_a=True),
            tf.matmul(x_rows, kept_rows, transpose_a=True),
            tf.matmul(kept_rows, layer.cell.kernel, transpose_b=True),
        )

    @graph
    def layer_forward():
        return layer(x)

    @graph
    def layer_forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x)
        return tape.gradient(outputs, [x, *layer.trainable_weights], output_gradients=h_batch)

    h_batch = tf.transpose(h, [1, 0, 2])
    logits_layer = model.layers[-1]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    targets = tf.constant(ids[:, 1:])

    @graph
    def logits_and_loss():
        with tf.GradientTape() as tape:
            tape.watch(h_batch)
            value = loss(targets, logits_layer(h_batch))
        return tape.gradient(value, [h_batch, *logits_layer.trainable_weights])

    weights = model.trainable_weights
    gradients = [tf.zeros_like(w) for w in weights]
    model.optimizer.build(weights)

    @graph
    def optimizer():
        model.optimizer.apply(gradients, weights)

    model.train_on_batch(ids[:, :-1], ids[:, 1:])
    parts = {
        "projection": projection,
        "forward matmuls": forward_matmuls,
        "forward scan": forward_scan,
        "layer forward": layer_forward,
        "backward matmuls": backward_matmuls,
        "backward scan": backward_scan,
        "weight gradients": weight_gradients,
        "layer forward + backward": layer_forward_backward,
        "logits and loss": logits_and_loss,
        "optimizer": optimizer,
        "training step": lambda: model.train_on_batch(ids[:, :-1], ids[:, 1:]),
    }
    shapes = {"batch": batch, "steps": steps, "units": units, "width": width}
    return parts, shapes


def roofline(shapes: dict[str, int]) -> Timed:
    """The recurrent matmul's flops as one large matmul, and as T small ones in PyTorch."""
    batch, steps, units, width = (shapes[k] for k in ("batch", "steps", "units", "width"))
    rng = np.random.default_rng(1)
    a = rng.normal(size=(steps * batch, units)).astype("float32")
    b = rng.normal(size=(units, width)).astype("float32")
    ta, tb = tf.constant(a), tf.constant(b)
    parts: Timed = {
        "one matmul, TensorFlow": tf.function(lambda: tf.matmul(ta, tb)),
        "one matmul, XLA": tf.function(lambda: tf.matmul(ta, tb), jit_compile=True),
    }
    if importlib.util.find_spec("torch"):
        import torch

        pa, pb = torch.from_numpy(a), torch.from_numpy(b)
        small = pa[:batch].clone()
        parts["one matmul, PyTorch"] = lambda: torch.mm(pa, pb)

        def small_matmuls() -> None:
            for _ in range(steps):
                torch.mm(small, pb)

        parts["T small matmuls, PyTorch"] = small_matmuls
    return parts


def pytorch(cell: str) -> Timed:
    """The parts of PyTorch's training step that can be timed apart."""
    import torch

    config = CONFIGS["base"]
    model = torch_language_model(cell, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch, steps, units = config["batch"], config["steps"], config["units"]
    ids = torch.randint(0, VOCAB, (batch, steps + 1))
    x = torch.randn(batch, steps, EMBEDDING, requires_grad=True)
    g = torch.randn(batch, steps, units)
    h = torch.randn(batch, steps, units, requires_grad=True)

    def rnn_forward() -> None:  # as in training: with the graph and workspace for backward
        model.rnn(x)

    def rnn_forward_backward() -> None:
        model.rnn(x)[0].backward(g)

    def logits_and_loss() -> None:
        loss_fn(model.logits(h).reshape(-1, VOCAB), ids[:, 1:].reshape(-1)).backward()

    def step() -> None:
        optimizer.zero_grad()
        loss = loss_fn(model(ids[:, :-1])[0].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()

    step()
    return {
        "layer forward": rnn_forward,
        "layer forward + backward": rnn_forward_backward,
        "logits and loss": logits_and_loss,
        "optimizer": optimizer.step,
        "training step": step,
    }


def table(ms: dict[str, float], torch_ms: dict[str, float] | None) -> list[tuple[str, ...]]:
    """The profile's rows: (pass, part, ours ms, PyTorch ms or '')."""
    fwd_scan_extra = ms["forward scan"] - ms["forward matmuls"]
    fwd_rest = ms["layer forward"] - ms["projection"] - ms["forward scan"]
    backward = ms["layer forward + backward"] - ms["layer forward"]
    bwd_scan_extra = ms["backward scan"] - ms["backward matmuls"]
    bwd_rest = backward - ms["backward scan"] - ms["weight gradients"]
    rest = ms["training step"] - ms["layer forward + backward"] - ms["logits and loss"]
    rest -= ms["optimizer"]

    def torch_part(name: str) -> str:
        return "" if torch_ms is None else f"{torch_ms[name]:.1f}"

    torch_backward = ""
    torch_rest = ""
    if torch_ms is not None:
        torch_backward = f"{torch_ms['layer forward + backward'] - torch_ms['layer forward']:.1f}"
        other = torch_ms["layer forward + backward"] + torch_ms["logits and loss"]
        torch_rest = f"{torch_ms['training step'] - other - torch_ms['optimizer']:.1f}"
    return [
        ("forward", "input projection", f"{ms['projection']:.1f}", ""),
        ("", "recurrent matmul", f"{ms['forward matmuls']:.1f}", ""),
        ("", "scan stacking/reading", f"{fwd_scan_extra:.1f}", ""),
        ("", "element-wise and rest", f"{fwd_rest:.1f}", ""),
        ("", "**forward pass**", f"{ms['layer forward']:.1f}", torch_part("layer forward")),
        ("backward", "recurrent matmul", f"{ms['backward matmuls']:.1f}", ""),
        ("", "scan stacking/reading", f"{bwd_scan_extra:.1f}", ""),
        ("", "weight gradients", f"{ms['weight gradients']:.1f}", ""),
        ("", "element-wise and rest", f"{bwd_rest:.1f}", ""),
        ("", "**backward pass**", f"{backward:.1f}", torch_backward),
        ("step", "logits and loss", f"{ms['logits and loss']:.1f}", torch_part("logits and loss")),
        ("", "optimizer", f"{ms['optimizer']:.1f}", torch_part("optimizer")),
        ("", "rest of the step", f"{rest:.1f}", torch_rest),
        ("", "**training step**", f"{ms['training step']:.1f}", torch_part("training step")),
    ]


def plan_mode(cell: str) -> str:
    """How the layer's plan compiles `cell`'s time loops: "xla" or "graph"."""
    plan = LAYERS[cell](8).cell.fast_path()
    return "xla" if compiles_faster(plan) else "graph"


def profile(cell: str, mode: str, repeats: int) -> None:
    """Print the profile of `cell`'s training step and the recurrent matmul's roofline."""
    mode = plan_mode(cell) if mode == "plan" else mode
    parts, shapes = ours(cell, mode)
    ceiling = roofline(shapes)
    has_torch = importlib.util.find_spec("torch") is not None
    theirs = {f"torch {k}": f for k, f in pytorch(cell).items()} if has_torch else {}
    ms = turns({**parts, **ceiling, **theirs}, repeats)
    torch_ms = {k.removeprefix("torch "): v for k, v in ms.items() if k.startswith("torch ")}

    print(
        f"**{cell}**, batch {shapes['batch']} x {shapes['steps']} steps, {shapes['units']}"
        f" units; our time loops: {'XLA' if mode == 'xla' else 'graph'}\n"
    )
    print("| pass | part | ours, ms | PyTorch, ms |\n|---|---|---|---|")
    for row in table(ms, torch_ms or None):
        print("| " + " | ".join(row) + " |")
    flops = 2 * shapes["batch"] * shapes["units"] * shapes["width"] * shapes["steps"]
    print(f"\nThe recurrent matmul, {flops / 1e9:.2f} GFLOP a pass:\n")
    print("| where | GFLOP/s |\n|---|---|")
    rates = {
        "our forward loop": ms["forward matmuls"],
        "our backward loop": ms["backward matmuls"],
        **{name: ms[name] for name in ceiling},
    }
    for name, value in rates.items():
        print(f"| {name} | {flops / value / 1e6:.0f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    parser.add_argument(
        "--mode",
        default="plan",
        choices=("plan", "xla", "graph"),
        help="how our time loops compile: as the layer's plan does, or with XLA, or not",
    )
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    for cell in args.cells:
        profile(cell, args.mode, args.repeats)


if __name__ == "__main__":
    main()
