"""The `unfold-rnn` command's entry point, kept outside the package on purpose.

`import unfold_rnn` loads TensorFlow (the package registers its layers with Keras when
imported), and TensorFlow's C++ side writes its start-up notes (oneDNN, "could not find cuda
drivers", a failed CUDA probe) straight to the stderr file descriptor, before any log level is
read. This module runs before the package loads, so it can point that descriptor at /dev/null
while TensorFlow starts, and leave the command's stderr to its own one-line errors. Python
exceptions are unaffected; library users keep TensorFlow's defaults; TF_CPP_MIN_LOG_LEVEL, if
the user set it, is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point the stderr file descriptor at /dev/null for the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main() -> int:
    """`unfold-rnn`: load the package quietly, then run the command line."""
    # Its C++ side logs even errors it recovers from (a kernel it falls back from); one it
    # does not recover from reaches Python as an exception, which the command reports.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_to_devnull():
        from unfold_rnn import cli
    return cli.main(quiet=stderr_to_devnull)
