"""The `unfold-rnn` command."""

from __future__ import annotations

import subprocess
import sys

import pytest

import unfold_rnn
from unfold_rnn import cli


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"unfold_rnn {unfold_rnn.__version__}"


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "unfold_rnn", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: unfold-rnn")
