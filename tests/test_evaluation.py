"""A language model's loss on a text: in windows from zero states, and as streams.

The oracle for streams: the model itself run over each whole part as one sequence (one call,
one scan from zero states), which is what carrying the states from window to window must
reproduce, whatever the window length."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from unfold_rnn import build_language_model
from unfold_rnn.evaluation import StreamReader, stream_loss, window_loss

VOCAB_SIZE = 9


def _cross_entropy(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean nats/char of the model's own predictions, each row read whole from zero states."""
    logits = model(inputs, training=False)
    loss = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    return float(np.mean(loss))


@pytest.fixture(scope="module", params=["vanilla", "gru", "lstm", keras.layers.LSTM])
def model(request):
    keras.utils.set_random_seed(1)
    model = build_language_model(
        VOCAB_SIZE, request.param, units=12, num_layers=2, embedding_dim=5, dropout=0.3
    )
    # Weights large enough that the predictions depend on the states (freshly initialised,
    # the model predicts nearly the same everywhere, and carrying states would not show), and
    # small enough that the Vanilla RNN is not chaotic (then float rounding would show).
    scale = {"vanilla": 0.4, "gru": 0.5}.get(request.param, 0.7)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=scale, size=w.shape) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, VOCAB_SIZE, 403).astype(np.int32)


@pytest.mark.slow
def test_one_stream_is_the_whole_text_read_as_one_sequence(model, ids):
    # 402 characters to predict: windows of 100, 100, 100, 100 and a last one of 2.
    expected = _cross_entropy(model, ids[None, :-1], ids[None, 1:])
    assert stream_loss(model, ids, streams=1, window=100) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("window", [1, 7, 1000])
def test_streams_are_the_parts_each_read_whole(model, ids, window):
    """4 parts of 100 characters (the last 2 left out to make them equal); each part's
    states carry across windows of any length, as if the part were read in one call."""
    used = ids[: 4 * 100 + 1]
    inputs, targets = used[:-1].reshape(4, 100), used[1:].reshape(4, 100)
    expected = _cross_entropy(model, inputs, targets)
    assert stream_loss(model, ids, streams=4, window=window) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_streams_differ_from_windows_read_from_zero_states(model, ids):
    """The oracle for windows: 4 windows of 100, each its own row from zero states."""
    inputs, targets = ids[:400].reshape(4, 100), ids[1:401].reshape(4, 100)
    windows = window_loss(model, ids, seq_len=100, batch_size=3)
    assert windows == pytest.approx(_cross_entropy(model, inputs, targets), rel=1e-5)
    # Read as one stream, windows 2-4 start from the states the one before left.
    streamed = stream_loss(model, ids[:401], streams=1, window=100)
    assert abs(streamed - windows) > 1e-3  # float error here: ~1e-6


@pytest.mark.slow
def test_a_reader_follows_the_models_weights(ids):
    keras.utils.set_random_seed(2)
    model = build_language_model(VOCAB_SIZE, "gru", units=8, num_layers=1, embedding_dim=4)
    reader = StreamReader(model)
    before = reader.loss(ids, streams=2, window=50)
    model.fit(ids[None, :-1], ids[None, 1:], epochs=5, verbose=0)
    after = reader.loss(ids, streams=2, window=50)
    assert after == pytest.approx(stream_loss(model, ids, streams=2, window=50), rel=1e-6)
    assert after < before


def test_more_streams_than_characters_reads_one_per_character(model):
    ids = np.array([1, 2, 3], np.int32)
    expected = _cross_entropy(model, ids[:-1, None], ids[1:, None])  # two streams of one
    assert stream_loss(model, ids, streams=16) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "ids, streams, message",
    [
        ([3], 16, "at least 2 character ids; got 1"),
        (np.zeros((2, 5), np.int32), 16, "shape (2, 5)"),
        ([1, 2, 3], 0, "streams and window must be >= 1"),
    ],
)
def test_bad_input_is_named(model, ids, streams, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stream_loss(model, ids, streams=streams)


def test_a_model_that_is_not_one_chain_is_refused(ids):
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(VOCAB_SIZE, 4)(inputs)
    h = keras.layers.LSTM(6, return_sequences=True)(embedded)
    both = keras.layers.Concatenate()([embedded, h])  # a skip connection around the LSTM
    model = keras.Model(inputs, keras.layers.Dense(VOCAB_SIZE)(both))
    with pytest.raises(ValueError, match="not one chain"):
        stream_loss(model, ids)


def test_a_model_without_recurrent_layers_is_refused():
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Embedding(VOCAB_SIZE, VOCAB_SIZE)(inputs))
    with pytest.raises(ValueError, match="no recurrent layers"):
        StreamReader(model)
