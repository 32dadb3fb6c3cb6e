"""Export: what a SavedModel and a LiteRT model serve, checked in a fresh process that has
plain TensorFlow and no unfold_rnn (tests/serving_client.py), against the Keras model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import randomize_weights

import unfold_rnn
from unfold_rnn import cli, runs
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.data import CharVocab

CLIENT = Path(__file__).with_name("serving_client.py")
VOCAB = CharVocab.from_text("abcdefgh ,.\n:XYZ")
STEPS = 200


def serve(kind: str, path: Path, tmp_path: Path, **inputs: object) -> dict:
    """Run the client in a new Python process; what it got back."""
    np.savez(tmp_path / "inputs.npz", **inputs)
    done = subprocess.run(
        [
            sys.executable,
            str(CLIENT),
            kind,
            str(path),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "results.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(tmp_path / "results.npz"))


def language_model_run(run_dir: Path, cell: str, seed: int = 0) -> keras.Model:
    """A run directory holding a 2-layer language model with random weights: large enough
    for logits of order 1 (so the tolerances mean something), small enough that the
    recurrence contracts, as a trained one does, instead of amplifying rounding."""
    keras.utils.set_random_seed(seed)
    model = unfold_rnn.build_language_model(
        len(VOCAB), cell, units=16, num_layers=2, embedding_dim=8, dropout=0.1, compile=False
    )
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.2, size=w.shape) for w in model.get_weights()])
    logits = model.get_layer("logits").kernel
    logits.assign(rng.normal(size=logits.shape))
    runs.create(run_dir, LanguageModelConfig(cell=cell), VOCAB)
    runs.save_model(model, run_dir / runs.MODEL)
    return model


def adder_run(run_dir: Path) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = unfold_rnn.build_binary_addition_model("lstm", units=8, compile=False)
    randomize_weights(model, np.random.default_rng(0))
    runs.create(run_dir, AdditionConfig(cell="lstm"))
    runs.save_model(model, run_dir / runs.MODEL)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["vanilla", "gru", "lstm", "mingru", "minlstm"])
def test_a_language_model_serves_without_unfold_rnn(cell, tmp_path, capsys):
    model = language_model_run(tmp_path / "run", cell)
    exported = unfold_rnn.export(tmp_path / "run", tmp_path / "out")
    sizes = {"lstm": 2 * 16 * 2}.get(cell, 2 * 16)
    assert exported.state_width == sizes
    described = json.loads((tmp_path / "out" / "1" / "unfold_rnn.json").read_text())
    assert described["state_width"] == sizes and described["vocab_size"] == len(VOCAB)
    assert [s["offset"] for s in described["state_layout"]] == list(range(0, sizes, 16))

    ids = np.random.default_rng(1).integers(0, len(VOCAB), (3, STEPS)).astype(np.int32)
    prime, length, temperature, seed = "XY: ab", 300, 0.8, 11
    served = serve(
        "language_model",
        tmp_path / "out",
        tmp_path,
        ids=ids,
        prime=prime,
        length=length,
        temperature=temperature,
        seed=seed,
    )
    expected = model(ids).numpy()
    assert np.abs(expected).max() > 1  # logits big enough for the tolerances to mean much
    np.testing.assert_allclose(served["whole"], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["session"], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["stepped"], served["whole"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["lite"], served["stepped"][:1], atol=1e-4, rtol=0)
    assert json.loads(str(served["lite_inputs"])) == {"ids": [1], "states": [1, sizes]}
    analysis = str(served["analysis"])
    assert "Subgraph#0" in analysis and "flex" not in analysis.lower()

    sample = ["sample", str(tmp_path / "run"), "--prime", prime, "--length", str(length)]
    assert cli.main([*sample, "--temperature", str(temperature), "--seed", str(seed)]) == 0
    assert str(served["text"]) == capsys.readouterr().out[:-1]


@pytest.mark.slow
def test_the_litert_example_generates_text(tmp_path):
    language_model_run(tmp_path / "run", "gru")
    unfold_rnn.export(tmp_path / "run", tmp_path / "out")
    example = Path(__file__).parents[1] / "examples" / "litert_generate.py"
    command = [sys.executable, str(example), str(tmp_path / "out"), "--prime", "XY: ab"]
    done = subprocess.run([*command, "--length", "50"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout[:-1]
    assert text.startswith("XY: ab") and len(text) == 56 and set(text) <= set(VOCAB.chars)


@pytest.mark.slow
def test_an_adder_serves_its_sums(tmp_path):
    model = adder_run(tmp_path / "run")
    exported = unfold_rnn.export(tmp_path / "run", tmp_path / "out", version=3)
    assert exported.saved_model == tmp_path / "out" / "3" and exported.tflite is None
    bits = np.random.default_rng(2).integers(0, 2, (5, 12, 2)).astype(np.int32)
    served = serve("adder", tmp_path / "out" / "3", tmp_path, bits=bits)
    expected = model(bits.astype(np.float32)).numpy()[..., 0]
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-6)
    np.testing.assert_array_equal(served["sum_bits"], expected > 0.5)
    np.testing.assert_array_equal(served["session"], served["sum_bits"])


@pytest.mark.slow
def test_keras_export_of_a_model_with_our_layers(tmp_path):
    """Keras's own `model.export` and `ExportArchive`, for users' models."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 5))
    h = unfold_rnn.LSTM(8, return_sequences=True)(inputs)
    outputs = unfold_rnn.GRU(6)(h)
    model = keras.Model(inputs, outputs)
    randomize_weights(model, np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(4, 9, 5)).astype(np.float32)

    model.export(tmp_path / "exported", verbose=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        model.call,
        input_signature=[keras.InputSpec(dtype="float32", shape=(None, None, 5))],
    )
    archive.write_out(tmp_path / "archive", verbose=False)
    for path in ("exported", "archive"):
        served = serve("keras", tmp_path / path, tmp_path, x=x)["served"]
        np.testing.assert_allclose(served, model(x).numpy(), atol=1e-6)


# -- refusals: each leaves everything as it was ----------------------------------------------


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        unfold_rnn.export(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="No run directory"):
        unfold_rnn.export(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_model_file_is_refused_and_nothing_is_written(tmp_path):
    adder_run(tmp_path / "run")
    (tmp_path / "run" / runs.MODEL).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a usable model file"):
        unfold_rnn.export(tmp_path / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_version_that_holds_something_is_kept_unless_overwritten(tmp_path):
    adder_run(tmp_path / "run")
    kept = tmp_path / "out" / "1" / "saved_model.pb"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"someone's model")
    with pytest.raises(ValueError, match=r"already holds a model.*--overwrite"):
        unfold_rnn.export(tmp_path / "run", tmp_path / "out")
    assert kept.read_bytes() == b"someone's model"

    unfold_rnn.export(tmp_path / "run", tmp_path / "out", overwrite=True)
    assert kept.read_bytes() != b"someone's model"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1"]  # no leftovers


def test_a_failed_export_leaves_the_old_version(tmp_path):
    """The vocabulary is read while the new version is being written: a damaged one fails
    the export midway, and the version already there stays whole."""
    language_model_run(tmp_path / "run", "vanilla")
    old = tmp_path / "out" / "1" / "saved_model.pb"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"the old model")
    (tmp_path / "run" / runs.VOCAB).write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="vocabulary"):
        unfold_rnn.export(tmp_path / "run", tmp_path / "out", overwrite=True)
    assert old.read_bytes() == b"the old model"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1"]


def test_an_unwritable_destination_is_refused(tmp_path):
    adder_run(tmp_path / "run")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="Cannot write to"):
        unfold_rnn.export(tmp_path / "run", tmp_path / "a_file" / "out")


@pytest.mark.parametrize("version", [0, -2, 1.5, True])
def test_a_version_must_be_a_whole_number_from_1(tmp_path, version):
    with pytest.raises(ValueError, match="version must be a whole number >= 1"):
        unfold_rnn.export(tmp_path, tmp_path / "out", version=version)


def test_the_command_prints_where_and_the_state_layout(tmp_path, capsys):
    language_model_run(tmp_path / "run", "lstm")
    out = tmp_path / "out"
    assert cli.main(["export", str(tmp_path / "run"), "--out", str(out), "--version", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"SavedModel: {out / '2'}" in printed and f"{out / 'step.tflite'}" in printed
    assert "State width: 64: rnn_0.h [0:16], rnn_0.c [16:32], rnn_1.h [32:48]" in printed
    assert "tensorflow/serving" in printed
    assert cli.main(["export", str(tmp_path / "run"), "--out", str(out), "--version", "2"]) == 1
    assert "already holds a model" in capsys.readouterr().err
