"""Bad input, as a table: for the API a ValueError or TypeError that says what was wrong; for
the command line a non-zero exit with one line on stderr, and no run directory damaged."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import UNFOLD_RNN

import unfold_rnn
from unfold_rnn import cli, runs
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.data import CharVocab, addition_problems, read_text, text_data
from unfold_rnn.sampling import Sampler
from unfold_rnn.training import train_language_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Files that are not usable texts, each broken in its own way."""
    folder = tmp_path_factory.mktemp("bad")
    made = {
        "empty": b"",
        "binary": bytes(range(256)) * 8,
        "latin1": "Café au lait, s'il vous plaît.\n".encode("latin-1") * 20,
        "short": b"too short",
    }
    paths = {}
    for name, data in made.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_bytes(data)
    paths["dir"] = folder / "a_directory"
    paths["dir"].mkdir()
    paths["missing"] = folder / "no_such_file.txt"
    return paths


def _tamper_with(model_file: Path, marker: Path) -> None:
    """Replace `model_file` by a model holding a Python lambda that would write `marker`."""

    def leave_a_mark(x):
        marker.write_text("code from the model file ran")
        return x

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: leave_a_mark(x))(inputs))
    model_file.unlink()
    model.save(model_file)
    marker.unlink()  # building the model ran it once, here; loading must not


@pytest.fixture(scope="module")
def logdir(tmp_path_factory, lm_run) -> Path:
    """Runs in one place: a good language-model run, an addition run, and damaged copies."""
    logdir = tmp_path_factory.mktemp("runs")
    shutil.copytree(lm_run, logdir / "lm")
    addition = ["train-addition", "--units", "4", "--bits", "4", "--epochs", "1"]
    assert cli.main([*addition, "--run-name", "add", "--logdir", str(logdir)]) == 0
    for name in ("truncated", "tampered", "no_vocab", "future", "bad_checkpoint", "unfinished"):
        shutil.copytree(lm_run, logdir / name)
    model = logdir / "truncated" / runs.MODEL
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    _tamper_with(logdir / "tampered" / runs.MODEL, logdir.parent / "marker")
    (logdir / "no_vocab" / runs.VOCAB).unlink()
    config = json.loads((logdir / "future" / runs.CONFIG).read_text())
    future = {**config, "format": config["format"] + 1, "version": "9.0.0"}
    (logdir / "future" / runs.CONFIG).write_text(json.dumps(future))
    for name in ("bad_checkpoint", "unfinished"):
        state = runs.read_state(logdir / name)
        state.finished = False
        runs.write_state(logdir / name, state)
    checkpoint = logdir / "bad_checkpoint" / runs.CHECKPOINTS / state.checkpoint
    checkpoint.write_bytes(b"PK\x03\x04 not really a zip file")
    return logdir


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- the command line -------------------------------------------------------------------------

# {name} is a file of `files`, {run:name} a run directory of `logdir`, {logdir} that folder.
CLI_CASES = [
    # texts
    (["train-lm", "--text", "{empty}"], "is empty"),
    (["train-lm", "--text", "{binary}"], "looks like a binary file"),
    (["train-lm", "--text", "{latin1}"], "is not UTF-8 text: byte 3"),
    (["train-lm", "--text", "{short}"], "shorter than one window"),
    (["train-lm", "--text", "{dir}"], "is a directory"),
    (["train-lm", "--text", "{missing}"], "No such file"),
    (["evaluate", "{run:lm}", "--text", "{latin1}"], "is not UTF-8 text"),
    (["evaluate", "{run:lm}", "--text", "{dir}"], "is a directory"),
    (["evaluate", "{run:lm}", "--text", "{empty}"], "is empty"),
    # sizes and flags
    (["train-lm", "--units", "0"], "`units` must be a positive whole number; got 0"),
    (["train-lm", "--layers", "-2"], "`layers` must be a positive whole number; got -2"),
    (["train-lm", "--seq-len", "0"], "`seq-len` must be a positive whole number"),
    (["train-lm", "--batch-size", "-1"], "`batch-size` must be a positive whole number"),
    (["train-lm", "--epochs", "0"], "`epochs` must be a positive whole number"),
    (["train-lm", "--checkpoint-every", "-5"], "`checkpoint-every` must be a whole number >= 0"),
    (["evaluate", "{run:lm}", "--text", "{short}", "--streams", "0"], "--streams must be"),
    (["train-lm", "--lr", "0"], "learning rate must be > 0"),
    (["train-lm", "--dropout", "1"], "`dropout` is the fraction of units to drop"),
    (["train-lm", "--units", "many"], "argument --units: invalid int value: 'many'"),
    (["train-lm", "--cell", "rnn"], "argument --cell: invalid choice: 'rnn'"),
    (["train-lm", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["train-addition", "--bits", "1"], "`bits` must be between 2 and 64"),
    (["train-addition", "--units", "0"], "`units` must be a positive whole number"),
    # sampling
    (["sample", "{run:lm}", "--temperature", "0"], "temperature must be > 0; got 0.0"),
    (["sample", "{run:lm}", "--temperature", "-1"], "temperature must be > 0; got -1.0"),
    (["sample", "{run:lm}", "--top-k", "1000"], "top-k must be between 1 and the vocabulary"),
    (["sample", "{run:lm}", "--top-k", "0"], "top-k must be between 1 and the vocabulary"),
    (["sample", "{run:lm}", "--top-p", "0"], "top-p must be in (0, 1]; got 0.0"),
    (["sample", "{run:lm}", "--top-p", "1.5"], "top-p must be in (0, 1]; got 1.5"),
    (["sample", "{run:lm}", "--prime", "To be€"], "'€'"),
    (["sample", "{run:lm}", "--length", "-3"], "length must be >= 0; got -3"),
    (["sample", "{run:lm}", "--num-samples", "0"], "number of samples must be >= 1"),
    # run directories
    (["sample", "{run:add}"], "holds a binary addition run, not a language model run"),
    (["evaluate", "{run:add}", "--text", "{latin1}"], "holds a binary addition run"),
    (["sample", "{missing}"], "No run directory at"),
    (["sample", "{dir}"], "is not a run directory: it has no config.json"),
    (["sample", "{run:truncated}"], "is not a usable model file"),
    (["sample", "{run:tampered}"], "is not a usable model file"),
    (["sample", "{run:no_vocab}"], "No vocabulary file at"),
    (["sample", "{run:future}"], "install unfold_rnn 9.0.0 or later"),
    (["export", "{missing}", "--out", "out"], "No run directory at"),
    (["export", "{dir}", "--out", "out"], "is not a run directory"),
    (["export", "{run:truncated}", "--out", "out"], "is not a usable model file"),
    (["export", "{run:tampered}", "--out", "out"], "is not a usable model file"),
    (["export", "{run:lm}", "--out", "{empty}"], "Cannot write to"),
    (["export", "{run:lm}", "--out", "out", "--version", "0"], "--version must be at least 1"),
    (["export", "{run:lm}"], "Say where to export: --out DIR for a SavedModel, --web DIR"),
    (["export", "{run:tampered}", "--web", "site"], "is not a usable model file"),
    (["export", "{run:lm}", "--web", "{empty}"], "is a file; the page is a folder"),
    (["export", "{run:lm}", "--web", "site", "--web-dtype", "int8"], "invalid choice: 'int8'"),
    (["train-lm", "--logdir", "{logdir}", "--run-name", "lm"], "already holds a run"),
    (["train-lm", "--logdir", "{logdir}", "--run-name", "lm", "--resume"], "already finished"),
    (["train-lm", "--logdir", "{logdir}", "--run-name", "add", "--resume"], "addition run"),
    (["train-lm", "--logdir", "{logdir}", "--run-name", "none", "--resume"], "no run to resume"),
    (["train-lm", "--logdir", "{dir}", "--resume"], "holds no unfinished run of this kind"),
    (
        [
            *("train-lm", "--logdir", "{logdir}", "--run-name", "unfinished"),
            *("--resume", "--units", "64"),
        ],
        "--units (saved 12, given 64)",
    ),
    (
        ["train-lm", "--logdir", "{logdir}", "--run-name", "bad_checkpoint", "--resume"],
        "is not a usable model file",
    ),
]


def _case_id(value: list[str] | str) -> str:
    return " ".join(value)[:60] if isinstance(value, list) else ""


def _fill(args: list[str], files: dict[str, Path], logdir: Path) -> list[str]:
    def one(arg: str) -> str:
        if arg == "{logdir}":
            return str(logdir)
        if arg.startswith("{run:"):
            return str(logdir / arg[5:-1])
        if arg.startswith("{") and arg.endswith("}"):
            return str(files[arg[1:-1]])
        return arg

    return [one(arg) for arg in args]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=_case_id)
def test_command_line_bad_input(args, message, files, logdir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run without --logdir would go: logs/
    before = snapshot(logdir)
    try:
        code = cli.main(_fill(args, files, logdir))
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert snapshot(logdir) == before  # nothing in any run directory touched
    assert not (tmp_path / "logs").exists()  # and no new run left behind
    assert not (logdir.parent / "marker").exists()  # the tampered model's code never ran


@pytest.mark.slow
def test_a_real_process_prints_one_line_too(tmp_path):
    """As above, through a real process: TensorFlow's start-up noise stays out of stderr."""
    result = subprocess.run(
        [UNFOLD_RNN, "train-lm", "--text", "/no/such/file.txt"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "unfold-rnn train-lm: error: No such file: /no/such/file.txt."
    ]
    assert not any(tmp_path.iterdir())


# -- the Python API ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sampler(lm_run) -> Sampler:
    return Sampler(runs.load_model(lm_run / runs.MODEL), runs.read_vocab(lm_run))


API_CASES = [
    ("read_text empty", lambda c: read_text(c.files["empty"]), "is empty"),
    ("read_text binary", lambda c: read_text(c.files["binary"]), "binary file"),
    ("read_text latin-1", lambda c: read_text(c.files["latin1"]), "is not UTF-8 text"),
    ("read_text directory", lambda c: read_text(c.files["dir"]), "is a directory"),
    ("read_text missing", lambda c: read_text(c.files["missing"]), "No such file"),
    ("text_data empty", lambda c: text_data(""), "The text is empty"),
    ("text_data short", lambda c: text_data("abc", seq_len=10), "shorter than one window"),
    ("text_data seq_len 0", lambda c: text_data("abcdef", seq_len=0), "`seq_len` must be"),
    ("vocab of nothing", lambda c: CharVocab.from_text(""), "empty text"),
    ("vocab of strings", lambda c: CharVocab(["ab", "c"]), "single characters"),
    ("vocab missing", lambda c: CharVocab.load(c.files["missing"]), "No vocabulary file"),
    ("encode unknown", lambda c: CharVocab("ab").encode("abc"), "'c'"),
    ("LSTM 0 units", lambda c: unfold_rnn.LSTM(0), "`units` must be a positive whole number"),
    ("GRU 1.5 units", lambda c: unfold_rnn.GRU(1.5), "`units` must be a positive whole number"),
    ("LSTM on 2-D", lambda c: unfold_rnn.LSTM(4)(np.zeros((2, 3), "float32")), "(batch, time"),
    ("LSTM no steps", lambda c: unfold_rnn.LSTM(4)(np.zeros((2, 0, 3), "float32")), "one time"),
    ("dropout 1", lambda c: unfold_rnn.VanillaRNN(4, dropout=1.0), "`dropout`"),
    ("build 0 vocab", lambda c: unfold_rnn.build_language_model(0), "vocab_size"),
    ("build bad cell", lambda c: unfold_rnn.build_language_model(5, cell="rnn"), "Unknown cell"),
    ("temperature 0", lambda c: c.sampler.generate("T", 5, temperature=0), "temperature"),
    ("top-k too big", lambda c: c.sampler.generate("T", 5, top_k=999), "top-k must be between"),
    ("top-p 0", lambda c: c.sampler.generate("T", 5, top_p=0.0), "top-p must be in (0, 1]"),
    ("top-p 2", lambda c: c.sampler.generate("T", 5, top_p=2.0), "top-p must be in (0, 1]"),
    ("prime unknown", lambda c: c.sampler.generate("T€", 5), "'€'"),
    ("prime empty", lambda c: c.sampler.generate("", 5), "at least one character"),
    ("length -1", lambda c: c.sampler.generate("T", -1), "length must be >= 0"),
    ("bits 1", lambda c: addition_problems(4, 1), "bits"),
    ("config units 0", lambda c: LanguageModelConfig(units=0).check(), "`units`"),
    ("config bits 99", lambda c: AdditionConfig(bits=99).check(), "`bits`"),
    (
        "resume no name",
        lambda c: train_language_model(LanguageModelConfig(), c.tmp, resume=True),
        "--resume needs the --run-name",
    ),
    (
        "resume nothing",
        lambda c: train_language_model(LanguageModelConfig(), c.tmp, "nope", resume=True),
        "no run to resume",
    ),
    ("model missing", lambda c: runs.load_model(c.files["missing"]), "No model at"),
]
# These read the damaged runs of `logdir`, which trains an addition run first.
RUN_CASES = [
    ("model truncated", lambda c: runs.load_model(c.runs / "truncated" / "model.keras"), "usable"),
    ("model tampered", lambda c: runs.load_model(c.runs / "tampered" / "model.keras"), "usable"),
    ("config other kind", lambda c: runs.read_config(c.runs / "add", "language_model"), "addition"),
]


class _Context:
    def __init__(self, files, logdir, sampler, tmp):
        self.files, self.runs, self.sampler, self.tmp = files, logdir, sampler, tmp


@pytest.mark.parametrize(("name", "call", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(name, call, message, files, sampler, tmp_path):
    with pytest.raises((ValueError, TypeError)) as error:
        call(_Context(files, None, sampler, tmp_path))
    assert message in str(error.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(("name", "call", "message"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_api_bad_input_on_damaged_runs(name, call, message, logdir, tmp_path):
    with pytest.raises((ValueError, TypeError)) as error:
        call(_Context({}, logdir, None, tmp_path))
    assert message in str(error.value)
    assert not (logdir.parent / "marker").exists()  # the tampered model's code never ran


def test_a_damaged_model_file_never_replaces_a_good_one(tmp_path, lm_run):
    """Writing is atomic: a save that fails half-way leaves the previous file as it was."""
    target = tmp_path / "model.keras"
    shutil.copy(lm_run / runs.MODEL, target)
    before = target.read_bytes()

    class FailsHalfWay:
        def save(self, path: Path) -> None:
            Path(path).write_bytes(before[:100])
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runs.save_model(FailsHalfWay(), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temporary left
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
