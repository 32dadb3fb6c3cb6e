"""What each compiled pass of our layers holds: XLA's buffer assignment, read back.

In a plain `model.fit` the layer's forward and backward passes are XLA programs of their
own. This traces one gradient of each layer at 1,000 steps (batch 64, 256 units, 64 input
features, as `speed.py`'s memory table), has XLA dump its buffer assignment, and prints every
buffer of a megabyte or more, in units of one (T, B, units) float32 array: the parameters
(what the pass reads), the outputs, and the large arrays of its scratch space.

    python benchmarks/xla_buffers.py [--cells vanilla gru lstm] [--steps 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ALLOCATION = re.compile(r"^allocation \d+: size (\d+)(.*)$")
VALUE = re.compile(r"^ value: <\d+ ([^ >]+)[^>]*> \(size=(\d+),offset=(\d+)\): (\S+)")


def trace(cell: str, steps: int) -> None:
    """In this process (XLA_FLAGS set by the caller): one gradient of `cell`'s layer."""
    import tensorflow as tf

    import unfold_rnn

    layer = {"vanilla": unfold_rnn.VanillaRNN, "gru": unfold_rnn.GRU, "lstm": unfold_rnn.LSTM}
    rnn = layer[cell](256, return_sequences=True)
    x = tf.random.normal([64, steps, 64])

    @tf.function
    def gradient(x: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(rnn(x) ** 2)
        return tape.gradient(loss, rnn.trainable_weights)

    gradient(x)


def report(dump: Path, unit: int) -> None:
    for path in sorted(dump.glob("*buffer-assignment.txt")):
        name = re.search(r"inference_(forward|backward)", path.name)
        if not name:
            continue
        print(f"  {name.group(1)} pass")
        in_temp, seen = False, set()
        for line in path.read_text().splitlines():
            allocation = ALLOCATION.match(line)
            if allocation:
                size, what = int(allocation.group(1)), allocation.group(2)
                in_temp = "preallocated-temp" in what
                if in_temp:
                    print(f"    scratch {size / unit:5.2f} in all, of which:")
                elif size >= 1 << 20:
                    role = re.search(r"parameter \d+", what)
                    print(f"    {size / unit:5.2f} {role.group(0) if role else 'an output'}")
                continue
            value = VALUE.match(line)
            # Values at one offset share the bytes (a loop's carry and its stacked array).
            large = value and int(value.group(2)) >= 1 << 20
            if in_temp and large and value.group(3) not in seen:
                seen.add(value.group(3))
                print(f"            {int(value.group(2)) / unit:5.2f} {value.group(4)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["vanilla", "gru", "lstm"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        trace(args.worker, args.steps)
        return
    unit = args.steps * 64 * 256 * 4
    print(f"one (T, B, units) array = {unit / 1e6:.1f} MB; sizes below in such arrays")
    for cell in args.cells:
        with tempfile.TemporaryDirectory() as dump:
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_dump_to={dump}".strip()
            command = [sys.executable, __file__, "--worker", cell, "--steps", str(args.steps)]
            subprocess.run(command, env=env, check=True, capture_output=True)
            print(cell)
            report(Path(dump), unit)


if __name__ == "__main__":
    main()
