"""Inside one XLA training step: the time of each operation XLA runs, summed over a step.

Trains the character-level language model of `benchmarks/speed.py` (its `base`
configuration: batch 64, 100 steps; the whole step compiled with XLA, as its `ours+xla` and
`keras+xla` systems and `build_language_model` do) for a few batches under `tf.profiler`,
with XLA's CPU runtime recording one event per operation it runs
(`--xla_cpu_enable_xprof_traceme=true`, added to XLA_FLAGS), and prints the operations that
took longest: milliseconds per training step, calls per step (100 means once a time step)
and the share of the whole XLA program.

    python benchmarks/xla_profile.py [--cell gru] [--units 256] [--layer keras] [--top 25]

Names are XLA's: `MatMul.N` a matmul, `*_fusion*` element-wise work fused into one loop,
`while.N` a loop itself (how much of its body its event covers varies, so it gets no
share). To see the code XLA made of a fusion, add `--xla_dump_to=DIR` to XLA_FLAGS and read
`DIR/*<name>_kernel_module.ir-with-opt.ll`: `<8 x float>` or wider is vectorised,
`<1 x float>` throughout is a scalar loop.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from speed import CELLS, CONFIGS, VOCAB, language_model, read_trace

from unfold_rnn.xla_settings import add_flags

# Before anything is compiled (XLA reads XLA_FLAGS once); a user's own setting of it stands.
add_flags(["--xla_cpu_enable_xprof_traceme=true"])

# Events of TensorFlow's runtime and input pipeline, not operations of the XLA program.
# (XLA's operation names never hold a colon; the runtime's mostly do.)
_NOT_XLA = (":", "Produce", "BlockUntilReady", "ExecutorDoneCallback")


def operation_times(trace_dir: str, steps: int) -> tuple[float, list[tuple[str, float, float]]]:
    """The XLA program's time per step, and (name, ms per step, calls per step) for each of
    its operations, longest first, from the `.xplane.pb` that `tf.profiler` wrote."""
    space = read_trace(trace_dir)
    total_ps: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if name.startswith("end:"):
                    continue
                total_ps[name] += event.duration_ps
                calls[name] += 1
    program = total_ps.get("CpuExecutable::ExecuteAsyncOnStream", 0) / 1e9 / steps
    rows = [
        (name, ps / 1e9 / steps, calls[name] / steps)
        for name, ps in total_ps.most_common()
        if not any(mark in name for mark in _NOT_XLA)
    ]
    return program, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=CELLS, default="lstm")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--layer", choices=["ours", "keras"], default="ours")
    parser.add_argument("--batches", type=int, default=5, help="training steps profiled")
    parser.add_argument("--top", type=int, default=25, help="operations printed")
    args = parser.parse_args()
    if args.batches < 1 or args.top < 1 or args.units < 1 or args.layers < 1:
        parser.error("--batches, --top, --units and --layers must be at least 1")

    config = {**CONFIGS["base"], "units": args.units, "layers": args.layers}
    batch, steps = config["batch"], config["steps"]
    model = language_model(f"{args.layer}+xla", args.cell, config)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (batch * (args.batches + 3), steps + 1)).astype("int32")
    x, y = ids[:, :-1], ids[:, 1:]
    warm = 3 * batch  # the first batch traces and compiles; two more settle the threads
    model.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        model.fit(x[warm:], y[warm:], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        tf.profiler.experimental.stop()
        program, rows = operation_times(trace_dir, args.batches)

    print(
        f"{args.layer} {args.cell}, {args.layers} x {args.units}, batch {batch} x {steps}: "
        f"the XLA program took {program:.1f} ms per training step (mean of {args.batches})"
    )
    print(f"{'ms/step':>9} {'calls/step':>11} {'share':>6}  operation")
    for name, ms, per_step in rows[: args.top]:
        share = "" if name.startswith("while") or not program else f"{ms / program:6.1%}"
        print(f"{ms:9.2f} {per_step:11.0f} {share:>6}  {name}")


if __name__ == "__main__":
    main()
