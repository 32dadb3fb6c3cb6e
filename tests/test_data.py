"""The data: vocabulary, text windows, the default corpus and binary-addition problems."""

from __future__ import annotations

import numpy as np
import pytest

from unfold_rnn import CharVocab
from unfold_rnn.data import (
    addition_problems,
    bits_to_ints,
    default_corpus,
    ints_to_bits,
    read_text,
    text_data,
)

# -- vocabulary --------------------------------------------------------------------------------


def test_vocab_is_sorted_by_code_point_and_round_trips():
    vocab = CharVocab.from_text("hello, wörld\n")
    assert vocab.chars == ["\n", " ", ",", "d", "e", "h", "l", "o", "r", "w", "ö"]
    ids = vocab.encode("hello")
    np.testing.assert_array_equal(ids, [5, 4, 6, 6, 7])
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == "hello"


def test_vocab_in_any_order_encodes_by_its_own_ids():
    vocab = CharVocab(["z", "a", "😀"])
    np.testing.assert_array_equal(vocab.encode("a😀z"), [1, 2, 0])
    assert vocab.decode([2, 1]) == "😀a"


def test_vocab_json_round_trip(tmp_path):
    vocab = CharVocab.from_text('ab"c\\ 😀\n')
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert CharVocab.load(path) == vocab
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary left behind


def test_unknown_characters_are_refused_with_their_position():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"first at position 2: 'xz'.*unknown='skip'"):
        vocab.encode("abzcx")


def test_unknown_characters_can_be_skipped():
    vocab = CharVocab.from_text("abc")
    np.testing.assert_array_equal(vocab.encode("abzcx", unknown="skip"), [0, 1, 2])


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ("not json", "invalid JSON"),
        ('{"chars": ["a"]}', "expected a JSON object"),
        ('{"format": "unfold_rnn.CharVocab", "chars": ["a", "a"]}', "distinct"),
        ('{"format": "unfold_rnn.CharVocab", "chars": ["ab"]}', "single characters"),
        ('{"format": "unfold_rnn.CharVocab"}', "chars"),
    ],
)
def test_bad_vocab_files(tmp_path, contents, message):
    path = tmp_path / "vocab.json"
    path.write_text(contents)
    with pytest.raises(ValueError, match=message):
        CharVocab.load(path)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(ValueError, match="No vocabulary file"):
        CharVocab.load(tmp_path / "nothing.json")


def test_decode_rejects_ids_out_of_range():
    with pytest.raises(ValueError, match=r"Ids must be in \[0, 3\)"):
        CharVocab.from_text("abc").decode([0, 3])


# -- text windows ------------------------------------------------------------------------------

# Every character distinct, so a window's position in the text can be read off its first id.
DISTINCT = "".join(chr(0x100 + i) for i in range(200))


def _batches(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


def test_training_windows_and_targets_are_exactly_right():
    seq_len, batch_size = 7, 5
    data = text_data(DISTINCT, seq_len=seq_len, batch_size=batch_size, val_fraction=0.25)
    ids = data.vocab.encode(DISTINCT)
    assert (data.train_chars, data.validation_chars) == (150, 50)
    starts = []
    for x, y in _batches(data.train, 20):
        assert x.shape == y.shape == (batch_size, seq_len)
        for row_x, row_y in zip(x, y, strict=True):
            start = int(np.flatnonzero(ids == row_x[0])[0])
            np.testing.assert_array_equal(row_x, ids[start : start + seq_len])
            np.testing.assert_array_equal(row_y, ids[start + 1 : start + seq_len + 1])
            assert start + seq_len + 1 <= 150  # never reaches into the validation part
            starts.append(start)
    assert len({s % seq_len for s in starts}) > 1  # fresh offsets, not a fixed grid
    assert min(starts) < 20 and max(starts) > 120  # drawn from the whole training part


def test_validation_walks_its_part_once_without_overlap():
    seq_len = 7
    data = text_data(DISTINCT, seq_len=seq_len, batch_size=3, val_fraction=0.25)
    ids = data.vocab.encode(DISTINCT)[150:]
    inputs = np.concatenate([x for x, _ in _batches(data.validation, 100)])
    targets = np.concatenate([y for _, y in _batches(data.validation, 100)])
    assert len(inputs) == (50 - 1) // seq_len  # every full window of the 50 characters
    np.testing.assert_array_equal(inputs.ravel(), ids[: inputs.size])
    np.testing.assert_array_equal(targets.ravel(), ids[1 : inputs.size + 1])


def test_training_batches_are_reproducible_with_a_seed():
    first = _batches(text_data(DISTINCT, seq_len=5, batch_size=4, seed=3).train, 3)
    again = _batches(text_data(DISTINCT, seq_len=5, batch_size=4, seed=3).train, 3)
    other = _batches(text_data(DISTINCT, seq_len=5, batch_size=4, seed=4).train, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_steps_per_epoch_is_one_pass_over_the_training_text():
    data = text_data("ab" * 5000, seq_len=10, batch_size=20, val_fraction=0.2)
    assert data.steps_per_epoch == 8000 // (10 * 20)


def test_no_validation_part():
    data = text_data(DISTINCT, seq_len=10, val_fraction=0.0)
    assert data.validation is None and data.train_chars == len(DISTINCT)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "empty"),
        ({"text": "short text", "seq_len": 10}, "shorter than one window"),
        ({"text": "x" * 100, "seq_len": 20, "val_fraction": 0.1}, "validation part"),
        ({"text": "x" * 100, "val_fraction": 1.0}, "val_fraction"),
        ({"text": "x" * 100, "seq_len": 0}, "seq_len"),
        ({"text": "x" * 100, "batch_size": -1}, "batch_size"),
    ],
)
def test_bad_text_data_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        text_data(**kwargs)


# -- reading files -----------------------------------------------------------------------------


def test_read_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("naïve ☃\n", encoding="utf-8")
    assert read_text(path) == "naïve ☃\n"


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"", "is empty"),
        (b"caf\xe9 au lait", r"not UTF-8 text: byte 3"),
        (b"\x7fELF\x02\x01\x01\x00\x00", "binary file"),
    ],
)
def test_bad_text_files(tmp_path, contents, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=message):
        read_text(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="is a directory"):
        read_text(tmp_path)


def test_default_corpus_is_python_source_and_fixed():
    corpus = default_corpus(max_chars=200_000)
    assert len(corpus) == 200_000
    assert "def " in corpus and "import " in corpus
    assert corpus == default_corpus(max_chars=200_000)


# -- binary addition ---------------------------------------------------------------------------


def test_bits_are_least_significant_first():
    np.testing.assert_array_equal(ints_to_bits(np.array([6, 1]), 4), [[0, 1, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(bits_to_ints(np.array([[0, 1, 1, 0], [1, 0, 0, 1]])), [6, 9])


@pytest.mark.parametrize("bits", [2, 8, 16, 64])
def test_addition_problems_add_up(bits):
    inputs, targets = addition_problems(500, bits, seed=0)
    assert inputs.shape == (500, bits, 2) and targets.shape == (500, bits, 1)
    a, b = bits_to_ints(inputs[..., 0]), bits_to_ints(inputs[..., 1])
    assert a.max() < 2 ** (bits - 1) and b.max() < 2 ** (bits - 1)
    # Python's unbounded integers are the oracle for the 64-bit sums.
    assert [int(x) + int(y) for x, y in zip(a, b, strict=True)] == list(
        map(int, bits_to_ints(targets))
    )


def test_addition_operands_are_uniform_by_default():
    inputs, _ = addition_problems(20_000, 4, seed=1)
    a = bits_to_ints(inputs[..., 0])
    counts = np.bincount(a.astype(int), minlength=8)
    assert counts.min() > 2200 and counts.max() < 2800  # 2,500 expected for each of 0..7


def test_addition_propagate_makes_long_carry_chains():
    inputs, _ = addition_problems(100, 8, seed=2, propagate=1.0)
    differ = inputs[:, :-1, 0] != inputs[:, :-1, 1]
    assert differ.all()
    assert not inputs[:, -1].any()  # the top bits stay 0 so the sum fits


@pytest.mark.parametrize("bits", [1, 0, 65, 2.5])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="`bits`"):
        addition_problems(10, bits)
