"""The XLA settings the `unfold-rnn` command makes, and how a script makes them too.

Two flags of XLA's CPU compiler (TensorFlow 2.21's defaults in brackets); docs/design.md gives
the measurements behind each:

- `--xla_cpu_enable_concurrency_optimized_scheduler=false` (true). That scheduler trades
  memory for operations run side by side; a step through time has little to run side by side
  (each step waits for the last), and with it off XLA packs the arrays into less memory.
- `--xla_cpu_prefer_vector_width=512` (256), only where the CPU reports AVX-512 (the `avx512f`
  flag of Linux's /proc/cpuinfo): the gates' element-wise work then runs on whole AVX-512
  registers. The layers' numbers stay the same to within float rounding.

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
