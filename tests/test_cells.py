"""The cells: one step's maths, checked by hand and against Keras's cells."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import KINDS, randomize_weights

import unfold_rnn

# Golden numbers worked out by hand (plain scalar arithmetic, see the derivation in each
# test) for one unit, one input feature, W = 0.5, U = 0.25, every bias 0.1, x = [1, -2].
X = np.array([[[1.0], [-2.0]]], dtype="float32")  # (B=1, T=2, D=1)
CONSTANTS = {
    "kernel_initializer": keras.initializers.Constant(0.5),
    "recurrent_initializer": keras.initializers.Constant(0.25),
    "bias_initializer": keras.initializers.Constant(0.1),
}


def _sequence(layer: keras.layers.Layer) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(X)).ravel()


def test_vanilla_golden_numbers():
    # h1 = tanh(0.5·1 + 0.1) = tanh(0.6);  h2 = tanh(0.5·(-2) + 0.25·h1 + 0.1)
    layer = unfold_rnn.VanillaRNN(1, return_sequences=True, **CONSTANTS)
    np.testing.assert_allclose(_sequence(layer), [0.537049567, -0.644444107], atol=1e-6)


def test_lstm_golden_numbers():
    # Every gate sees z = 0.5·x + 0.25·h + 0.1, so i = f = o = σ(z), c~ = tanh(z):
    # c1 = σ(0.6)·tanh(0.6) = 0.346749440, h1 = σ(0.6)·tanh(c1);
    # z2 = -1 + 0.25·h1 + 0.1, c2 = σ(z2)·c1 + σ(z2)·tanh(z2), h2 = σ(z2)·tanh(c2).
    layer = unfold_rnn.LSTM(1, return_sequences=True, unit_forget_bias=False, **CONSTANTS)
    np.testing.assert_allclose(_sequence(layer), [0.215319686, -0.030748736], atol=1e-6)
    _, _, c = unfold_rnn.LSTM(1, return_state=True, unit_forget_bias=False, **CONSTANTS)(X)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c).ravel(), [-0.102775257], atol=1e-6)


def test_gru_golden_numbers_reset_after():
    # Input part a = 0.5·x + 0.1, recurrent part q = 0.25·h + 0.1 (both biases are 0.1):
    # z = r = σ(a + q), h~ = tanh(a + r·q), h = z·h_prev + (1 - z)·h~.
    layer = unfold_rnn.GRU(1, return_sequences=True, reset_after=True, **CONSTANTS)
    np.testing.assert_allclose(_sequence(layer), [0.193407834, -0.408499235], atol=1e-6)


def test_gru_golden_numbers_reset_before():
    # a = 0.5·x + 0.1; z = r = σ(a + 0.25·h), h~ = tanh(a + 0.25·(r·h)), h = z·h + (1-z)·h~.
    layer = unfold_rnn.GRU(1, return_sequences=True, reset_after=False, **CONSTANTS)
    np.testing.assert_allclose(_sequence(layer), [0.190300127, -0.440389288], atol=1e-6)


def test_weights_have_keras_names_shapes_and_order(kind):
    ours, theirs = kind.pair(5)
    x = np.zeros((2, 3, 4), "float32")
    ours(x), theirs(x)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert [w.name for w in ours.weights] == ["kernel", "recurrent_kernel", "bias"]


def test_lstm_unit_forget_bias_sets_the_forget_block_to_one():
    cell = unfold_rnn.LSTMCell(3, bias_initializer="zeros")
    cell.build((None, 2))
    expected = np.concatenate([np.zeros(3), np.ones(3), np.zeros(6)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(cell.bias), expected)


def test_cell_runs_in_keras_rnn_and_matches_the_keras_cell(kind, rng):
    """Our cell honours the Keras cell contract: keras.layers.RNN can drive it."""
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    ours = keras.layers.RNN(kind.ours_cell(5, **kind.kwargs), return_sequences=True)
    theirs = keras.layers.RNN(kind.theirs_cell(5, **kind.kwargs), return_sequences=True)
    ours(x), theirs(x)
    ours.set_weights(randomize_weights(theirs, rng))
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


def test_initial_state_and_sizes(kind):
    cell = kind.ours_cell(7, **kind.kwargs)
    states = cell.get_initial_state(batch_size=2)
    assert len(states) == kind.num_states
    assert all(s.shape == (2, 7) and not np.any(s) for s in states)
    assert cell.output_size == 7


def test_cell_call_returns_output_and_new_states(kind, rng):
    cell = kind.ours_cell(4, **kind.kwargs)
    states = [tf.constant(rng.normal(size=(2, 4)), tf.float32) for _ in range(kind.num_states)]
    output, new_states = cell(tf.ones((2, 3)), states)
    assert len(new_states) == kind.num_states
    np.testing.assert_array_equal(output, new_states[0])  # the output is h_t


def test_project_then_step_is_one_call(kind, rng):
    """The split used by the unfolding layer equals the plain cell call."""
    cell = kind.ours_cell(4, **kind.kwargs)
    x = tf.constant(rng.normal(size=(2, 3)), tf.float32)
    states = [tf.constant(rng.normal(size=(2, 4)), tf.float32) for _ in range(kind.num_states)]
    _, expected = cell(x, states)
    got = cell.step(cell.project_inputs(x), tuple(states))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)


def test_cell_dropout_only_in_training(kind):
    cell = kind.ours_cell(4, dropout=0.5, recurrent_dropout=0.5, seed=3, **kind.kwargs)
    x = tf.ones((8, 3))
    states = [tf.ones((8, 4)) for _ in range(kind.num_states)]
    eval_a, _ = cell(x, states, training=False)
    eval_b, _ = cell(x, states)
    train, _ = cell(x, states, training=True)
    np.testing.assert_array_equal(eval_a, eval_b)
    assert not np.allclose(train, eval_a)


@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True])
def test_bad_units(units):
    with pytest.raises(ValueError, match="`units` must be a positive whole number"):
        unfold_rnn.LSTMCell(units)


@pytest.mark.parametrize("arg", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_bad_dropout(arg, value):
    with pytest.raises(ValueError, match=rf"`{arg}` .* must be in \[0, 1\)"):
        unfold_rnn.GRUCell(4, **{arg: value})


@pytest.mark.parametrize("name", list(KINDS))
def test_cell_config_round_trip(name):
    kind = KINDS[name]
    cell = kind.ours_cell(
        6, dropout=0.25, seed=5, kernel_regularizer="l2", bias_constraint="non_neg", **kind.kwargs
    )
    clone = type(cell).from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()


@pytest.mark.parametrize(
    ("name", "gate_blocks"),
    [
        ("vanilla", {}),
        ("gru", {"update": 0, "reset": 1}),
        ("lstm", {"input": 0, "forget": 1, "output": 3}),
    ],
)
def test_step_with_gates_reports_the_sigmoid_gates(name, gate_blocks, rng):
    """Each gate is sigmoid(x W_g + h U_g + b_g), checked with numpy from the weights."""
    kind = KINDS[name]
    cell = kind.ours_cell(4, **kind.kwargs)
    x = rng.normal(size=(2, 3)).astype("float32")
    states = tuple(tf.constant(rng.normal(size=(2, 4)), tf.float32) for _ in range(kind.num_states))
    cell(x, list(states))  # build
    new_states, gates = cell.step_with_gates(cell.project_inputs(x), states)
    assert set(gates) == set(gate_blocks)
    kernel, recurrent, bias = (keras.ops.convert_to_numpy(w) for w in cell.weights)
    bias = bias.sum(axis=0) if bias.ndim == 2 else bias  # GRU reset_after: both biases
    z = x @ kernel + keras.ops.convert_to_numpy(states[0]) @ recurrent + bias
    for gate, block in gate_blocks.items():
        expected = 1 / (1 + np.exp(-z[:, 4 * block : 4 * (block + 1)]))
        np.testing.assert_allclose(gates[gate], expected, atol=1e-5)
    np.testing.assert_allclose(new_states[0], cell.step(cell.project_inputs(x), states)[0])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_vanilla_output_slope_is_the_activations_derivative(activation, rng):
    """act'(z) from h = act(z) alone, against TensorFlow's derivative of act at z."""
    slope = unfold_rnn.VanillaCell(3, activation=activation).fast_path().slope
    z = tf.constant(rng.normal(scale=2.0, size=(4, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(z)
        h = keras.activations.get(activation)(z)
    np.testing.assert_allclose(slope(h), tape.gradient(h, z), atol=1e-6)


@pytest.mark.parametrize(
    "cell",
    [
        unfold_rnn.VanillaCell(3, activation="softsign"),
        unfold_rnn.VanillaCell(3, activation=lambda z: z * tf.sigmoid(z)),
        unfold_rnn.GRUCell(3),
        unfold_rnn.LSTMCell(3),
    ],
    ids=["softsign", "custom", "gru", "lstm"],
)
def test_no_output_slope_where_the_output_does_not_decide_it(cell):
    assert cell.fast_path().slope is None


@pytest.mark.parametrize("activation", ["tanh", "relu"])  # relu: the block-by-block form
def test_the_one_pass_lstm_cell_equals_the_readable_one(activation, rng):
    """OnePassLSTMCell, which the LSTM layer runs, against LSTMCell with the same weights:
    the same states, gates and gradients."""
    cells = [
        cls(3, activation=activation) for cls in (unfold_rnn.LSTMCell, unfold_rnn.OnePassLSTMCell)
    ]
    x = tf.constant(rng.normal(size=(4, 2)).astype("float32"))
    states = [tf.constant(rng.normal(size=(4, 3)).astype("float32")) for _ in range(2)]
    for cell in cells:
        cell.build((4, 2))
    cells[1].set_weights([rng.normal(size=w.shape).astype("float32") for w in cells[0].weights])
    cells[0].set_weights(cells[1].get_weights())
    results = []
    for cell in cells:
        with tf.GradientTape() as tape:
            tape.watch(x)
            new_states, gates = cell.step_with_gates(cell.project_inputs(x), tuple(states))
            loss = tf.reduce_sum(new_states[0] * tf.sin(new_states[1]))
        results.append([*new_states, *gates.values(), *tape.gradient(loss, [x, *cell.weights])])
    for ours, readable in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, readable, atol=1e-6)
    assert isinstance(unfold_rnn.LSTM(3).cell, unfold_rnn.OnePassLSTMCell)
