"""Keeping TensorFlow's start-up messages off the command line's terminal.

TensorFlow's C++ side prints its start-up notes (oneDNN, "could not find cuda drivers",
a failed CUDA probe on machines without a GPU) straight to the stderr file descriptor, before
TF_CPP_MIN_LOG_LEVEL is read; they would bury the command's own output and its one-line
errors. The command's entry point (`unfold_rnn.cli.main`) imports TensorFlow and sets up its
devices with that descriptor pointed at /dev/null. Python exceptions are unaffected; library
users keep TensorFlow's defaults; TF_CPP_MIN_LOG_LEVEL, if the user set it, is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly(set_up_devices: bool = True) -> None:
    """Import TensorFlow, and with `set_up_devices` run its CUDA probe, all silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_to_devnull():
        import tensorflow as tf

        if set_up_devices:
            tf.config.list_logical_devices()
