"""Writing files so that a crash never leaves a half-written one: write beside, then rename."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write` on a temporary path beside `path` (same suffix), then rename it over
    `path`: readers see the old file or the new one, never part of one."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
