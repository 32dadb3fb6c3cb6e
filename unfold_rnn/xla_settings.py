"""The XLA settings the `unfold-rnn` command makes, and how a script makes them too.

Two flags of XLA's CPU compiler (TensorFlow 2.21's defaults in brackets), each measured with
the language model of `benchmarks/speed.py`, its `ours+xla` system:

- `--xla_cpu_enable_concurrency_optimized_scheduler=false` (true). That scheduler orders each
  program's operations, in its own words (`XLA_FLAGS=--help`), "for extracting concurrency
  from an HLO module by trading off extra memory pressure". A training step through time has
  little to run side by side (each step waits for the last), and with the scheduler off, XLA
  packs the step's arrays into less memory at the same speed. Measured on a 2-core AVX-512
  CPU, peak resident memory of the XLA training step at 1,000 time steps: Vanilla 527-532 ->
  417-465 MB, GRU 873-889 -> 794-821 MB, LSTM 909-916 -> 894-908 MB; tokens/s at 100 steps
  unchanged within the noise (8 to 14 interleaved runs a cell).
- `--xla_cpu_prefer_vector_width=512` (256). XLA asks LLVM for vectors of 256 bits, half what
  AVX-512 holds; at 512, the element-wise work of each step (the gates' sigmoids and tanh,
  forward and back) runs on whole AVX-512 registers. Measured on a 2-core Zen 5 CPU, tokens/s
  of the XLA training step (`speed.py --systems ours+xla --xla-flags
  xla_cpu_prefer_vector_width=512`, three rounds), 512 against 256: GRU 1.02-1.16 (1.16 on
  the base configuration, 1.11 at 1,000 steps and with 2 layers), LSTM 1.00-1.06, Vanilla
  1.01-1.12 (README, "Speed"). The layers' numbers stay the same to within float rounding
  (tests/test_xla_settings.py). A CPU without AVX-512 has no wider vectors to give: with
  XLA held to AVX2 on the same CPU (`--xla_cpu_max_isa=AVX2`), 512 against 256 measured
  0.95-1.04, nothing gained. So the flag is added only where the CPU reports AVX-512 (the
  `avx512f` flag of Linux's /proc/cpuinfo; elsewhere it is left out).

The command adds each flag to XLA_FLAGS before anything is compiled, unless XLA_FLAGS already
names it (a user's choice, either way, is kept). XLA stops the process on a flag it does not
know, so this happens only with the TensorFlow versions whose XLA was checked to have them
(`VERIFIED_WITH`); with others the command keeps XLA's defaults. Library users keep XLA's
defaults; XLA reads XLA_FLAGS once, at the first compilation, so a script that wants the
settings calls `apply_training_settings()` (or sets XLA_FLAGS itself) before it compiles
anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping, Sequence

import tensorflow as tf

SCHEDULER = "xla_cpu_enable_concurrency_optimized_scheduler"
VECTOR_WIDTH = "xla_cpu_prefer_vector_width"
TRAINING_FLAGS = (f"--{SCHEDULER}=false", f"--{VECTOR_WIDTH}=512")
# (major, minor) versions of TensorFlow whose XLA lists the flags (XLA_FLAGS=--help).
VERIFIED_WITH = ((2, 21),)


def apply_training_settings(
    environ: MutableMapping[str, str] | None = None,
    tf_version: str = tf.__version__,
    avx512: bool | None = None,
) -> list[str]:
    """Add the command's XLA flags to XLA_FLAGS in `environ` (by default `os.environ`), each
    unless XLA_FLAGS already names it, and none unless `tf_version` is one of
    `VERIFIED_WITH`; the vector width only if `avx512` (by default: whether this CPU has
    AVX-512). Returns the flags added.

    It takes effect only if XLA has not compiled anything yet in this process.
    """
    version = re.match(r"(\d+)\.(\d+)", tf_version)
    if version is None or (int(version[1]), int(version[2])) not in VERIFIED_WITH:
        return []
    avx512 = has_avx512() if avx512 is None else avx512
    flags = [flag for flag in TRAINING_FLAGS if avx512 or _name(flag) != VECTOR_WIDTH]
    return add_flags(flags, environ)


def has_avx512(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU lists AVX-512 Foundation (`avx512f`) among its flags in `cpuinfo`;
    False where that file does not exist or cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            return any(line.startswith("flags") and "avx512f" in line.split() for line in lines)
    except OSError:
        return False


def add_flags(flags: Sequence[str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Append `flags` ("--name=value") to XLA_FLAGS in `environ` (by default `os.environ`),
    each unless XLA_FLAGS already names it. Returns the flags added."""
    environ = os.environ if environ is None else environ
    current = environ.get("XLA_FLAGS", "").split()
    named = {_name(word) for word in current}
    added = [flag for flag in flags if _name(flag) not in named]
    if added:
        environ["XLA_FLAGS"] = " ".join([*current, *added])
    return added


def _name(flag: str) -> str:
    """--name=value, --name or name=value -> name."""
    return flag.lstrip("-").split("=", 1)[0]
