"""The model builders and their metrics."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import unfold_rnn
from unfold_rnn import (
    BitsPerCharacter,
    InitialStateNoise,
    Perplexity,
    WholeSequenceAccuracy,
    build_binary_addition_model,
    build_language_model,
)
from unfold_rnn.data import addition_problems, bits_to_ints, text_data

CELLS = ["vanilla", "gru", "lstm"]
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


# -- metrics, against numbers worked out by hand -----------------------------------------------


def test_uniform_predictions_cost_log2_vocab_bits_and_perplexity_vocab():
    vocab = 8
    targets = np.array([[1, 5, 7]])
    logits = np.zeros((1, 3, vocab), "float32")  # every character equally likely
    bpc, perplexity = BitsPerCharacter(), Perplexity()
    bpc.update_state(targets, logits)
    perplexity.update_state(targets, logits)
    assert float(bpc.result()) == pytest.approx(3.0, abs=1e-6)  # log2(8)
    assert float(perplexity.result()) == pytest.approx(8.0, rel=1e-6)


def test_bits_per_char_is_the_mean_over_every_character():
    logits = np.log(np.array([[[0.5, 0.5], [0.9, 0.1]], [[0.25, 0.75], [0.5, 0.5]]], "float32"))
    targets = np.array([[0, 0], [1, 1]])
    # -log2 of the probabilities given to the targets: 1, 0.152003, 0.415037, 1
    expected = (1 + -math.log2(0.9) + -math.log2(0.75) + 1) / 4
    metric = BitsPerCharacter()
    metric.update_state(targets[:1], logits[:1])  # two batches, one row each
    metric.update_state(targets[1:], logits[1:])
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


def test_whole_sequence_accuracy():
    targets = np.array([[[1], [0], [1]], [[0], [0], [1]]], "float32")
    predicted = np.array([[[0.9], [0.2], [0.6]], [[0.1], [0.7], [0.9]]], "float32")
    metric = WholeSequenceAccuracy()
    metric.update_state(targets, predicted)  # first all right, second one bit wrong
    assert float(metric.result()) == 0.5


# -- the language model ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_language_model_builds_and_fits(cell):
    keras.utils.set_random_seed(0)
    data = text_data(TEXT, seq_len=20, batch_size=16, val_fraction=0.1)
    model = build_language_model(
        len(data.vocab), cell=cell, units=32, num_layers=2, embedding_dim=16, learning_rate=1e-2
    )
    history = model.fit(
        data.train,
        steps_per_epoch=15,
        epochs=2,
        validation_data=data.validation,
        shuffle=False,
        verbose=0,
    ).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["loss"][-1] < math.log(len(data.vocab))  # better than guessing
    for name in ("accuracy", "bits_per_char", "perplexity", "val_bits_per_char"):
        assert np.isfinite(history[name][-1])
    # The metrics agree with the loss they summarize (the loss averages per batch, the metrics
    # over every character, which here is the same).
    results = model.evaluate(data.validation, return_dict=True, verbose=0)
    assert results["bits_per_char"] == pytest.approx(results["loss"] / math.log(2), rel=1e-4)
    assert results["perplexity"] == pytest.approx(math.exp(results["loss"]), rel=1e-4)


def test_language_model_shapes_layers_and_any_length():
    model = build_language_model(30, cell="gru", units=8, num_layers=3, embedding_dim=4)
    recurrent = [layer for layer in model.layers if isinstance(layer, unfold_rnn.GRU)]
    assert len(recurrent) == 3 and all(layer.units == 8 for layer in recurrent)
    for length in (1, 17):
        assert model(np.zeros((2, length), "int32")).shape == (2, length, 30)


def test_language_model_dropout_and_builtin_layers():
    model = build_language_model(10, cell=keras.layers.LSTM, units=8, dropout=0.2)
    assert sum(isinstance(layer, keras.layers.LSTM) for layer in model.layers) == 2
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 3


def test_language_model_dropout_keeps_one_mask_per_sequence(tmp_path):
    model = build_language_model(10, units=8, embedding_dim=6, dropout=0.5)
    model.save(tmp_path / "lm.keras")
    loaded = keras.models.load_model(tmp_path / "lm.keras", safe_mode=True)
    for built in (model, loaded):
        for name, features in (("dropout_0", 6), ("dropout_1", 8), ("dropout_2", 8)):
            dropped = built.get_layer(name)(np.ones((16, 7, features), "float32"), training=True)
            dropped = np.asarray(dropped)
            # Every feature of a sequence is either dropped at all 7 steps or kept (scaled
            # by 1 / (1 - 0.5)) at all of them.
            np.testing.assert_array_equal(dropped, np.repeat(dropped[:, :1], 7, axis=1))
            assert set(np.unique(dropped)) == {0.0, 2.0}


@pytest.mark.slow
def test_language_model_saves_and_loads_with_its_metrics(tmp_path):
    model = build_language_model(12, units=8, embedding_dim=4)
    model.fit(np.ones((4, 5), "int32"), np.ones((4, 5), "int32"), verbose=0)
    model.save(tmp_path / "lm.keras")
    loaded = keras.models.load_model(tmp_path / "lm.keras", safe_mode=True)
    x = np.arange(10).reshape(2, 5) % 12
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.evaluate(x, x, return_dict=True, verbose=0)["bits_per_char"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "rnn"}, "Unknown cell 'rnn'; choose one of vanilla, gru, lstm"),
        ({"num_layers": 0}, "`num_layers` must be a positive"),
        ({"dropout": 1.0}, "`dropout`"),
        ({"vocab_size": 0}, "`vocab_size`"),
    ],
)
def test_language_model_bad_arguments(kwargs, message):
    kwargs = {"vocab_size": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_language_model(**kwargs)


# -- binary addition ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_addition_model_builds_fits_and_takes_any_length(cell):
    keras.utils.set_random_seed(0)
    model = build_binary_addition_model(cell, units=8)
    history = model.fit(*addition_problems(512, 8, seed=0), epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert {"bit_accuracy", "sum_accuracy"} <= set(history)
    for bits in (4, 8, 33):
        assert model.predict(np.zeros((3, bits, 2), "float32"), verbose=0).shape == (3, bits, 1)


@pytest.mark.slow
def test_vanilla_adder_learns_to_carry_and_generalizes_to_longer_sums():
    """The tutorials' classic: trained on 8-bit sums only, right on 32-bit sums too."""
    keras.utils.set_random_seed(0)
    model = build_binary_addition_model("vanilla", units=16)
    rng = np.random.default_rng(0)
    for _ in range(40):
        model.fit(*addition_problems(2048, 8, seed=rng), batch_size=32, verbose=0)
        x, y = addition_problems(500, 8, seed=1)
        if np.max(np.abs(model.predict(x, verbose=0) - y)) < 0.005:
            break
    for bits in (8, 32):
        x, y = addition_problems(500, bits, seed=2)
        right = bits_to_ints(model.predict(x, verbose=0)) == bits_to_ints(y)
        assert right.mean() >= 0.99, f"{bits} bits: {right.mean():.1%} of sums right"


def test_initial_state_noise_only_in_training():
    noise = InitialStateNoise([5, 5], stddevs=[0.0, 2.0], seed=1)
    sequences = np.zeros((4000, 3, 2), "float32")
    h0, c0 = (keras.ops.convert_to_numpy(s) for s in noise(sequences, training=True))
    assert not h0.any()
    assert abs(c0.mean()) < 0.05 and c0.std() == pytest.approx(2.0, rel=0.02)
    assert not any(np.any(s) for s in noise(sequences, training=False))
    (h0,) = InitialStateNoise([7], stddevs=[0.5])(sequences, training=True)
    assert h0.shape == (4000, 7) and np.std(h0) == pytest.approx(0.5, rel=0.02)
    with pytest.raises(ValueError, match="one standard deviation >= 0 per state"):
        InitialStateNoise([7], stddevs=[0.5, 2.0])


@pytest.mark.slow
def test_addition_model_saves_and_loads(tmp_path):
    model = build_binary_addition_model("lstm", units=4)
    model.fit(*addition_problems(8, 8, seed=1), verbose=0)
    model.save(tmp_path / "adder.keras")
    loaded = keras.models.load_model(tmp_path / "adder.keras", safe_mode=True)
    x, _ = addition_problems(5, 12, seed=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
