"""The parallel scan against the sequential `tf.scan`, the same cell both ways."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import unfold_rnn

MINIMAL = [unfold_rnn.MinGRU, unfold_rnn.MinLSTM]


def _run(layer, x, mask=None, initial_state=None):
    """Outputs, final state and the gradients of a loss that weighs every output."""
    x = tf.convert_to_tensor(x)
    watched = [x] + ([] if initial_state is None else [tf.constant(initial_state)])
    with tf.GradientTape() as tape:
        tape.watch(watched)
        out, final = layer(x, mask=mask, initial_state=watched[1:] or None)
        loss = tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(final**2)
    return [out, final, *tape.gradient(loss, watched + layer.trainable_weights)]


def _twins(layer_class, input_dim, **kwargs):
    parallel = layer_class(5, return_sequences=True, return_state=True, **kwargs)
    sequential = layer_class(
        5, return_sequences=True, return_state=True, scan="sequential", **kwargs
    )
    for layer in (parallel, sequential):
        layer.build((None, None, input_dim))
    sequential.set_weights(parallel.get_weights())
    return parallel, sequential


def _assert_close_relative(a, b, rtol=1e-5):
    """Within rtol of the largest entry of each tensor."""
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.abs(x - y).max() <= rtol * np.abs(x).max(), np.abs(x - y).max()


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("layer_class", MINIMAL)
def test_parallel_equals_sequential(layer_class, go_backwards, masked, with_initial_state):
    rng = np.random.default_rng(0)
    x = (2 * rng.normal(size=(3, 40, 4))).astype("float32")
    mask = rng.random((3, 40)) > 0.3 if masked else None
    h0 = rng.normal(size=(3, 5)).astype("float32") if with_initial_state else None
    parallel, sequential = _twins(layer_class, 4, go_backwards=go_backwards)
    _assert_close_relative(_run(parallel, x, mask, h0), _run(sequential, x, mask, h0))


@pytest.mark.parametrize("batch, steps", [(3, 25), (None, 25), (3, None)])
@pytest.mark.parametrize("layer_class", MINIMAL)
def test_traced_and_compiled_equals_sequential(layer_class, batch, steps):
    """In a graph, as `model.fit` runs it, for any batch size; with the number of steps
    unknown when traced, the layer unfolds sequentially. Same numbers."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 25, 4)).astype("float32")
    mask = rng.random((3, 25)) > 0.3
    parallel, sequential = _twins(layer_class, 4)
    spec = tf.TensorSpec((batch, steps, 4), tf.float32)
    mask_spec = tf.TensorSpec((batch, steps), tf.bool)
    traced = tf.function(lambda x, m: _run(parallel, x, m), input_signature=[spec, mask_spec])
    _assert_close_relative(traced(x, mask), _run(sequential, x, mask))


@pytest.mark.slow
@pytest.mark.parametrize("layer_class", MINIMAL)
def test_long_sequences_keep_their_digits(layer_class):
    """Over 1,000 steps of strongly gated inputs, in float32, the parallel scan agrees with
    the step-by-step loop run in float64."""
    rng = np.random.default_rng(1)
    x = (4 * rng.normal(size=(2, 1000, 3))).astype("float32")
    parallel, _ = _twins(layer_class, 3)
    reference = layer_class(
        5, return_sequences=True, return_state=True, scan="sequential", dtype="float64"
    )
    reference.build((None, None, 3))
    reference.set_weights(parallel.get_weights())
    _assert_close_relative(_run(reference, x.astype("float64")), _run(parallel, x))


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_four_thousand_steps_stay_finite(layer_class):
    rng = np.random.default_rng(2)
    x = (10 * rng.normal(size=(2, 4000, 3))).astype("float32")
    mask = rng.random((2, 4000)) > 0.5
    parallel, _ = _twins(layer_class, 3)
    for result in _run(parallel, x, mask, rng.normal(size=(2, 5)).astype("float32")):
        assert np.isfinite(result).all()


def _memory_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def test_fit_again_and_again_compiles_nothing_new():
    """Each `fit` of an XLA-compiled model must reuse what the first compiled: the layer's
    own XLA program of the scan, once, added about 1,200 memory mappings per `fit`, and a
    20-minute run ran out of them."""
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(65, 16),
            unfold_rnn.MinGRU(32, return_sequences=True),
            keras.layers.Dense(65),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss, jit_compile=True)
    ids = np.random.default_rng(4).integers(0, 65, (64, 51)).astype("int32")
    counts = []
    for _ in range(3):
        model.fit(ids[:, :-1], ids[:, 1:], batch_size=16, epochs=1, verbose=0)
        counts.append(_memory_mappings())
    assert counts[2] - counts[1] < 100, counts
