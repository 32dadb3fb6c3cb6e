"""The `unfold-rnn` command, end to end: train, sample, evaluate, TensorBoard, bad input."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY

import unfold_rnn
from unfold_rnn import cli, runs


def test_train_lm_makes_the_run_directory(lm_run):
    for name in ("config.json", "vocab.json", "model.keras", "checkpoint/step-000000012.keras"):
        assert (lm_run / name).is_file(), name
    assert len(list((lm_run / "checkpoint").iterdir())) == 2  # that model and state.json
    assert any((lm_run / "train").iterdir()) and any((lm_run / "validation").iterdir())
    config = json.loads((lm_run / "config.json").read_text())
    assert config["kind"] == "language_model" and config["version"] == unfold_rnn.__version__
    assert config["units"] == 12 and config["cell"] == "lstm"
    state = runs.read_state(lm_run)
    assert (state.epoch, state.step, state.finished) == (2, 12, True)
    assert state.checkpoint == "step-000000012.keras"


def test_sample_is_reproducible_and_has_the_requested_length(lm_run, capsys):
    args = ["sample", str(lm_run), "--prime", "To be", "--length", "60", "--seed", "5"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert cli.main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("To be") and len(first) == len("To be") + 60 + 1  # + newline
    assert cli.main([*args[:-1], "6"]) == 0
    assert capsys.readouterr().out != first


@pytest.mark.slow
def test_sample_several_and_greedy(lm_run, capsys):
    assert cli.main(["sample", str(lm_run), "--length", "20", "--num-samples", "3"]) == 0
    samples = capsys.readouterr().out.split(cli.SAMPLE_SEPARATOR)
    assert len(samples) == 3 and all(s.startswith("\n") for s in samples)
    greedy = ["sample", str(lm_run), "--greedy", "--length", "30"]
    assert cli.main(greedy) == 0
    out = capsys.readouterr().out
    assert cli.main(greedy) == 0
    assert capsys.readouterr().out == out


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_minimal_cells_train_sample_evaluate_and_inspect(cell, tmp_path, text_file, capsys):
    args = ["train-lm", "--text", str(text_file), *TINY, "--cell", cell, "--epochs", "1"]
    assert cli.main([*args, "--logdir", str(tmp_path), "--run-name", "run"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["cell"] == cell
    capsys.readouterr()
    assert cli.main(["sample", str(run), "--prime", "ab", "--length", "30", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out) == 2 + 30 + 1
    assert cli.main(["evaluate", str(run), "--text", str(text_file)]) == 0
    assert "nats/char" in capsys.readouterr().out
    assert cli.main(["inspect", str(run), "--text", str(text_file)]) == 0
    gates = json.loads((run / "inspect" / "units.json").read_text())["gate_saturation"]
    names = {"mingru": {"update"}, "minlstm": {"forget", "input"}}[cell]
    assert {key.split("/")[1] for key in gates} == names


@pytest.mark.slow
def test_evaluate_prints_the_models_loss(lm_run, text_file, capsys):
    assert cli.main(["evaluate", str(lm_run), "--text", str(text_file), "--streams", "3"]) == 0
    windows, stream = capsys.readouterr().out.strip().splitlines()
    assert "windows, each read from zero states" in windows
    assert "read as 3 streams, states carried" in stream
    for line in (windows, stream):
        numbers = re.findall(r"([\d.]+) nats/char, ([\d.]+) bits/char, perplexity ([\d.]+):", line)
        nats, bits, perplexity = (float(x) for x in numbers[0])
        assert math.isfinite(nats) and 0 < nats < math.log(40)
        assert bits == pytest.approx(nats / math.log(2), abs=1e-3)
        assert perplexity == pytest.approx(math.exp(nats), rel=1e-3)


@pytest.mark.slow
def test_train_addition(tmp_path, capsys):
    args = ["train-addition", "--cell", "vanilla", "--units", "8", "--bits", "4", "--epochs", "2"]
    assert cli.main([*args, "--logdir", str(tmp_path), "--run-name", "add"]) == 0
    out = capsys.readouterr().out
    for bits in (4, 8, 16, 32, 64):
        assert re.search(rf"^{bits}-bit sums: [\d.]+% of 1,000 right", out, re.MULTILINE)
    assert re.search(r"^    \d+ \+ \d+ = \d+ (✓|✗)", out, re.MULTILINE)
    assert (tmp_path / "add" / "model.keras").is_file()
    tags = _event_tags(tmp_path / "add" / "validation")
    for bits in (8, 16, 32, 64):
        assert {f"epoch_sum_accuracy_{bits}bits", f"epoch_bit_accuracy_{bits}bits"} <= tags
    assert {"epoch_sum_accuracy", "epoch_bit_accuracy"} <= tags  # the trained width's


def _event_tags(directory: Path) -> set[str]:
    import tensorflow as tf

    return {
        value.tag
        for path in directory.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }


# -- TensorBoard, served for real --------------------------------------------------------------


def _get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-XSRF-Protected": "1", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_tensorboard_serves_the_runs_dashboards(lm_run, free_ports):
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(lm_run),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/data"
    try:
        deadline = time.time() + 90
        while True:
            try:
                scalars = _get(f"{base}/plugin/scalars/tags")
                if scalars.get("train") and scalars.get("validation"):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "TensorBoard did not come up"
            time.sleep(1)
        train, validation = set(scalars["train"]), set(scalars["validation"])
        for tag in (
            "epoch_loss",
            "epoch_accuracy",
            "epoch_bits_per_char",
            "epoch_perplexity",
            "epoch_learning_rate",
            "batch_loss",
            "batch_bits_per_char",
            "tokens_per_second",
            "gradient_global_norm",
        ):
            assert tag in train, tag
        assert {"epoch_loss", "epoch_bits_per_char", "epoch_perplexity"} <= validation
        for gate in ("input", "forget", "output"):
            assert {f"gates/rnn_0/{gate}/mean", f"gates/rnn_1/{gate}/left_saturated"} <= validation
        assert _get(f"{base}/plugin/text/tags")["validation"] == ["sample"]
        histograms = _get(f"{base}/plugin/histograms/tags")
        assert "rnn_0/lstm_cell/kernel/histogram" in histograms["train"]
        assert "activations/rnn_1/forget" in histograms["validation"]
        experiment = _get(f"{base}/plugin/hparams/experiment", {"experimentName": ""})
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"cell", "units", "layers", "lr", "seq_len"} <= names
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"unfold_rnn {unfold_rnn.__version__}"


def _unfinished_copy(lm_run: Path, logdir: Path, name: str = "lm") -> Path:
    """The finished run, as if killed after its last epoch's checkpoint, before the end."""
    run = shutil.copytree(lm_run, logdir / name)
    state = runs.read_state(run)
    state.finished = False
    runs.write_state(run, state)
    return run


def _command_of(run: Path) -> list[str]:
    """The train-lm command that started `run`, every option written out."""
    saved = runs.read_config(run)
    options = ["train-lm", "--text", saved.text, "--cell", saved.cell]
    for name in ("units", "layers", "embedding_dim", "seq_len", "batch_size", "epochs"):
        options += [f"--{name.replace('_', '-')}", str(getattr(saved, name))]
    return [*options, "--steps-per-epoch", str(saved.steps_per_epoch), "--lr", str(saved.lr)]


@pytest.mark.slow
def test_the_same_command_with_resume_continues_the_run(lm_run, tmp_path):
    run = _unfinished_copy(lm_run, tmp_path)
    where = ["--logdir", str(tmp_path), "--run-name", "lm"]
    assert cli.main([*_command_of(run), *where, "--resume", "--checkpoint-every", "3"]) == 0
    assert runs.read_state(run).finished


@pytest.mark.slow
def test_resume_with_some_options_and_no_run_name_continues_the_latest_run(
    lm_run, tmp_path, capsys
):
    older = _unfinished_copy(lm_run, tmp_path, "older")
    latest = _unfinished_copy(lm_run, tmp_path, "latest")
    os.utime(older / runs.STATE, (1, 1))  # checkpointed long ago
    some = ["train-lm", "--units", str(runs.read_config(latest).units), "--seed", "0"]
    assert cli.main([*some, "--logdir", str(tmp_path), "--resume"]) == 0
    assert f"Resuming {latest}" in capsys.readouterr().err
    assert runs.read_state(latest).finished and not runs.read_state(older).finished


def test_resume_refuses_options_that_differ_naming_saved_and_given(lm_run, tmp_path, capsys):
    run = _unfinished_copy(lm_run, tmp_path)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*"))
    command = [*_command_of(run), "--logdir", str(tmp_path), "--run-name", "lm", "--resume"]
    saved = runs.read_config(run)
    assert cli.main([*command, "--seq-len", "32", "--lr", "0.01"]) == 1
    error = capsys.readouterr().err
    assert f"--seq-len (saved {saved.seq_len}, given 32)" in error
    assert f"--lr (saved {saved.lr}, given 0.01)" in error
    assert "--units" not in error  # given, but equal to the saved value
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*")) == before
