"""What unfold_rnn 0.2.0 wrote still loads, samples and resumes (tests/fixtures/README.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

import unfold_rnn
from unfold_rnn import cli, runs

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_0_2_0_model_file_loads_with_the_same_outputs():
    unfold_rnn.Unfold  # noqa: B018  (as any use of the package's names, registers the layers)
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
