"""Keras's own tests of its recurrent layers pass with ours swapped in for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

KERAS_RNN_TESTS = Path(keras.__file__).parent / "src" / "layers" / "rnn"
SUITES = ["lstm_test.py", "gru_test.py", "simple_rnn_test.py"]

# A pytest plugin, loaded before Keras's test modules: they call `layers.LSTM` and so on
# through `keras.src.layers`, which then hands them ours.
SWAP = """
import unfold_rnn
from keras.src import layers

layers.LSTM, layers.GRU, layers.SimpleRNN = unfold_rnn.LSTM, unfold_rnn.GRU, unfold_rnn.VanillaRNN
"""


@pytest.mark.slow
@pytest.mark.skipif(not (KERAS_RNN_TESTS / SUITES[0]).exists(), reason="Keras ships no tests")
def test_keras_recurrent_layer_tests_pass_with_our_layers(tmp_path):
    (tmp_path / "swap_in_unfold_rnn.py").write_text(SWAP)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    suites = [str(KERAS_RNN_TESTS / s) for s in SUITES]
    pytest_args = ["-p", "swap_in_unfold_rnn", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args, "--rootdir", str(tmp_path), *suites],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout.splitlines()[-1]
