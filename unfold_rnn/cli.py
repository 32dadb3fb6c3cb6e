"""The `unfold-rnn` command. Training, sampling and evaluation arrive as subcommands here; all
of the command line's user-facing messages are produced in this module."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from unfold_rnn import __version__

    parser = argparse.ArgumentParser(
        prog="unfold-rnn",
        description="Vanilla, GRU and LSTM networks unfolded with tf.scan.",
    )
    parser.add_argument("--version", action="version", version=f"unfold_rnn {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `unfold-rnn` and `python -m unfold_rnn`; returns the exit status."""
    parser = _parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
