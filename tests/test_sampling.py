"""Generation: stepping the cells must give the model's own predictions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from unfold_rnn import CharVocab, build_language_model
from unfold_rnn.sampling import CHUNK, Sampler, SamplingOptions, keep_top

VOCAB = CharVocab.from_text("abcdefgh \n")


CELLS = ["vanilla", "gru", "lstm", "mingru", "minlstm", keras.layers.LSTM]


@pytest.fixture(scope="module", params=CELLS)
def sampler(request):
    keras.utils.set_random_seed(0)
    model = build_language_model(len(VOCAB), cell=request.param, units=12, embedding_dim=6)
    return Sampler(model, VOCAB), model


def test_stepping_equals_the_model_over_the_whole_sequence(sampler):
    """Teacher forcing through `step` gives, at every position, the logits the model
    computes with one scan over the sequence."""
    stepper, model = sampler
    ids = VOCAB.encode("abba cafe\nhead")
    expected = model(ids[None])[0]  # (T, V)
    states = stepper.initial_states(1)
    for t, char_id in enumerate(ids):
        logits, states = stepper.step(np.array([char_id]), states)
        np.testing.assert_allclose(logits[0], expected[t], atol=1e-5)


def test_greedy_follows_the_most_likely_character(sampler):
    """The slow oracle: re-run the whole model on the growing text, take the argmax."""
    stepper, model = sampler
    text = "bad"
    for _ in range(8):
        logits = model(VOCAB.encode(text)[None])[0, -1]
        text += VOCAB.chars[int(np.argmax(logits))]
    assert stepper.generate("bad", length=8, greedy=True)[0] == text[3:]


def test_sampling_is_reproducible_with_a_seed_and_batched(sampler):
    stepper, _ = sampler
    first = stepper.generate("a", length=30, seed=7, num_samples=3)
    assert first == stepper.generate("a", length=30, seed=7, num_samples=3)
    assert first != stepper.generate("a", length=30, seed=8, num_samples=3)
    assert len(first) == 3 and all(len(s) == 30 and set(s) <= set(VOCAB.chars) for s in first)
    assert len(set(first)) > 1  # the samples in a batch are drawn independently


def test_a_shorter_sample_starts_a_longer_one_across_chunks(sampler):
    """Draws are keyed by position, so chunking the generation changes nothing."""
    stepper, _ = sampler
    longer = stepper.generate("ab", length=CHUNK + 40, seed=5, num_samples=2)
    shorter = stepper.generate("ab", length=CHUNK - 3, seed=5, num_samples=2)
    assert [s[: CHUNK - 3] for s in longer] == shorter
    assert all(len(s) == CHUNK + 40 for s in longer)


def test_equal_options_compile_once(sampler):
    """Options are keyed by value, and the temperature is an argument of the compiled loop:
    later calls with equal options, at any temperature, reuse the compiled loop instead of
    tracing and compiling it again."""
    stepper, _ = sampler
    stepper.generate("a", length=3, temperature=0.7, top_k=3, seed=1)
    stepper.generate("b", length=9, temperature=0.7, top_k=3, seed=2)
    stepper.generate("b", length=9, temperature=1.3, top_k=3, seed=2)
    compiled = stepper._advance[SamplingOptions(top_k=3)]
    assert compiled.experimental_get_tracing_count() == 1


@pytest.mark.slow
def test_top_k_of_one_and_tiny_top_p_are_greedy(sampler):
    stepper, _ = sampler
    greedy = stepper.generate("hea", length=12, greedy=True)
    assert stepper.generate("hea", length=12, top_k=1, seed=3) == greedy
    assert stepper.generate("hea", length=12, top_p=1e-6, seed=3) == greedy


def test_keep_top_by_hand():
    probs = np.array([[0.5, 0.05, 0.3, 0.15]])
    logits = tf.constant(np.log(probs), tf.float32)
    top2 = keep_top(logits, SamplingOptions(top_k=2)).numpy()
    np.testing.assert_array_equal(np.isfinite(top2), [[True, False, True, False]])
    # Nucleus 0.75: 0.5 alone is short of it, 0.5 + 0.3 reaches it; the rest are dropped.
    nucleus = keep_top(logits, SamplingOptions(top_p=0.75)).numpy()
    np.testing.assert_array_equal(np.isfinite(nucleus), [[True, False, True, False]])
    everything = keep_top(logits, SamplingOptions(top_p=1.0)).numpy()
    np.testing.assert_allclose(everything, np.log(probs), rtol=1e-6)


@pytest.mark.slow
def test_temperature_shapes_the_distribution():
    """Draws follow softmax(logits / T): checked by counting many draws of one step."""
    keras.utils.set_random_seed(0)
    model = build_language_model(len(VOCAB), units=4, embedding_dim=2)
    stepper = Sampler(model, VOCAB)
    logits, _ = stepper.step(np.zeros(4000, np.int32), stepper.initial_states(4000))
    for temperature in (0.5, 2.0):
        expected = tf.nn.softmax(logits[0] / temperature).numpy()
        counts = np.zeros(len(VOCAB))
        for seed in range(3):
            draws = stepper.generate(
                "a", length=1, temperature=temperature, seed=seed, num_samples=4000
            )
            for char in draws:
                counts[VOCAB.chars.index(char)] += 1
        np.testing.assert_allclose(counts / counts.sum(), expected, atol=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"top_k": 11}, "top-k must be between 1 and the vocabulary size, 10"),
        ({"top_k": 0}, "top-k"),
        ({"top_p": 0.0}, r"top-p must be in \(0, 1\]"),
        ({"top_p": 1.5}, "top-p"),
        ({"prime": "xyz"}, "does not know"),
        ({"prime": ""}, "at least one character"),
        ({"length": -1}, "length must be >= 0"),
        ({"num_samples": 0}, "number of samples"),
    ],
)
def test_bad_sampling_arguments(sampler, kwargs, message):
    stepper, _ = sampler
    kwargs = {"prime": "a", "length": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        stepper.generate(**kwargs)


def test_model_and_vocab_must_belong_together():
    model = build_language_model(5, units=4, embedding_dim=2)
    with pytest.raises(ValueError, match="predicts 5 characters but the vocabulary has 10"):
        Sampler(model, VOCAB)
