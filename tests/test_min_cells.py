"""minGRU and minLSTM: their equations, checked by hand, and their place among the layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import unfold_rnn
from unfold_rnn.min_cells import g

MINIMAL = [unfold_rnn.MinGRU, unfold_rnn.MinLSTM]
SCANS = ["parallel", "sequential"]

# One unit, one input feature, zero bias, x = 0, 1, -1 from h_0 = 0. sigmoid(1) = 0.7310586,
# sigmoid(-1) = 0.2689414, and the candidate reads 2x: g(0) = 0.5, g(2) = 2.5,
# g(-2) = sigmoid(-2) = 0.1192029.
GOLDEN = {
    # kernel [[w_z, w_h]] = [[1, 2]]: z = 0.5, 0.7310586, 0.2689414
    #   h_1 = 0.5 * 0 + 0.5 * 0.5                           = 0.25
    #   h_2 = 0.2689414 * 0.25 + 0.7310586 * 2.5            = 1.8948818
    #   h_3 = 0.7310586 * 1.8948818 + 0.2689414 * 0.1192029 = 1.4173282
    unfold_rnn.MinGRU: ([[1.0, 2.0]], [0.25, 1.8948818, 1.4173282]),
    # kernel [[w_f, w_i, w_h]] = [[1, -1, 2]]: f + i = 1 at every step here (sigmoid(-x) =
    # 1 - sigmoid(x)), so f' = f = 0.5, 0.7310586, 0.2689414 and i' = 1 - f'.
    #   h_1 = 0.5 * 0 + 0.5 * 0.5                           = 0.25
    #   h_2 = 0.7310586 * 0.25 + 0.2689414 * 2.5            = 0.8551182
    #   h_3 = 0.2689414 * 0.8551182 + 0.7310586 * 0.1192029 = 0.3171210
    unfold_rnn.MinLSTM: ([[1.0, -1.0, 2.0]], [0.25, 0.8551182, 0.3171210]),
}


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("layer_class", MINIMAL)
def test_three_steps_worked_out_by_hand(layer_class, scan):
    kernel, expected = GOLDEN[layer_class]
    layer = layer_class(1, return_sequences=True, scan=scan)
    layer.build((1, 3, 1))
    layer.set_weights([np.array(kernel, "float32"), np.zeros(len(kernel[0]), "float32")])
    outputs = layer(np.array([[[0.0], [1.0], [-1.0]]], "float32"))
    np.testing.assert_allclose(outputs[0, :, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 200.0])
def test_minlstm_normalises_its_gates_at_any_scale(scale):
    """f' = f / (f + i) against float64, also where both gates underflow float32 (k < -104)
    and where the plain quotient's gradient, i / (f + i)^2, overflows: finite, and equal."""
    k = np.random.default_rng(0).normal(size=(64, 3)) * scale
    k[:8, :2] = -np.abs(k[:8, :2]) - 120  # both gates far below float32's smallest number
    projected = tf.constant(k, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(projected)
        forget, _, _ = unfold_rnn.MinLSTMCell(1).coefficients(projected)
    gradient = tape.gradient(forget, projected).numpy()
    log_f, log_i = -np.logaddexp(0, -k[:, :1]), -np.logaddexp(0, -k[:, 1:2])  # float64
    expected = 1 / (1 + np.exp(log_i - log_f))
    np.testing.assert_allclose(forget.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert np.isfinite(gradient).all()


def test_g():
    x = tf.constant([-30.0, -2.0, -1e-3, 0.0, 1e-3, 2.0, 30.0])
    expected = [1 / (1 + np.exp(30.0)), 1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(1e-3))]
    expected += [0.5, 0.501, 2.5, 30.5]
    np.testing.assert_allclose(g(x), expected, rtol=1e-6)


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_gates_read_the_inputs_only(layer_class):
    """No recurrent kernel: the weights are W (input_dim, gates * units) and b alone."""
    layer = layer_class(5)
    layer.build((None, None, 3))
    gates = layer.cell.gates
    assert [tuple(w.shape) for w in layer.weights] == [(3, gates * 5), (gates * 5,)]
    assert [w.name for w in layer.weights] == ["kernel", "bias"]


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_the_scan_is_saved_with_the_layer(layer_class, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    model = keras.Sequential([keras.Input((None, 3)), layer_class(4, scan="sequential")])
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.layers[0].scan == "sequential"
    assert layer_class(4).get_config()["scan"] is None  # parallel where the length is known
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_bidirectional_and_stateful(layer_class):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    both = keras.layers.Bidirectional(layer_class(4, return_sequences=True))
    assert both(x).shape == (2, 6, 8)
    stateful = layer_class(4, stateful=True, return_sequences=True)
    whole = layer_class(4, return_sequences=True)
    whole.build(x.shape)
    stateful.build(x.shape)
    stateful.set_weights(whole.get_weights())
    halves = np.concatenate([stateful(x[:, :3]), stateful(x[:, 3:])], axis=1)
    np.testing.assert_allclose(halves, whole(x), atol=1e-6)


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_input_dropout_only_in_training(layer_class):
    x = np.ones((2, 5, 3), "float32")
    layer = layer_class(4, dropout=0.5, seed=1)
    np.testing.assert_array_equal(layer(x), layer(x))
    assert not np.allclose(layer(x, training=True), layer(x))


@pytest.mark.parametrize("layer_class", MINIMAL)
def test_mixed_bfloat16(layer_class):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 30, 3)).astype("float32")
    exact = layer_class(4, return_sequences=True)
    low = layer_class(4, return_sequences=True, dtype="mixed_bfloat16")
    exact.build(x.shape)
    low.build(x.shape)
    low.set_weights(exact.get_weights())
    out = low(x)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32), exact(x), atol=0.05)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        unfold_rnn.MinGRU(4, recurrent_dropout=0.1)
    with pytest.raises(ValueError, match=r"`scan` must be one of 'parallel', 'sequential'"):
        unfold_rnn.MinLSTM(4, scan="associative")
    with pytest.raises(ValueError, match="scan='parallel' needs a cell whose step is linear"):
        unfold_rnn.LSTM(4, scan="parallel")


def test_the_parallel_scan_asked_for_refuses_an_unknown_length():
    """Asked for, the parallel scan never quietly runs sequentially."""
    layer = unfold_rnn.MinGRU(4, scan="parallel")
    spec = tf.TensorSpec((2, None, 3), tf.float32)
    with pytest.raises(ValueError, match="needs the number of time steps when the layer is"):
        tf.function(layer).get_concrete_function(spec)
    unfolded = tf.function(unfold_rnn.MinGRU(4)).get_concrete_function(spec)  # the default
    assert unfolded.structured_outputs.shape.as_list() == [2, 4]
    with pytest.raises(ValueError, match="expects inputs of shape"):
        unfold_rnn.MinGRU(4)(np.zeros((3, 4), "float32"))
