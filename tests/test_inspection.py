"""Looking inside: text properties and carries worked out by hand, correlations against
numpy's, units planted by hand found first, and `unfold-rnn inspect`'s files valid."""

from __future__ import annotations

import html.parser
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import unfold_rnn
from unfold_rnn import cli, runs
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.data import CharVocab, addition_problems
from unfold_rnn.inspection import (
    carries,
    correlations,
    find_units,
    gate_saturation,
    text_properties,
)
from unfold_rnn.pictures import text_png_size
from unfold_rnn.stepper import LanguageModelStepper, layer_activations


def test_text_properties_by_hand():
    text = 'a "b" (c\n  d)'
    got = text_properties(text)
    #                                         a  _  "  b  "  _  (  c  \n _  _  d  )
    assert got["in_quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert got["in_brackets"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert got["line_position"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4]
    assert got["indentation"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2]
    assert got["after_newline"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]


def test_carries_by_hand():
    # 3 + 1 and 2 + 2, least significant bit first: 011 + 001 carries at bits 0 and 1;
    # 010 + 010 carries at bit 1 only.
    a = np.array([[1, 1, 0, 0], [0, 1, 0, 0]])
    b = np.array([[1, 0, 0, 0], [0, 1, 0, 0]])
    assert carries(np.stack([a, b], axis=-1)).tolist() == [[1, 1, 0, 0], [0, 1, 0, 0]]


def test_correlations_match_numpy(rng):
    values = rng.normal(size=(2, 50, 4))
    signal = rng.normal(size=(2, 50))
    values[..., 3] = 1.5  # a unit that never varies
    got = correlations(values, signal)
    for unit in range(3):
        expected = np.corrcoef(values[..., unit].ravel(), signal.ravel())[0, 1]
        assert got[unit] == pytest.approx(expected, abs=1e-12)
    assert got[3] == 0.0


def test_gate_saturation_counts_each_unit():
    gate = np.array([[[0.05, 0.5], [0.95, 0.5], [0.05, 0.99], [0.5, 0.99]]])
    left, right = gate_saturation(gate)
    assert left.tolist() == [0.5, 0.0] and right.tolist() == [0.25, 0.5]


QUOTES = (
    'He said "yes", and she said "no".\nThen "maybe" came, said nobody.\n'
    'A long line without any quote at all, to see what stays off.\n"Quoted" at the start.\n'
) * 3
PLANTED = 5


def quote_tracker(vocab: CharVocab, units: int = 8, seed: int = 0):
    """A 1-layer LSTM language model whose unit 5 is set by hand to flip on each double
    quote: its input gate opens and its forget gate closes only on '"', and its candidate
    tanh(2 - 6 h) writes the opposite sign of what it held. The other units are random."""
    rng = np.random.default_rng(seed)
    model = unfold_rnn.build_language_model(
        len(vocab), cell="lstm", units=units, num_layers=1, embedding_dim=2
    )
    embedding = np.zeros((len(vocab), 2), "float32")
    embedding[:, 0] = 1.0  # every character
    embedding[vocab.encode('"'), 1] = 1.0  # the quote only
    model.get_layer("embedding").set_weights([embedding])
    rnn = model.get_layer("rnn_0")
    kernel, recurrent, bias = (rng.normal(scale=0.3, size=w.shape) for w in rnn.get_weights())
    i, f, g, o = (PLANTED + gate * units for gate in range(4))  # Keras's gate order
    for column in (i, f, g, o):
        kernel[:, column], recurrent[:, column], bias[column] = 0.0, 0.0, 0.0
    kernel[1, i], bias[i] = 20.0, -10.0  # input gate: open on '"' only
    kernel[1, f], bias[f] = -20.0, 10.0  # forget gate: closed on '"' only
    recurrent[PLANTED, g], bias[g] = -6.0, 2.0  # candidate: the opposite of what it holds
    bias[o] = 10.0  # output gate open
    rnn.set_weights([kernel.astype("float32"), recurrent.astype("float32"), bias])
    return model


def test_a_planted_quote_unit_is_found_first():
    vocab = CharVocab.from_text(QUOTES)
    model = quote_tracker(vocab)
    activations = LanguageModelStepper(model).activations(vocab.encode(QUOTES)[None])
    best = find_units(activations, text_properties(QUOTES))["in_quotes"]
    assert (best[0].layer, best[0].index) == (0, PLANTED) and best[0].r > 0.9
    assert all(unit.index != PLANTED or unit.state != best[0].state for unit in best[1:])


def carry_adder():
    """A Vanilla adder whose unit 0 is set by hand to hold the carry:
    h = tanh(10 (a + b + h_prev / 2 - 1.25)) is positive exactly when a + b + carry >= 2,
    reading the carry as (h_prev + 1) / 2 (and a zero start as no carry)."""
    rng = np.random.default_rng(1)
    model = unfold_rnn.build_binary_addition_model("vanilla", units=4)
    rnn = model.get_layer("rnn")
    kernel, recurrent, bias = (rng.normal(scale=0.3, size=w.shape) for w in rnn.get_weights())
    kernel[:, 0], recurrent[:, 0], bias[0] = 10.0, 0.0, -12.5
    recurrent[0, 0] = 5.0
    rnn.set_weights([kernel.astype("float32"), recurrent.astype("float32"), bias])
    return model


def test_a_planted_carry_unit_is_found_first():
    bits, _ = addition_problems(200, 8, seed=3)
    recorded = layer_activations(carry_adder().get_layer("rnn"), bits)
    best = find_units([recorded], {"carry": carries(bits)})["carry"]
    assert best[0].index == 0 and best[0].r > 0.95


# -- the command ---------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class _Spans(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.spans, self.headings, self.open = 0, [], None

    def handle_starttag(self, tag, attrs):
        self.spans += tag == "span"
        self.open = tag

    def handle_endtag(self, tag):
        self.open = None

    def handle_data(self, data):
        if self.open == "h2":
            self.headings.append(data)


@pytest.mark.slow
def test_inspect_a_language_model_run(tmp_path, lm_run, capsys):
    run = shutil.copytree(lm_run, tmp_path / "lm")
    text = (Path(runs.read_config(run).text)).read_text()[:300]
    (tmp_path / "some.txt").write_text(text)
    args = ["inspect", str(run), "--text", str(tmp_path / "some.txt"), "--layer", "1"]
    assert cli.main([*args, "--unit", "3", "--state", "c"]) == 0
    out = capsys.readouterr().out
    assert "in_quotes" in out and "rnn_1 c[3]" in out and "rnn_0/forget" in out
    page = (run / "inspect" / "units.html").read_text()
    parser = _Spans()
    parser.feed(page)
    varying = [name for name, v in text_properties(text).items() if v.min() < v.max()]
    assert varying == ["line_position", "after_newline"]  # no quotes, brackets or indents
    assert "in_quotes      (none: it does not vary in this text; try --text)" in out
    traces = 1 + len(varying)  # the chosen unit, then the best for each varying property
    assert parser.spans == traces * len(text)
    assert parser.headings[0] == "chosen: rnn_1 c[3]" and len(parser.headings) == traces
    assert png_size(run / "inspect" / "units.png") == text_png_size(text, traces)
    width, height = png_size(run / "inspect" / "gates.png")
    assert width > 600 and height > 300  # 2 layers x 3 gates: a grid of 3 x 2 plots
    ranking = json.loads((run / "inspect" / "units.json").read_text())
    assert {name for name, units in ranking["best_units"].items() if units} == set(varying)
    assert any((run / "inspect").glob("events.out.tfevents.*"))  # the run's TensorBoard


@pytest.mark.slow
def test_inspect_finds_the_planted_units_end_to_end(tmp_path, capsys):
    (tmp_path / "quotes.txt").write_text(QUOTES)
    vocab = CharVocab.from_text(QUOTES)
    lm = tmp_path / "lm"
    config = LanguageModelConfig(text=str(tmp_path / "quotes.txt"), units=8, layers=1)
    runs.create(lm, config, vocab)
    runs.save_model(quote_tracker(vocab), lm / runs.MODEL)
    assert cli.main(["inspect", str(lm), "--text", str(tmp_path / "quotes.txt")]) == 0
    best = json.loads((lm / "inspect" / "units.json").read_text())["best_units"]["in_quotes"][0]
    assert (best["layer"], best["index"]) == (0, PLANTED)

    adder = tmp_path / "add"
    runs.create(adder, AdditionConfig(cell="vanilla", units=4))
    runs.save_model(carry_adder(), adder / runs.MODEL)
    assert cli.main(["inspect", str(adder), "--out", str(tmp_path / "pictures")]) == 0
    assert "carry          rnn h[0]" in capsys.readouterr().out
    best = json.loads((tmp_path / "pictures" / "units.json").read_text())["best_units"]["carry"]
    assert best[0]["index"] == 0 and best[0]["r"] > 0.95
    assert png_size(tmp_path / "pictures" / "carry.png") == (450, 350)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "2"], "--layer must be from 0 to 1; got 2"),
        (["--unit", "12"], "--unit must be from 0 to 11 in layer 0; got 12"),
        (["--state", "x"], "--state must be h or c"),
        (["--chars", "1"], "--chars must be at least 2"),
    ],
)
def test_inspect_bad_arguments(args, message, lm_run, capsys):
    assert cli.main(["inspect", str(lm_run), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (lm_run / "inspect").exists()


def test_the_default_text_is_the_first_validation_window_that_varies_most(tmp_path):
    from unfold_rnn.inspect_run import sample_text

    plain = ("a plain line\n" * 4)[:40]  # varies in line position and newlines only
    quoted = ('say "hi" now\n' * 4)[:40]  # in quotes too
    path = tmp_path / "text.txt"
    path.write_text("t" * 120 + plain + quoted + plain)
    config = LanguageModelConfig(text=str(path), val_fraction=0.5)
    vocab = CharVocab.from_text(path.read_text())
    assert sample_text(config, vocab, None, 40) == quoted
    path.write_text("t" * 120 + plain + plain.upper() + quoted)
    assert sample_text(config, vocab, None, 40) == quoted
    path.write_text("t" * 120 + plain + plain.upper() + plain)
    assert sample_text(config, vocab, None, 40) == plain  # a tie: the first
