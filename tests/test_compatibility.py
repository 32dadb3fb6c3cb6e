"""What unfold_rnn 0.2.0 wrote still loads, samples and resumes (tests/fixtures/README.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import TINY, UNFOLD_RNN

import unfold_rnn
from unfold_rnn import cli, runs
from unfold_rnn.config import RUN_FORMAT

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_0_2_0_model_file_loads_with_the_same_outputs():
    model = keras.models.load_model(FIXTURES / "layers-0.2.0.keras", safe_mode=True)
    saved = np.load(FIXTURES / "layers-0.2.0.npz")
    np.testing.assert_allclose(model(saved["x"]), saved["y"], atol=1e-6)


def test_a_0_2_0_run_samples_what_0_2_0_sampled(capsys):
    run = FIXTURES / "lm-0.2.0"
    assert cli.main(["sample", str(run), "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == (FIXTURES / "lm-0.2.0-sample-seed3.txt").read_text()


@pytest.mark.slow
def test_a_0_2_0_run_resumes(tmp_path):
    shutil.copytree(FIXTURES / "gru-0.2.0", tmp_path / "gru-0.2.0")
    before = json.loads((tmp_path / "gru-0.2.0" / "checkpoint" / "state.json").read_text())
    assert not before["finished"]
    status = cli.main(
        ["train-lm", "--resume", "--run-name", "gru-0.2.0", "--logdir", str(tmp_path)]
    )
    assert status == 0
    after = json.loads((tmp_path / "gru-0.2.0" / "checkpoint" / "state.json").read_text())
    assert after["finished"] and after["step"] == 40 > before["step"]
    assert runs.load_model(tmp_path / "gru-0.2.0" / runs.MODEL) is not None


@pytest.mark.slow
def test_a_0_2_0_run_evaluates_and_exports(tmp_path, text_file, capsys):
    run = FIXTURES / "lm-0.2.0"
    assert cli.main(["evaluate", str(run), "--text", str(text_file)]) == 0
    assert "nats/char" in capsys.readouterr().out
    exported = unfold_rnn.export(run, tmp_path / "served")
    assert (exported.saved_model / "saved_model.pb").is_file() and exported.tflite.is_file()


def test_a_run_of_a_newer_format_is_refused_with_the_version_to_install(tmp_path, capsys):
    run = tmp_path / "future"
    shutil.copytree(FIXTURES / "lm-0.2.0", run)
    config = json.loads((run / "config.json").read_text())
    config.update(format=RUN_FORMAT + 1, version="9.1.0", a_field_of_the_future=True)
    (run / "config.json").write_text(json.dumps(config))
    assert cli.main(["sample", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"run format {RUN_FORMAT + 1}" in err and "pip install 'unfold_rnn>=9.1.0'" in err
    assert json.loads((run / "config.json").read_text()) == config  # nothing rewritten


def test_a_new_run_records_its_format_and_the_version_that_wrote_it(lm_run):
    config = json.loads((lm_run / "config.json").read_text())
    assert (config["format"], config["version"]) == (RUN_FORMAT, unfold_rnn.__version__)


# In a fresh interpreter, as a user's script: nothing of the package is used before loading.
_LOAD_IN_A_FRESH_SCRIPT = """
import sys
import keras, numpy as np, unfold_rnn
for path in sys.argv[1:]:
    model = keras.models.load_model(path)
    ids = np.arange(24).reshape(2, 12) % 5
    np.save(path + ".logits.npy", np.asarray(model(ids)))
"""


@pytest.mark.slow
def test_keras_loads_every_cells_run_after_import_unfold_rnn(tmp_path, text_file):
    """`import keras, unfold_rnn` then `keras.models.load_model`, for a run of each cell made
    by `unfold-rnn train-lm`, and for 0.2.0's run; the loaded models compute what
    `runs.load_model` does here."""
    paths = [tmp_path / "lm-0.2.0.keras"]
    shutil.copy(FIXTURES / "lm-0.2.0" / runs.MODEL, paths[0])
    for cell in ("vanilla", "gru", "lstm", "mingru", "minlstm"):
        args = ["train-lm", "--text", str(text_file), *TINY, "--epochs", "1", "--cell", cell]
        assert cli.main([*args, "--logdir", str(tmp_path), "--run-name", cell]) == 0
        paths.append(tmp_path / cell / runs.MODEL)
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_A_FRESH_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ids = np.arange(24).reshape(2, 12) % 5
    for path in paths:
        expected = runs.load_model(path)(ids)
        np.testing.assert_allclose(np.load(f"{path}.logits.npy"), expected, atol=1e-5)


@pytest.mark.slow
def test_the_command_writes_only_the_text_when_sampling(lm_run):
    """Through the installed `unfold-rnn`, as a user runs it: TensorFlow's start-up notes and
    XLA's compile logs stay off stderr."""
    user_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [UNFOLD_RNN, "sample", str(lm_run), "--length", "30", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=user_env,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("\n") and len(done.stdout) == 32  # the prime, 30, a newline
