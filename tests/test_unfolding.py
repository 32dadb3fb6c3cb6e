"""The plan: which layers compile their hand-written passes with XLA, read off the traced
graph, and the same numbers either way."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

import unfold_rnn
from unfold_rnn import bptt, unfolding


def _traced_step(layer, x):
    """The layer's forward and backward pass, traced as `model.fit` traces them."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return y, tape.gradient(y, [x, *layer.trainable_weights])

    return step


def _compiled_calls(layer) -> int:
    """How many calls in the traced step are compiled by XLA (`_XlaMustCompile`)."""
    x = tf.zeros((2, 5, 3))
    graph = _traced_step(layer, x).get_concrete_function(x).graph
    calls = 0
    for op in graph.get_operations():
        with contextlib.suppress(ValueError):  # an op without the attribute
            calls += bool(op.get_attr("_XlaMustCompile"))
    return calls


@pytest.mark.parametrize(
    "layer, arguments, compiled",
    [
        (unfold_rnn.LSTM, {}, 2),  # both passes, by default
        (unfold_rnn.VanillaRNN, {}, 2),
        (unfold_rnn.GRU, {}, 0),  # TensorFlow's graph ran the GRU's faster
        (unfold_rnn.GRU, {"jit_compile": True}, 2),  # asked for: honoured
        (unfold_rnn.LSTM, {"jit_compile": False}, 0),
        (unfold_rnn.GRU, {"reset_after": False, "jit_compile": True}, 0),  # autodiff: no passes
    ],
)
def test_the_plan_compiles_the_passes_it_says(layer, arguments, compiled):
    assert _compiled_calls(layer(4, **arguments)) == compiled


@pytest.mark.parametrize("layer", [unfold_rnn.GRU, unfold_rnn.LSTM])
def test_compiled_or_not_the_numbers_are_the_same(layer, rng):
    x = tf.constant(rng.normal(size=(3, 7, 5)).astype("float32"))
    compiled, graph = layer(6, jit_compile=True), layer(6, jit_compile=False)
    compiled.build(x.shape)
    graph.build(x.shape)
    graph.set_weights(compiled.get_weights())
    (y1, g1), (y2, g2) = _traced_step(compiled, x)(x), _traced_step(graph, x)(x)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_default_is_kept_in_the_config():
    layer = unfold_rnn.GRU(4)
    assert layer.jit_compile is None
    assert unfold_rnn.GRU.from_config(layer.get_config()).jit_compile is None
    assert unfold_rnn.GRU.from_config(unfold_rnn.GRU(4, jit_compile=True).get_config()).jit_compile


@pytest.mark.parametrize(
    "steps, recompute, chunk",
    [
        (100, None, None),  # below 512 steps: kept whole
        (100, True, 10),
        (512, None, 32),  # sqrt 22.6: 16 and 32 = 512 / 16 are as near; the larger
        (1000, None, 40),  # sqrt 31.6: 25 and 40 the nearest pair; 20 and 50 farther
        (1000, False, None),
        (6, True, 3),  # sqrt 2.45: 2 and 3
        (509, None, None),  # prime: no chunk length, so none by default
        (None, None, None),  # unknown when traced
    ],
)
def test_chunk_length_is_the_divisor_nearest_the_square_root(steps, recompute, chunk):
    assert unfolding.chunk_length(steps, recompute) == chunk


@pytest.mark.parametrize(
    "steps, message", [(509, "no chunk length for 509 steps"), (None, "needs the number")]
)
def test_recompute_asked_for_where_it_cannot_be_is_refused(steps, message):
    with pytest.raises(ValueError, match=message):
        unfolding.chunk_length(steps, recompute=True)


def test_a_chunk_that_does_not_divide_the_steps_is_refused(rng):
    layer = unfold_rnn.LSTM(3)
    layer.build((2, 7, 4))
    x = tf.constant(rng.normal(size=(7, 2, 4)).astype("float32"))  # time-major
    states = layer.cell.get_initial_state(2)
    with pytest.raises(ValueError, match="chunk=3 must be a positive divisor"):
        bptt.unfold(layer.cell, x, states, chunk=3)
