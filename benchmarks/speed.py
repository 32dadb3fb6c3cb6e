"""Our layers against Keras's built-ins and PyTorch's, side by side: speed and memory.

Every measurement but generation's is a character-level language model's training step, as
a user writes it (`model.fit` with Adam; in PyTorch, the usual loop): embedding 64 ->
recurrent layer(s) -> dense logits over 65 characters, sparse cross-entropy. Configurations:

    base   batch 64, 100 steps, 256 units, 1 layer
    wide   512 units
    long   1,000 steps
    2layer 2 layers (the char-LM of the README)

Each system runs in its own process (so no one's thread or XLA settings touch another's),
and the systems take turns, round after round, so that a slow spell of this shared machine
hits all of them alike; the table gives each system's median over rounds. PyTorch is
measured only when it is installed (it is never a dependency of the package).

Systems: `ours` and `keras` are a plain `model.compile(Adam, loss)` + `model.fit`, as a user
writes it (Keras leaves XLA off on CPU-only machines; our layers still compile their own
time loop); `ours+xla` and `keras+xla` compile the whole step with `jit_compile=True`, as
`build_language_model` and the `unfold-rnn` command do, and run with the XLA settings the
command makes (`unfold_rnn.xla_settings`); `torch` is PyTorch's nn module with its default
threads.

    python benchmarks/speed.py [--rounds 2] [--configs base wide long 2layer] [--cells ...]
    python benchmarks/speed.py --memory        # also peak memory at 1,000 steps
    python benchmarks/speed.py --memory-only   # only that
    python benchmarks/speed.py --memory-only --peak-arrays   # and what each peak holds
    python benchmarks/speed.py --tables generation   # single-stream generation, chars/s
    python benchmarks/speed.py --systems ours+xla keras torch   # some systems only
    python benchmarks/speed.py --threads default 1/2 2/1        # TensorFlow's thread pools
    python benchmarks/speed.py --xla-flags xla_cpu_prefer_vector_width=256   # XLA's flags
    python benchmarks/speed.py --layer-args jit_compile=false   # our layers made otherwise
    python benchmarks/speed.py --baseline ../old   # ours against another checkout's layers

Printed: tokens/s of each system (median over rounds), ratios of ours to the others, and
each system's time to its first step (a fresh model's tracing and compiling).

`--baseline DIR` adds the systems `base` and `base+xla`: `ours` and `ours+xla` run with the
package of another checkout at DIR (put first on PYTHONPATH), taking turns with the others,
so that a change is measured before and after in one run.

`--threads` runs each TensorFlow system once more under each setting of TensorFlow's two
thread pools given as INTER/INTRA (`tf.config.threading`: inter-op threads, which run
independent operations side by side, and intra-op threads, which split one operation), set
in the worker before anything runs; `default` leaves TensorFlow's choice. Each setting gets
a column of its own, taking turns with the others, and a ratio to the same system at
`default`. `--xla-flags` does the same with XLA_FLAGS: each value (flags without their
leading dashes, separated by spaces) is set in a column of its own, and a system that
applies the command's XLA settings (`+xla`) adds only the ones it leaves unnamed.
`--layer-args` gives our systems a column for each value, their layers made with those
arguments (NAME=VALUE, several separated by spaces; true, false, none or a number) instead
of what the plan chooses by default. PyTorch keeps its threads. The memory table takes the
same columns; generation is measured at `default` only.

Memory is read three ways, each system in two processes of its own. Resident memory is
what the machine gives the process, but TensorFlow's default CPU allocator (oneDNN's, in
TensorFlow's Linux builds) keeps what it has taken, so it also shows what earlier steps and
compilations left behind. The second process puts every tensor in TensorFlow's BFC allocator
(`TF_CPU_ALLOCATOR_USE_BFC=true`). `allocated` is that allocator's peak during a step, above
its use as the step began; it counts the chunks it hands out, and it splits a free chunk only
when the chunk is at least twice the request or 128 MiB larger, so one buffer can count for
up to twice its size. `tensors` is the step's own working memory without that rounding: the
most bytes that its tensors and XLA's buffers asked for and held at once, from the allocation
events of one more step traced by `tf.profiler`; `--peak-arrays` also prints the largest
arrays held at that moment, each with the operation that asked for it and its shape (an XLA
program's buffers name neither). PyTorch has no such counters on a CPU, so it gets the
resident figure only.

Generation writes 2,000 characters from one stream (batch 1) with each configuration's
untrained model (speed does not depend on the weights), drawing each character from the
softmax at temperature 1. Ours and Keras's layers run in the same loop, `unfold_rnn`'s
`Sampler` (one step of the cells a character, states carried, compiled with XLA, 256
characters a call), so the ratio is the cells' own; PyTorch runs the loop its users write,
one call of the model a character in Python.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

CONFIGS = {
    "base": {"batch": 64, "steps": 100, "units": 256, "layers": 1},
    "wide": {"batch": 64, "steps": 100, "units": 512, "layers": 1},
    "long": {"batch": 64, "steps": 1000, "units": 256, "layers": 1},
    "2layer": {"batch": 64, "steps": 100, "units": 256, "layers": 2},
}
# benchmarks/parallel_scan.py's configurations: tokens/s as the sequence grows.
LENGTHS = {n: {"batch": 16, "steps": n, "units": 256, "layers": 1} for n in (100, 1000, 4000)}
CONFIGS.update({f"len{n}": config for n, config in LENGTHS.items()})
CELLS = ("vanilla", "gru", "lstm")
# The minimal cells, unfolded by the parallel scan (their default) or "-sequential"ly.
MINIMAL_CELLS = ("mingru", "minlstm", "mingru-sequential", "minlstm-sequential")
EMBEDDING, VOCAB = 64, 65
SYSTEMS = ("ours", "ours+xla", "keras", "keras+xla", "torch")
BASE_SYSTEMS = ("base", "base+xla")  # ours and ours+xla from the --baseline checkout
KERAS_NAMES = {"vanilla": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
TORCH_NAMES = {"vanilla": "RNN", "gru": "GRU", "lstm": "LSTM"}
GENERATED = 2000  # characters per timed sample of single-stream generation
TABLES = ("speed", "memory", "generation")
BASELINE: list[str] = []  # --baseline: the other checkout, whose package `base` runs


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """The highest resident memory seen while `on` (sampled every millisecond), so that
    the steps after the first are measured without the first step's tracing and XLA
    compilation, which the process's lifetime peak would include."""

    def __init__(self) -> None:
        self.on, self.peak, self._stop = False, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            if self.on:
                self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def language_model(system: str, cell: str, config: dict, **layer_args: Any) -> Any:
    """The benchmark's model for a TensorFlow system (ours, ours+xla, keras, keras+xla),
    compiled with Adam and the sparse cross-entropy; `layer_args` go to our layers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from unfold_rnn import build_language_model

    jit = True if system.endswith("+xla") else "auto"
    layer = cell if system.startswith("ours") else getattr(keras.layers, KERAS_NAMES[cell])
    if cell.endswith("-sequential"):
        layer = sequential_layer(cell.removesuffix("-sequential"))
    elif layer_args:
        layer = layer_with(cell, **layer_args)
    keras.utils.set_random_seed(0)
    model = build_language_model(
        VOCAB, layer, config["units"], config["layers"], EMBEDDING, compile=False
    )
    model.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    return model


def sequential_layer(cell: str) -> type:
    """The layer class of a minimal cell, unfolded by the sequential `tf.scan`."""
    return layer_with(cell, scan="sequential")


def layer_with(cell: str, **layer_args: Any) -> type:
    """Our layer class of `cell`, made with `layer_args` besides the model's own."""
    from unfold_rnn.models import CELLS as LAYERS

    base = LAYERS[cell]

    class Layer(base):
        def __init__(self, units: int, **kwargs: Any) -> None:
            super().__init__(units, **layer_args, **kwargs)

    Layer.__name__ = base.__name__ + "".join(str(v).title() for v in layer_args.values())
    return Layer


def measure_tf(system: str, cell: str, config: dict, batches: int, **layer_args: Any) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    counted = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true"

    model = language_model(system, cell, config, **layer_args)
    rng = np.random.default_rng(0)
    b, t = config["batch"], config["steps"]
    ids = rng.integers(0, VOCAB, (b * batches, t + 1)).astype("int32")
    x, y = ids[:, :-1], ids[:, 1:]

    times: list[float] = []
    working: list[float] = []  # per step after the first: the allocator's peak above its start

    sampler = RssSampler()

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            sampler.on = batch > 0
            if counted:
                tf.config.experimental.reset_memory_stats("CPU:0")
                self.alive = tf.config.experimental.get_memory_info("CPU:0")["current"]
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)
            if counted and batch > 0:
                peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
                working.append((peak - self.alive) / 2**20)

    before = rss_mb()
    model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0, callbacks=[Clock()])
    memory_mb = sampler.stop() - before
    tensors_mb, peak_arrays = None, None
    if counted:  # one more step, traced: the bytes its tensors and buffers asked for
        import tempfile

        with tempfile.TemporaryDirectory() as trace_dir:
            tf.profiler.experimental.start(trace_dir)
            model.fit(x[:b], y[:b], batch_size=b, epochs=1, shuffle=False, verbose=0)
            tf.profiler.experimental.stop()
            tensors_mb, peak_arrays = requested_peak(trace_dir)
    return {
        "times": times,
        "memory_mb": memory_mb,
        "lifetime_peak_mb": peak_rss_mb() - before,
        "working_mb": max(working) if working else None,
        "tensors_mb": tensors_mb,
        "peak_arrays": peak_arrays,
    }


def read_trace(trace_dir: str) -> Any:
    """The XSpace (planes, lines, events) that `tf.profiler` wrote under `trace_dir`."""
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise SystemExit(f"tf.profiler wrote no .xplane.pb under {trace_dir}")
    space = xplane_pb2.XSpace()
    with open(files[0], "rb") as f:
        space.ParseFromString(f.read())
    return space


def requested_peak(trace_dir: str, largest: int = 6) -> tuple[float, list[str]]:
    """The most bytes that tensors and XLA's buffers asked the allocator for and held at
    once during a run `tf.profiler` traced, above those held as it began, in MB: the
    running sum of the `requested_bytes` of its allocation events, less those freed (not
    rounded up to the allocator's chunks; see the module's docstring). Also the `largest`
    arrays held at that moment, each as its MiB, the operation that asked for it and its
    shape (an XLA program's buffers name neither), then the sum of the others."""
    events = []
    for plane in read_trace(trace_dir).planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        stat = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                kind = names.get(event.metadata_id)
                if kind not in ("MemoryAllocation", "MemoryDeallocation"):
                    continue
                values = {
                    stat[v.metadata_id]: stat[v.ref_value]  # a string, kept once per plane
                    if v.ref_value
                    else v.str_value or v.int64_value or v.uint64_value
                    for v in event.stats
                }
                events.append((line.timestamp_ns * 1000 + event.offset_ps, kind, values))
    held: dict[int, dict] = {}  # address -> the allocation's stats, of what this run allocated
    alive = peak = 0
    at_peak: list[dict] = []
    for _, kind, values in sorted(events, key=lambda e: e[0]):
        if kind == "MemoryAllocation":
            held[values["addr"]] = values
            alive += values["requested_bytes"]
        else:  # a buffer allocated before the trace began is not counted when freed
            alive -= held.pop(values["addr"], {"requested_bytes": 0})["requested_bytes"]
        if alive > peak:
            peak, at_peak = alive, list(held.values())
    at_peak.sort(key=lambda v: -v["requested_bytes"])
    arrays = [
        f"{v['requested_bytes'] / 2**20:,.1f} "
        + (
            f"{v['tf_op'].removeprefix('StatefulPartitionedCall/')} {v.get('shape', '')}"
            if v.get("tf_op")
            else "(an XLA buffer)"
        )
        for v in at_peak[:largest]
    ]
    if len(at_peak) > largest:
        rest = sum(v["requested_bytes"] for v in at_peak[largest:]) / 2**20
        arrays.append(f"{rest:,.1f} in {len(at_peak) - largest:,} smaller ones")
    return peak / 2**20, arrays


def torch_language_model(cell: str, config: dict) -> Any:
    """The benchmark's model in PyTorch: embedding -> nn.RNN/GRU/LSTM -> linear logits."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    units, layers = config["units"], config["layers"]

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, EMBEDDING)
            rnn = getattr(torch.nn, TORCH_NAMES[cell])
            self.rnn = rnn(EMBEDDING, units, num_layers=layers, batch_first=True)
            self.logits = torch.nn.Linear(units, VOCAB)

        def forward(self, ids, states=None):
            outputs, states = self.rnn(self.embedding(ids), states)
            return self.logits(outputs), states

    return Model()


def measure_torch(cell: str, config: dict, batches: int) -> dict:
    import torch

    model = torch_language_model(cell, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    b, t = config["batch"], config["steps"]
    times = []
    sampler = RssSampler()
    before = rss_mb()
    for batch in range(batches):
        sampler.on = batch > 0
        ids = torch.randint(0, VOCAB, (b, t + 1))
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(model(ids[:, :-1])[0].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {
        "times": times,
        "memory_mb": sampler.stop() - before,
        "lifetime_peak_mb": peak_rss_mb() - before,
    }


def generate_tf(system: str, cell: str, config: dict, length: int, repeats: int) -> list[float]:
    """Seconds to generate `length` characters, `repeats` times, with `unfold_rnn`'s
    Sampler over the system's model: the same compiled loop (one step a character, states
    carried, temperature 1) around our cells or Keras's."""
    from unfold_rnn import CharVocab
    from unfold_rnn.sampling import Sampler

    vocab = CharVocab([chr(c) for c in range(32, 32 + VOCAB)])
    sampler = Sampler(language_model(system, cell, config), vocab)
    sampler.generate("A", length=50, seed=0)  # traces and compiles
    return timed(lambda seed: sampler.generate("A", length=length, seed=seed), repeats)


def generate_torch(cell: str, config: dict, length: int, repeats: int) -> list[float]:
    """The same in PyTorch, as its users write it: a Python loop, one character a call,
    the states carried, drawing from the softmax."""
    import torch

    model = torch_language_model(cell, config).eval()

    def generate(length: int) -> None:
        ids, states = torch.zeros((1, 1), dtype=torch.long), None
        for _ in range(length):
            logits, states = model(ids, states)
            ids = torch.multinomial(torch.softmax(logits[:, -1], dim=-1), 1)

    with torch.inference_mode():
        generate(50)
        return timed(lambda _: generate(length), repeats)


def timed(call: Callable[[int], object], repeats: int) -> list[float]:
    """Seconds each of `call(0)` .. `call(repeats - 1)` takes."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return times


def layer_arguments(given: str) -> dict[str, Any]:
    """A `--layer-args` value as keyword arguments: "jit_compile=false recompute=true" ->
    {"jit_compile": False, "recompute": True}."""
    words = {"true": True, "false": False, "none": None}
    arguments: dict[str, Any] = {}
    for pair in given.split():
        name, _, value = pair.partition("=")
        if not name or not value:
            raise ValueError(f"give each layer argument as NAME=VALUE; got {pair!r}")
        arguments[name] = words[value.lower()] if value.lower() in words else json.loads(value)
    return arguments


def thread_pools(setting: str) -> tuple[int, int] | None:
    """A `--threads` setting, "INTER/INTRA" or "default", as (inter-op threads, intra-op
    threads), or None for TensorFlow's own choice."""
    if setting == "default":
        return None
    try:
        inter, intra = (int(n) for n in setting.split("/"))
    except ValueError:
        inter = intra = -1
    if inter < 1 or intra < 1:
        raise argparse.ArgumentTypeError(
            f"a thread setting is 'default' or INTER/INTRA, two counts of at least 1 "
            f"(for example 1/2); got {setting!r}"
        )
    return inter, intra


def worker(args: argparse.Namespace) -> None:
    config = CONFIGS[args.config]
    pools = thread_pools(args.thread_pools)
    if pools is not None and args.system != "torch":
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(pools[0])
        tf.config.threading.set_intra_op_parallelism_threads(pools[1])
    if args.with_xla_flags:  # before anything is compiled; they stand, as a user's would
        from unfold_rnn.xla_settings import add_flags

        add_flags([f"--{flag}" for flag in args.with_xla_flags.split()])
    if args.system.endswith("+xla"):
        from unfold_rnn.xla_settings import apply_training_settings

        apply_training_settings()  # before anything is compiled, as the command does
    if args.generate:
        length, repeats = GENERATED, 5
        if args.system == "torch":
            times = generate_torch(args.cell, config, length, repeats)
        else:
            times = generate_tf(args.system, args.cell, config, length, repeats)
        print(json.dumps({"chars_per_s": length / statistics.median(times)}))
        return
    if args.system == "torch":
        result = measure_torch(args.cell, config, args.batches)
    else:
        layer_args = layer_arguments(args.with_layer_args)
        result = measure_tf(args.system, args.cell, config, args.batches, **layer_args)
    times = result["times"][args.batches // 3 :]  # the first third warms up (tracing, XLA)
    tokens = config["batch"] * config["steps"]
    print(json.dumps({"tokens_per_s": tokens / statistics.median(times), **result}))


def run(
    system: str,
    cell: str,
    config: str,
    batches: int,
    counted: bool = False,
    threads: str = "default",
    xla_flags: str = "",
    generate: bool = False,
    layer_args: str = "",
) -> dict:
    """One system's measurement in a process of its own; `counted`: with TensorFlow's BFC
    allocator, which counts the bytes alive at once (set before TensorFlow loads);
    `threads`: TensorFlow's thread pools, as `--threads` takes them; `xla_flags`: XLA_FLAGS,
    as `--xla-flags` takes them; `generate`: time single-stream generation instead of
    training; `layer_args`: our layers' arguments, as `--layer-args` takes them."""
    env = dict(os.environ)
    if system.startswith("base"):  # ours, from the baseline checkout
        system = system.replace("base", "ours")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [BASELINE[0], env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--worker", system, cell, config]
    command += ["--batches", str(batches), "--thread-pools", threads]
    command += ["--generate"] if generate else []
    command += ["--with-xla-flags", xla_flags] if xla_flags else []
    command += ["--with-layer-args", layer_args] if layer_args else []
    if counted:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    # A worker that dies (once here, a long run's TensorFlow process ended with no traceback)
    # gets a second try, so that one crash does not lose the measurements of the whole run.
    for attempt in (1, 2):
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{system} {cell} {config} exited with status {done.returncode} (attempt {attempt})",
            file=sys.stderr,
            flush=True,
        )
    raise SystemExit(f"{system} {cell} {config} failed:\n{done.stderr[-3000:]}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="turns each system takes")
    classic = [c for c in CONFIGS if not c.startswith("len")]
    parser.add_argument("--configs", nargs="+", default=classic, choices=classic)
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    parser.add_argument(
        "--batches", type=int, default=24, help="training steps per process (a third at 1,000)"
    )
    parser.add_argument(
        "--systems",
        nargs="+",
        default=list(SYSTEMS),
        choices=[*SYSTEMS, *BASE_SYSTEMS],
        help="to compare (with --baseline, base and base+xla are added)",
    )
    parser.add_argument(
        "--tables", nargs="+", default=["speed"], choices=TABLES, help="what to measure"
    )
    parser.add_argument("--memory", action="store_true", help="same as --tables speed memory")
    parser.add_argument("--memory-only", action="store_true", help="same as --tables memory")
    parser.add_argument(
        "--peak-arrays",
        action="store_true",
        help="with the memory table: the largest arrays held at each tensors peak",
    )
    parser.add_argument(
        "--threads",
        nargs="+",
        default=["default"],
        help="TensorFlow thread pools to compare, each 'default' or INTER/INTRA (e.g. 1/2)",
    )
    parser.add_argument(
        "--xla-flags",
        nargs="+",
        default=[],
        help="XLA_FLAGS to compare, each without leading dashes (e.g. "
        "xla_cpu_prefer_vector_width=256); several in one value: separated by spaces",
    )
    parser.add_argument(
        "--layer-args",
        nargs="+",
        default=[],
        help="our layers' arguments to compare, each NAME=VALUE (e.g. jit_compile=false); "
        "several in one value: separated by spaces",
    )
    parser.add_argument("--baseline", help="a checkout whose package the base systems run")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # system cell config
    parser.add_argument("--thread-pools", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--with-xla-flags", default="", help=argparse.SUPPRESS)
    parser.add_argument("--with-layer-args", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for setting in args.threads:
        try:
            thread_pools(setting)
        except argparse.ArgumentTypeError as error:
            parser.error(f"--threads: {error}")
    for given in args.layer_args:
        try:
            layer_arguments(given)
        except ValueError as error:
            parser.error(f"--layer-args: {error}")
    for flags in args.xla_flags:
        if not flags.strip() or any(f.startswith("-") for f in flags.split()):
            parser.error(
                f"--xla-flags: give each flag without its leading dashes, e.g. "
                f"xla_cpu_prefer_vector_width=256; got {flags!r}"
            )
    if args.baseline:
        BASELINE.append(os.path.abspath(args.baseline))
        args.systems += [s for s in BASE_SYSTEMS if s not in args.systems]
    elif any(s in BASE_SYSTEMS for s in args.systems):
        parser.error("the base systems run another checkout's package: give --baseline DIR")
    if args.memory_only:
        args.tables = ["memory"]
    elif args.memory and "memory" not in args.tables:
        args.tables.append("memory")
    return args


def print_table(
    args: argparse.Namespace,
    configs: list[str],
    names: list[str],
    ratios: list[tuple[str, str]],
    measure: Callable[[str, str, str], float],
) -> None:
    """A header, then one row a configuration and cell: the median of `args.rounds` turns of
    `measure(column, cell, config)` for each column in `names` (all columns taking turns),
    and the ratios of medians `ratios` names."""
    width = max(10, *(len(c) + 2 for c in names))
    ratio_width = max([20, *(len(a) + len(b) + 3 for a, b in ratios)])
    header = f"{'config':7} {'cell':8}" + "".join(f"{c:>{width}}" for c in names)
    header += "".join(f"{a + '/' + b:>{ratio_width}}" for a, b in ratios)
    print(header, flush=True)
    for config in configs:
        for cell in args.cells:
            values: dict[str, list[float]] = {c: [] for c in names}
            for _ in range(args.rounds):
                for column in names:
                    values[column].append(measure(column, cell, config))
            median = {c: statistics.median(v) for c, v in values.items()}
            row = f"{config:7} {cell:8}" + "".join(f"{median[c]:{width},.0f}" for c in names)
            row += "".join(f"{median[a] / median[b]:{ratio_width - 1}.2f}x" for a, b in ratios)
            print(row, flush=True)


def setting_columns(args: argparse.Namespace, systems: list[str]) -> dict[str, tuple]:
    """column -> (system, thread pools, XLA_FLAGS, layer arguments): each TensorFlow system
    once per `--threads` and `--xla-flags` setting, and ours once more per `--layer-args`;
    PyTorch once. The default setting's column is the system's bare name."""
    # Each setting as (label, thread pools, XLA_FLAGS, layer arguments); the default: no label.
    plain = ("", "default", "", "")
    settings = [("" if t == "default" else t, t, "", "") for t in dict.fromkeys(args.threads)]
    settings += [(f, "default", f, "") for f in dict.fromkeys(args.xla_flags)]
    ours = [(a, "default", "", a) for a in dict.fromkeys(args.layer_args)]

    def of(system: str) -> list[tuple]:
        if system == "torch":
            return [plain]
        return settings + (ours if system.startswith(("ours", "base")) else [])

    return {
        f"{s} {label}".strip(): (s, threads, flags, how)
        for s in systems
        for label, threads, flags, how in of(s)
    }


def setting_ratios(columns: dict[str, tuple], pairs: list[tuple[str, str]]) -> list[tuple]:
    """`pairs` of columns that are there, then each setting's column against its system's."""
    pairs = [*pairs, *((c, s) for c, (s, *_) in columns.items() if c != s)]
    return [(a, b) for a, b in pairs if a in columns and b in columns]


def speed_table(args: argparse.Namespace, systems: list[str]) -> None:
    """Training tokens/s of every system (under each `--threads` and `--xla-flags`
    setting), and the ratios."""
    columns = setting_columns(args, systems)
    names = list(columns)
    pairs = [("ours", "keras"), ("ours+xla", "keras"), ("ours+xla", "keras+xla")]
    pairs += [("base", "keras"), ("base+xla", "keras"), ("ours", "base"), ("ours+xla", "base+xla")]
    ratios = setting_ratios(columns, [*pairs, ("ours", "torch"), ("ours+xla", "torch")])
    first_steps: dict[tuple[str, str, str], list[float]] = {}

    def tokens_per_s(column: str, cell: str, config: str) -> float:
        system, threads, flags, layer_args = columns[column]
        batches = args.batches // 3 if config == "long" else args.batches
        settings = {"threads": threads, "xla_flags": flags, "layer_args": layer_args}
        result = run(system, cell, config, batches, **settings)
        first_steps.setdefault((column, cell, config), []).append(result["times"][0])
        return result["tokens_per_s"]

    print(f"{args.rounds} rounds; {os.cpu_count()} CPUs; tokens/s, median over rounds")
    print_table(args, args.configs, names, ratios, tokens_per_s)
    # The first step traces and compiles: what a user waits for before anything trains.
    print("\ntime to the first step (a fresh model tracing and compiling), s, median over rounds")
    for (column, cell, config), times in first_steps.items():
        print(f"{config:8} {cell:8} {column:12} {statistics.median(times):.2f}", flush=True)


def memory_table(args: argparse.Namespace, systems: list[str]) -> None:
    """Peak memory of a training step at 1,000 steps, resident and allocated, of every
    system (under each `--threads` and `--xla-flags` setting)."""
    print(
        "peak memory of a training step at 1,000 steps (steps 2-4; the first step traces"
        "\nand compiles), MB. resident: the highest resident memory sampled, above the"
        "\nprocess before fit (the lifetime peak, with the first step, in brackets)."
        "\nallocated: the peak of TensorFlow's BFC allocator during a step (the chunks in"
        "\nuse), above its use as the step began (a process of its own). tensors: the most"
        "\nbytes the step's tensors and XLA buffers asked for and held at once (traced, in"
        "\nthe same process)"
    )
    columns = setting_columns(args, systems)
    pairs = [("ours", "keras"), ("ours+xla", "keras"), ("base", "keras"), ("base+xla", "keras")]
    ratios = setting_ratios(columns, pairs)
    for cell in args.cells:
        resident, allocated = {}, {}
        for column, (system, threads, flags, layer_args) in columns.items():
            settings = {"threads": threads, "xla_flags": flags, "layer_args": layer_args}
            resident[column] = run(system, cell, "long", 4, **settings)
            if system != "torch":  # PyTorch has no allocator counter on a CPU
                allocated[column] = run(system, cell, "long", 4, counted=True, **settings)
        for name, results, key in [
            ("resident", resident, "memory_mb"),
            ("allocated", allocated, "working_mb"),
            ("tensors", allocated, "tensors_mb"),
        ]:
            row = "   ".join(
                f"{c} {r[key]:,.0f}"
                + (f" ({r['lifetime_peak_mb']:,.0f})" if name == "resident" else "")
                for c, r in results.items()
            )
            against = "   ".join(
                f"{a}/{b} {results[a][key] / results[b][key]:.2f}x"
                for a, b in ratios
                if a in results and b in results
            )
            print(f"{cell:8} {name:9} {row}   {against}", flush=True)
        if args.peak_arrays:  # what the tensors row is made of
            for column, result in allocated.items():
                arrays = "; ".join(result["peak_arrays"])
                print(f"{cell:8} {'at peak':9} {column}: {arrays} (MiB)", flush=True)


def generation_table(args: argparse.Namespace, systems: list[str]) -> None:
    """Single-stream generation, chars/s: ours and Keras's in the same compiled sampling
    loop, PyTorch in its usual Python loop. XLA in the training step makes no difference
    here (`ours+xla` counts as `ours`, `keras+xla` as `keras`), nor does the training
    sequence length (`long` is left out)."""
    kinds = [k for k in ("ours", "keras", "torch") if any(s.startswith(k) for s in systems)]
    ratios = [(a, b) for a, b in [("ours", "keras"), ("ours", "torch")] if {a, b} <= {*kinds}]
    print(
        f"single-stream generation, {GENERATED:,} characters a sample, temperature 1; "
        f"chars/s, median of 5 samples, then over {args.rounds} rounds"
    )
    configs = [c for c in args.configs if c != "long"]

    def chars_per_s(kind: str, cell: str, config: str) -> float:
        return run(kind, cell, config, 0, generate=True)["chars_per_s"]

    print_table(args, configs, kinds, ratios, chars_per_s)


def main() -> None:
    args = parse_args()
    if args.worker:
        args.system, args.cell, args.config = args.worker
        worker(args)
        return
    has_torch = importlib.util.find_spec("torch") is not None
    systems = [s for s in args.systems if s != "torch" or has_torch]
    tables = {"speed": speed_table, "memory": memory_table, "generation": generation_table}
    for i, name in enumerate(t for t in TABLES if t in args.tables):
        if i:
            print()
        tables[name](args, systems)


if __name__ == "__main__":
    main()
