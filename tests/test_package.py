"""The package itself: what importing it does, and its public names."""

from __future__ import annotations

import subprocess
import sys

import unfold_rnn

# Run in a fresh interpreter: sys.argv answers nothing and the descriptor calls fail, so an
# import that read the one or touched the other would end with a traceback.
_IMPORT_WITHOUT_SIDE_EFFECTS = """
import os, sys

class Untouchable(list):
    def __getitem__(self, i): raise AssertionError("sys.argv was read")
    def __len__(self): raise AssertionError("sys.argv was read")
    def __iter__(self): raise AssertionError("sys.argv was read")

def refuse(*args): raise AssertionError("a file descriptor was touched")

sys.argv = Untouchable()
os.dup = os.dup2 = os.close = os.open = refuse
import unfold_rnn
print("tensorflow" in sys.modules)
"""


def test_importing_the_package_reads_no_argv_and_touches_no_descriptor():
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_SIDE_EFFECTS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]  # TensorFlow loads when a name is first used


def test_every_public_name_is_there():
    for name in unfold_rnn.__all__:
        assert getattr(unfold_rnn, name) is not None
    assert unfold_rnn.runs.__name__ == "unfold_rnn.runs"  # submodules too
    assert "LSTM" in dir(unfold_rnn)
