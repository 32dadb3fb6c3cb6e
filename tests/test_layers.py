"""The unfolding layer: parity with Keras's built-in layers (the oracle), the hand-written
backward pass against autodiff through the reference scan, the scan against a plain Python
loop over the cell, and everything a Keras user does with a recurrent layer."""

from __future__ import annotations

import itertools
import os
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import KINDS, randomize_weights

import unfold_rnn
from unfold_rnn.contract import Combine, LinearInH, OneMatmulStep

B, T, D, UNITS = 4, 6, 3, 5
# One row per masking pattern: gaps after leading masked steps, all kept, trailing padding,
# all masked.
MASK = np.array(
    [
        [False, False, True, True, False, True],
        [True] * T,
        [True, True, True, False, False, False],
        [False] * T,
    ]
)


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _probe(o: tf.Tensor) -> tf.Tensor:
    """A fixed, asymmetric weighting, so the scalar loss sees every output element."""
    return tf.reshape(tf.sin(1.0 + tf.range(tf.size(o), dtype=o.dtype)), tf.shape(o))


def _outputs_and_gradients(layer, x, mask=None, initial_state=None, training=False):
    """The layer's outputs, and the gradients of a fixed projection of them with respect to
    the inputs, the initial states and every weight. `x` may be an array or a tensor (a
    traced function's argument)."""
    x = tf.convert_to_tensor(x)
    states = None if initial_state is None else [tf.constant(s) for s in initial_state]
    with tf.GradientTape() as tape:
        tape.watch(x)
        if states is not None:
            tape.watch(states)
        outputs = _as_list(layer(x, mask=mask, initial_state=states, training=training))
        loss = tf.add_n([tf.reduce_sum(o * _probe(o)) for o in outputs])
    sources = [x, *(states or []), *layer.trainable_weights]
    return outputs, tape.gradient(loss, sources)


def _traced_outputs_and_gradients(layer, x, mask=None, initial_state=None):
    """`_outputs_and_gradients` traced by tf.function, as model.fit runs it (our layers then
    run their XLA-compiled loop)."""
    return tf.function(lambda: _outputs_and_gradients(layer, x, mask, initial_state))()


def _assert_all_close(ours, theirs, atol=1e-5):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-5)


def _built_pair(kind, rng, backward=None, **kwargs):
    """Our layer (with `backward`; by default, the fastest exact one the cell offers) and
    Keras's, built, with the same random weights."""
    ours = kind.ours(UNITS, backward=backward, **kind.kwargs, **kwargs)
    theirs = kind.theirs(UNITS, **kind.kwargs, **kwargs)
    x = np.zeros((B, T, D), "float32")
    ours(x), theirs(x)
    ours.set_weights(randomize_weights(theirs, rng))
    return ours, theirs


def _initial_state(kind, rng):
    return [rng.normal(size=(B, UNITS)).astype("float32") for _ in range(kind.num_states)]


def _pairwise(factors: dict[str, list]) -> list[dict]:
    """Cases that put every value of each factor beside every value of each other factor at
    least once, in far fewer cases than the full grid. Factor i takes value 1 in the rows
    where the i-th 3-of-5 subset has its ones (row 0 is all zeros): any two distinct such
    columns hold 00, 01, 10 and 11 somewhere. Two values a factor, up to ten factors."""
    columns = [(0, *c) for c in itertools.product([0, 1], repeat=5) if sum(c) == 3]
    names = list(factors)
    cases = [
        {n: factors[n][col[row]] for n, col in zip(names, columns[: len(names)], strict=True)}
        for row in range(6)
    ]
    for a, b in itertools.combinations(names, 2):
        assert {(c[a], c[b]) for c in cases} == set(itertools.product(factors[a], factors[b]))
    return cases


PARITY_CASES = _pairwise(
    {
        "return_sequences": [False, True],
        "return_state": [False, True],
        "go_backwards": [False, True],
        "masked": [False, True],
        "with_initial_state": [False, True],
        "backward": [None, "autodiff"],  # None: the hand-written pass where the cell has one
        "traced": [False, True],
    }
)


# -- parity with Keras's built-in layers ----------------------------------------------------


@pytest.mark.parametrize(
    "case",
    PARITY_CASES,
    ids=lambda c: "-".join(
        str(int(v)) if isinstance(v, bool) else (v or "fast")[:4] for v in c.values()
    ),
)
def test_matches_keras_outputs_states_and_gradients(kind, rng, case):
    """Outputs, final states and the gradients of x, the initial states and every weight,
    against Keras's layer run eagerly, over a pairwise grid of the layer's options, eager and
    traced (as `model.fit` runs it, the passes compiled)."""
    ours, theirs = _built_pair(
        kind,
        rng,
        return_sequences=case["return_sequences"],
        return_state=case["return_state"],
        go_backwards=case["go_backwards"],
        backward=case["backward"],
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = tf.constant(MASK) if case["masked"] else None
    state = _initial_state(kind, rng) if case["with_initial_state"] else None
    run = _traced_outputs_and_gradients if case["traced"] else _outputs_and_gradients
    out_ours, grads_ours = run(ours, x, mask, state)
    out_theirs, grads_theirs = _outputs_and_gradients(theirs, x, mask, state)
    assert len(out_ours) == 1 + (kind.num_states if case["return_state"] else 0)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


@pytest.mark.slow
def test_long_sequences_match_keras(kind, rng):
    """250 steps, masked, backwards and from given states, traced: outputs, final states and
    gradients match Keras's layer."""
    steps = 250
    ours, theirs = kind.pair(UNITS, return_sequences=True, return_state=True, go_backwards=True)
    x = rng.normal(size=(2, steps, D)).astype("float32")
    ours(x), theirs(x)
    ours.set_weights(randomize_weights(theirs, rng))
    mask = tf.constant(rng.random((2, steps)) < 0.8)
    state = [rng.normal(size=(2, UNITS)).astype("float32") for _ in range(kind.num_states)]
    out_ours, grads_ours = _traced_outputs_and_gradients(ours, x, mask, state)
    out_theirs, grads_theirs = _outputs_and_gradients(theirs, x, mask, state)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


@pytest.mark.slow
def test_steps_unknown_when_traced_match_keras(kind, rng):
    """Traced once for sequences of any length, the layer matches Keras at 250 steps and 7."""
    ours, theirs = kind.pair(UNITS, return_sequences=True)
    ours.build((None, None, D)), theirs.build((None, None, D))
    ours.set_weights(randomize_weights(theirs, rng))
    spec = tf.TensorSpec([None, None, D], tf.float32)
    traced = tf.function(lambda x: _outputs_and_gradients(ours, x), input_signature=[spec])
    for steps in (250, 7):
        x = rng.normal(size=(2, steps, D)).astype("float32")
        out_ours, grads_ours = traced(x)
        out_theirs, grads_theirs = _outputs_and_gradients(theirs, x)
        _assert_all_close(out_ours, out_theirs)
        _assert_all_close(grads_ours, grads_theirs)


# (activation, recurrent_activation): other than the defaults, and for the LSTM one pair that
# its one-pass gates take (both slopes bounded) and one that takes the gates block by block.
OTHER_ACTIVATIONS = [("softsign", "hard_sigmoid"), ("relu", "sigmoid")]


@pytest.mark.slow
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_matches_keras_inside_one_xla_program(kind, rng, go_backwards, masked, with_initial_state):
    """Traced into one XLA program, as a `fit` with jit_compile=True runs it, against Keras's
    layer run eagerly."""
    kwargs = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    ours, theirs = _built_pair(kind, rng, **kwargs)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = tf.constant(MASK) if masked else None
    state = _initial_state(kind, rng) if with_initial_state else None
    run = tf.function(lambda: _outputs_and_gradients(ours, x, mask, state), jit_compile=True)
    out_ours, grads_ours = run()
    out_theirs, grads_theirs = _outputs_and_gradients(theirs, x, mask, state)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


@pytest.mark.slow
@pytest.mark.parametrize("activations", OTHER_ACTIVATIONS, ids="-".join)
def test_matches_keras_with_other_activations(kind, rng, activations):
    activation, recurrent_activation = activations
    kwargs = {"activation": activation, "return_sequences": True}
    if kind.name != "vanilla":
        kwargs["recurrent_activation"] = recurrent_activation
    ours, theirs = _built_pair(kind, rng, **kwargs)
    x = rng.normal(size=(B, T, D)).astype("float32")
    out_ours, grads_ours = _traced_outputs_and_gradients(ours, x)
    out_theirs, grads_theirs = _outputs_and_gradients(theirs, x)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


def test_lstm_gradients_stay_finite_when_an_unkept_activation_overflows():
    """With the candidate's activation `exponential`, exp(z) of the gate blocks overflows
    (z > 88) though only the candidate block keeps it; the gradients must stay finite (a
    one-pass `where` over both activations would make them 0 * inf = NaN)."""
    layer = unfold_rnn.LSTM(UNITS, activation="exponential", return_sequences=True)
    x = np.ones((B, T, D), "float32")
    layer(x)
    kernel = np.zeros((D, 4 * UNITS), "float32")
    kernel[:, :UNITS] = kernel[:, UNITS : 2 * UNITS] = kernel[:, 3 * UNITS :] = 40.0  # z = 120
    layer.set_weights([kernel, np.zeros((UNITS, 4 * UNITS), "float32"), layer.get_weights()[2]])
    outputs, grads = _traced_outputs_and_gradients(layer, x)
    assert np.isfinite(outputs[0]).all()
    for g in grads:
        assert np.isfinite(g).all()


@pytest.mark.parametrize("return_sequences", [False, True])
def test_matches_keras_with_zero_output_for_mask(kind, rng, return_sequences):
    ours, theirs = _built_pair(
        kind, rng, return_sequences=return_sequences, zero_output_for_mask=True
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    out_ours, grads_ours = _outputs_and_gradients(ours, x, tf.constant(MASK))
    out_theirs, grads_theirs = _outputs_and_gradients(theirs, x, tf.constant(MASK))
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


@pytest.mark.slow
def test_matches_keras_in_graph_mode(kind, rng):
    """The same comparison traced by tf.function, as model.fit runs it."""
    ours, theirs = _built_pair(
        kind, rng, return_sequences=True, return_state=True, go_backwards=True
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    state = _initial_state(kind, rng)

    out_ours, grads_ours = _traced_outputs_and_gradients(ours, x, tf.constant(MASK), state)
    out_theirs, grads_theirs = _traced_outputs_and_gradients(theirs, x, tf.constant(MASK), state)
    _assert_all_close(out_ours, out_theirs)
    _assert_all_close(grads_ours, grads_theirs)


def test_stateful_matches_keras_and_resets(kind, rng):
    ours, theirs = kind.pair(UNITS, stateful=True, return_sequences=True)
    chunks = rng.normal(size=(3, B, T, D)).astype("float32")
    ours(chunks[0]), theirs(chunks[0])
    ours.set_weights(randomize_weights(theirs, rng))
    ours.reset_state(), theirs.reset_state()
    for chunk in chunks:  # each batch continues where the last one stopped
        np.testing.assert_allclose(ours(chunk), theirs(chunk), atol=1e-5)
        _assert_all_close(ours.states, theirs.states)
    assert np.any(keras.ops.convert_to_numpy(ours.states[0]))
    ours.reset_state(), theirs.reset_state()
    assert not any(np.any(keras.ops.convert_to_numpy(s)) for s in ours.states)
    np.testing.assert_allclose(ours(chunks[1]), theirs(chunks[1]), atol=1e-5)
    # The carried states are not weights: a stateful layer has exactly Keras's weights.
    assert len(ours.weights) == len(theirs.weights) == 3


def test_bidirectional_matches_keras(kind, rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    for return_sequences in (False, True):
        ours, theirs = (
            keras.layers.Bidirectional(layer)
            for layer in kind.pair(UNITS, return_sequences=return_sequences)
        )
        ours(x), theirs(x)
        ours.set_weights(randomize_weights(theirs, rng))
        mask = tf.constant(MASK)
        np.testing.assert_allclose(ours(x, mask=mask), theirs(x, mask=mask), atol=1e-5)


def test_stacked_with_embedding_mask_matches_keras(kind, rng):
    """Padding token 0 masked by Embedding(mask_zero=True), through two stacked layers."""

    def model(layer_class):
        return keras.Sequential(
            [
                keras.Input((T,), dtype="int32"),
                keras.layers.Embedding(10, D, mask_zero=True),
                layer_class(UNITS, return_sequences=True, **kind.kwargs),
                layer_class(UNITS, **kind.kwargs),
                keras.layers.Dense(2),
            ]
        )

    ours, theirs = model(kind.ours), model(kind.theirs)
    ours.set_weights(randomize_weights(theirs, rng))
    tokens = rng.integers(1, 10, size=(B, T))
    tokens[~MASK] = 0
    np.testing.assert_allclose(ours(tokens), theirs(tokens), atol=1e-5)


def test_keras_config_builds_our_layer(kind):
    """A Keras layer's config builds ours: swapping one for the other in saved configs works."""
    _, theirs = kind.pair(UNITS, return_sequences=True, dropout=0.25, go_backwards=True)
    ours = kind.ours.from_config(theirs.get_config())
    assert isinstance(ours, kind.ours)
    assert (ours.units, ours.return_sequences, ours.go_backwards) == (UNITS, True, True)
    assert ours.cell.dropout == 0.25
    assert set(ours.get_config()) >= set(theirs.get_config()) - {"use_cudnn"}


def test_weight_regularizers_add_the_same_losses_as_keras(kind, rng):
    ours, theirs = _built_pair(
        kind,
        rng,
        kernel_regularizer=keras.regularizers.L2(0.01),
        recurrent_regularizer=keras.regularizers.L1(0.02),
        bias_regularizer=keras.regularizers.L2(0.03),
    )
    assert len(ours.losses) == len(theirs.losses) == 3
    np.testing.assert_allclose(sorted(ours.losses), sorted(theirs.losses), rtol=1e-5)


def test_activity_regularizer_penalizes_the_output(kind, rng):
    # Keras's SimpleRNN accepts activity_regularizer but never applies it; ours applies it
    # as GRU and LSTM do: the penalty of the output, divided by the batch size (Keras 3).
    layer = kind.ours(UNITS, activity_regularizer=keras.regularizers.L2(0.04), **kind.kwargs)
    x = rng.normal(size=(B, T, D)).astype("float32")
    output = keras.ops.convert_to_numpy(layer(x))
    (loss,) = layer.losses
    np.testing.assert_allclose(loss, 0.04 * np.sum(output**2) / B, rtol=1e-5)


# -- the scan against a plain Python loop over the cell -------------------------------------


@pytest.mark.parametrize("go_backwards", [False, True])
def test_scan_equals_python_loop_over_cell(kind, rng, go_backwards):
    layer = kind.ours(UNITS, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = rng.normal(size=(B, T, D)).astype("float32")
    initial = _initial_state(kind, rng)
    outputs, *final = layer(x, initial_state=initial, mask=tf.constant(MASK))

    # for t in range(T): out[t], states = cell(x[t], states) -- with Keras's masking rule:
    # a masked step keeps the states and repeats the previous output (zeros at first).
    states = [tf.constant(s) for s in initial]
    previous = tf.zeros((B, UNITS))
    expected = []
    for t in reversed(range(T)) if go_backwards else range(T):
        output, new_states = layer.cell(x[:, t], states)
        keep = tf.constant(MASK[:, t : t + 1])
        states = [tf.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        previous = tf.where(keep, output, previous)
        expected.append(previous)
    np.testing.assert_allclose(outputs, tf.stack(expected, axis=1), atol=1e-6)
    _assert_all_close(final, states, atol=1e-6)


# -- dropout ---------------------------------------------------------------------------------


def test_dropout_is_off_outside_training(kind, rng):
    ours, theirs = _built_pair(kind, rng, dropout=0.5, recurrent_dropout=0.5)
    x = rng.normal(size=(B, T, D)).astype("float32")
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)


def test_input_dropout_mask_is_the_same_at_every_step(rng):
    """Variational dropout: with U = 0 and the same input at every step, each step's output
    depends only on the dropped input, so equal outputs over time mean one mask per sequence."""
    layer = unfold_rnn.VanillaRNN(
        UNITS, dropout=0.5, recurrent_initializer="zeros", return_sequences=True, seed=1
    )
    x = np.repeat(rng.normal(size=(16, 1, D)).astype("float32"), T, axis=1)
    trained = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(trained, np.repeat(trained[:, :1], T, axis=1), atol=1e-6)
    assert not np.allclose(trained, layer(x, training=False))


def test_dropout_scan_equals_loop_with_the_same_masks(kind, rng):
    """With dropout on, the scan equals the loop over the cell given the masks it drew:
    a twin layer with the same seed draws the same masks in the same order."""
    kwargs = dict(dropout=0.3, recurrent_dropout=0.4, seed=11, return_sequences=True)
    layer, twin = (
        kind.ours(UNITS, **kind.kwargs, **kwargs),
        kind.ours(UNITS, **kind.kwargs, **kwargs),
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer(x), twin(x)
    twin.set_weights(layer.get_weights())
    outputs = layer(x, training=True)

    cell = twin.cell
    input_mask = cell.dropout_mask((B, D), cell.dropout)
    recurrent_mask = cell.dropout_mask((B, UNITS), cell.recurrent_dropout)
    states = tuple(cell.get_initial_state(B))
    expected = []
    for t in range(T):
        states = cell.step(cell.project_inputs(x[:, t] * input_mask), states, recurrent_mask)
        expected.append(states[0])
    np.testing.assert_allclose(outputs, tf.stack(expected, axis=1), atol=1e-6)
    assert not np.allclose(outputs, layer(x, training=False))


# -- the hand-written backward pass against autodiff through the reference scan ---------------


def _twins(kind, rng, handwritten=None, **kwargs):
    """The same layer twice, by default (the hand-written pass where the cell has one, with
    the arguments `handwritten` besides) and `backward="autodiff"`, with the same weights and
    the same dropout seed (so that, called alike, they draw the same masks)."""
    own = [handwritten or {}, {"backward": "autodiff"}]
    layers = [
        kind.ours(UNITS, return_sequences=True, return_state=True, **o, **kind.kwargs, **kwargs)
        for o in own
    ]
    x = rng.normal(size=(B, T, D)).astype("float32")
    for layer in layers:
        layer(x)
    layers[1].set_weights(randomize_weights(layers[0], rng))
    return layers


def _check_handwritten_equals_autodiff(kind, rng, traced, handwritten=None, **kwargs):
    """With a mask, initial states, and input and recurrent dropout (which Keras parity
    cannot cover: Keras draws its masks differently), in training."""
    handwritten, autodiff = _twins(
        kind, rng, handwritten, dropout=0.3, recurrent_dropout=0.4, seed=5, **kwargs
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    state = _initial_state(kind, rng)

    def run(layer):
        call = lambda: _outputs_and_gradients(layer, x, tf.constant(MASK), state, training=True)  # noqa: E731
        return tf.function(call)() if traced else call()

    out_hand, grads_hand = run(handwritten)
    out_auto, grads_auto = run(autodiff)
    _assert_all_close(out_hand, out_auto)
    _assert_all_close(grads_hand, grads_auto)
    assert all(np.abs(g).max() > 0 for g in grads_hand)  # no gradient trivially 0


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "xla"])
def test_handwritten_backward_equals_autodiff_through_the_scan(kind, rng, traced):
    _check_handwritten_equals_autodiff(kind, rng, traced)


@pytest.mark.parametrize("go_backwards", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "xla"])
def test_recomputed_backward_equals_autodiff_through_the_scan(kind, rng, traced, go_backwards):
    """recompute=True: 2 chunks of 3 steps (the divisor of 6 nearest its square root), each
    projecting its inputs and running forward again going back."""
    if kind.ours(2, **kind.kwargs).cell.fast_path() is None:
        with pytest.raises(ValueError, match="which GRUCell does not offer"):
            kind.ours(2, recompute=True, **kind.kwargs)
        return
    recompute = {"recompute": True}
    _check_handwritten_equals_autodiff(kind, rng, traced, recompute, go_backwards=go_backwards)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "softsign"])
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "xla"])
def test_vanilla_backward_with_other_activations_equals_autodiff(rng, traced, activation):
    """sigmoid and relu, whose slope the backward pass reads from h_t as it does tanh's, and
    softsign, whose slope needs z_t."""
    kind = KINDS["vanilla"]
    plan = unfold_rnn.VanillaCell(2, activation=activation).fast_path()
    assert (plan.combine is Combine.SUM) == (activation == "softsign")
    _check_handwritten_equals_autodiff(kind, rng, traced, activation=activation)


def test_cells_declare_what_their_step_offers():
    """The fast paths' one input, a value from each cell: how its step reads x_t W + b and
    r_t, and which states it reads itself. GRU with reset_after=False (two matmuls a step)
    offers none and runs the reference scan."""
    assert unfold_rnn.VanillaCell(2).fast_path().combine is Combine.ACTIVATION
    assert unfold_rnn.VanillaCell(2, activation="softsign").fast_path() == OneMatmulStep(
        Combine.SUM
    )
    assert unfold_rnn.LSTMCell(2).fast_path() == OneMatmulStep(Combine.SUM, reads=("c",))
    assert unfold_rnn.GRUCell(2).fast_path() == OneMatmulStep(Combine.PARTS, reads=("h",))
    assert unfold_rnn.GRUCell(2, reset_after=False).fast_path() is None
    assert unfold_rnn.MinGRUCell(2).fast_path() == LinearInH()


def test_a_path_the_cell_does_not_offer_is_refused_when_the_layer_is_made():
    with pytest.raises(ValueError, match="GRUCell offers no hand-written backward pass"):
        unfold_rnn.GRU(3, reset_after=False, backward="handwritten")
    with pytest.raises(ValueError, match="scan='parallel' needs a cell whose step is linear"):
        unfold_rnn.LSTM(3, scan="parallel")
    with pytest.raises(ValueError, match="its own gradient"):
        unfold_rnn.MinGRU(3, backward="autodiff")
    assert unfold_rnn.GRU(3, reset_after=False).backward is None  # the default: autodiff
    unfold_rnn.MinGRU(3, scan="sequential", backward="autodiff")
    with pytest.raises(ValueError, match="recompute=True recomputes in the hand-written"):
        unfold_rnn.LSTM(3, backward="autodiff", recompute=True)
    with pytest.raises(ValueError, match="which MinGRUCell does not offer"):
        unfold_rnn.MinGRU(3, recompute=True)


# -- tf.scan is the time loop ---------------------------------------------------------------


def _count_loops(run):
    """Calls of tf.scan forward and reversed, and of tf.while_loop and tf.TensorArray (which
    tf.scan does not reach through the `tf` namespace), while `run()` traces or runs."""
    with (
        mock.patch.object(tf, "scan", wraps=tf.scan) as scan,
        mock.patch.object(tf, "while_loop", wraps=tf.while_loop) as while_loop,
        mock.patch.object(tf, "TensorArray", wraps=tf.TensorArray) as tensor_array,
    ):
        run()
    reverse = [bool(c.kwargs.get("reverse")) for c in scan.call_args_list]
    return (
        reverse.count(False),
        reverse.count(True),
        while_loop.call_count + tensor_array.call_count,
    )


@pytest.mark.parametrize(
    "mode", ["eager", *(pytest.param(m, marks=pytest.mark.slow) for m in ("fit", "fit-xla"))]
)
def test_tf_scan_is_the_loop_forward_and_backward(kind, rng, mode):
    """Every layer unfolds with tf.scan, and goes back with tf.scan(reverse=True) (GRU with
    reset_after=False: autodiff through its forward tf.scan), never with a tf.while_loop of
    its own: eagerly, in a plain `model.fit` and in a jit_compile=True step."""
    layer = kind.ours(UNITS, **kind.kwargs)
    x, y = rng.normal(size=(B, T, D)).astype("float32"), np.zeros((B, 1), "float32")
    if mode == "eager":
        run = lambda: _outputs_and_gradients(layer, x)  # noqa: E731
    else:
        model = _model(layer, D)
        model.compile("sgd", "mse", jit_compile=mode == "fit-xla")
        run = lambda: model.fit(x, y, epochs=1, verbose=0)  # noqa: E731
    forward, backward, other_loops = _count_loops(run)
    assert forward >= 1
    if layer.cell.fast_path() is None:  # autodiff: TensorFlow's gradient of the forward scan
        assert backward == 0
    else:
        assert backward >= 1
    assert other_loops == 0


@pytest.mark.parametrize(
    "layer, recomputed",
    [
        (lambda: unfold_rnn.LSTM(3, return_sequences=True), True),
        (lambda: unfold_rnn.LSTM(3, return_sequences=True, recompute=False), False),
        (lambda: unfold_rnn.VanillaRNN(3, return_sequences=True), False),  # keeps h alone
        (lambda: unfold_rnn.VanillaRNN(3, return_sequences=True, recompute=True), True),
    ],
)
def test_long_sequences_recompute_by_default(rng, layer, recomputed):
    """From 512 steps, the plan recomputes in chunks where the forward pass keeps more than
    the states: the forward scan runs in every chunk of the reverse one, and a scan over the
    chunks wraps each pass."""
    layer = layer()
    x = rng.normal(size=(2, 512, D)).astype("float32")
    traced = tf.function(lambda: _outputs_and_gradients(layer, x))  # each scan traced once
    forward, backward, _ = _count_loops(traced)
    assert (forward, backward) == ((3, 2) if recomputed else (1, 1))


# -- in model.fit, under XLA and mixed precision ---------------------------------------------


def _regression_task(rng):
    x = rng.normal(size=(128, 8, 2)).astype("float32")
    y = x[:, :, :1].mean(axis=1) * 3  # the running mean of one feature
    return x, y


def _model(layer, features=2):
    return keras.Sequential([keras.Input((None, features)), layer, keras.layers.Dense(1)])


@pytest.mark.slow
def test_fit_lowers_the_loss(kind, rng):
    keras.utils.set_random_seed(0)
    x, y = _regression_task(rng)
    model = _model(kind.ours(16, **kind.kwargs))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.2 * before


@pytest.mark.slow
def test_jit_compile_gives_the_same_numbers(kind, rng):
    keras.utils.set_random_seed(0)
    x, y = _regression_task(rng)
    model = _model(kind.ours(8, **kind.kwargs))
    model.compile("adam", "mse", jit_compile=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x), atol=1e-5)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def _memory_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc")
@pytest.mark.parametrize("whole_step", [True, False], ids=["xla-step", "plain-fit"])
@pytest.mark.parametrize("recompute", [None, True])
def test_xla_step_is_not_recompiled_for_batches_of_unknown_size(kind, rng, recompute, whole_step):
    # Every XLA compilation maps new machine code into the process, so a step recompiled at
    # every call (a reshape by the dynamic batch size inside the compiled loop once did it)
    # shows as mappings that keep growing. With recompute, x W + b is inside the passes.
    if recompute and kind.ours(2, **kind.kwargs).cell.fast_path() is None:
        pytest.skip("recomputes only in the hand-written backward pass")
    args = {"recompute": recompute, **kind.kwargs}
    model = keras.Sequential(
        [
            keras.Input((10, 3)),
            kind.ours(8, return_sequences=True, **args),
            kind.ours(8, **args),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse", jit_compile=whole_step)
    x = rng.normal(size=(64, 10, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, x[:, -1, :1])).batch(8)  # batch dim: None
    counts = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: counts.append(_memory_mappings())
    )
    model.fit(data, callbacks=[callback], shuffle=False, verbose=0)
    assert len(counts) == 8
    assert counts[-1] - counts[1] < 100, counts  # compiled at step 0, and not since


@pytest.mark.slow
@pytest.mark.usefixtures("bfloat16_policy")
def test_mixed_bfloat16(kind, rng):
    keras.utils.set_random_seed(0)
    x, y = _regression_task(rng)
    layer = kind.ours(8, return_sequences=True, **kind.kwargs)
    model = keras.Sequential(
        [keras.Input((None, 2)), layer, kind.ours(8, **kind.kwargs), keras.layers.Dense(1)]
    )
    assert layer.compute_dtype == "bfloat16" and layer.cell.kernel.dtype == "float32"
    assert layer(x[:4]).dtype == "bfloat16"
    reference = kind.ours(8, return_sequences=True, dtype="float32", **kind.kwargs)
    reference(x[:4])
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(layer(x[:4]), "float32"), reference(x[:4]), atol=0.05)
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.slow
@pytest.mark.usefixtures("bfloat16_policy")
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_mixed_bfloat16_recomputed(rng, name):
    """Each chunk projects and differentiates its bfloat16 x W + b against float32 weights."""
    kind = KINDS[name]
    x = rng.normal(size=(4, 12, 2)).astype("float32")
    layer = kind.ours(8, return_sequences=True, recompute=True, **kind.kwargs)
    reference = kind.ours(8, return_sequences=True, dtype="float32", **kind.kwargs)
    reference(x)
    layer(x)
    layer.set_weights(reference.get_weights())
    probe = tf.constant(rng.normal(size=(4, 12, 8)).astype("float32"))  # the same for both

    def outputs_and_gradients(layer):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = tf.cast(layer(inputs), "float32")
            loss = tf.reduce_sum(outputs * probe)
        return outputs, tape.gradient(loss, [inputs, *layer.trainable_weights])

    outputs, gradients = outputs_and_gradients(layer)
    expected, expected_gradients = outputs_and_gradients(reference)
    np.testing.assert_allclose(outputs, expected, atol=0.05)
    for got, want in zip(gradients, expected_gradients, strict=True):
        scale = np.abs(want).max()  # bfloat16 keeps about 3 significant digits
        np.testing.assert_allclose(np.asarray(got, "float32") / scale, want / scale, atol=0.03)


# -- serialization -----------------------------------------------------------------------------


def test_config_round_trip(kind):
    layer = kind.ours(
        UNITS,
        return_sequences=True,
        go_backwards=True,
        dropout=0.1,
        recurrent_dropout=0.2,
        seed=4,
        kernel_regularizer="l2",
        name="mine",
        **kind.kwargs,
    )
    clone = kind.ours.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    generic = unfold_rnn.Unfold(kind.ours_cell(UNITS, **kind.kwargs), return_state=True)
    assert unfold_rnn.Unfold.from_config(generic.get_config()).get_config() == generic.get_config()


def test_saved_model_loads_in_safe_mode_with_identical_outputs(tmp_path, rng):
    inputs = keras.Input((None, D))
    h = unfold_rnn.VanillaRNN(4, return_sequences=True)(inputs)
    h = keras.layers.Bidirectional(unfold_rnn.GRU(4, return_sequences=True, reset_after=False))(h)
    h = unfold_rnn.Unfold(unfold_rnn.GRUCell(4), return_sequences=True)(h)
    h = unfold_rnn.LSTM(4)(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = rng.normal(size=(B, T, D)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


# -- the loop is ours --------------------------------------------------------------------------


def test_keras_loop_is_never_used(kind, rng):
    """Neither Keras's RNN layer nor its backend loop runs under our layers."""
    assert not issubclass(kind.ours, keras.layers.RNN)
    forbidden = mock.Mock(side_effect=AssertionError("Keras's loop was called"))
    with mock.patch("keras.src.backend.rnn", forbidden):
        layer = kind.ours(UNITS, return_sequences=True, **kind.kwargs)
        layer(rng.normal(size=(B, T, D)).astype("float32"), mask=tf.constant(MASK))
    forbidden.assert_not_called()


def test_keras_only_arguments_are_accepted():
    layer = unfold_rnn.LSTM(3, unroll=True, use_cudnn=False, implementation=1)
    assert layer(np.ones((2, 4, 3), "float32")).shape == (2, 3)


# -- bad input ---------------------------------------------------------------------------------


def test_input_of_wrong_rank():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, features\)"):
        unfold_rnn.LSTM(3)(np.zeros((4, 5), "float32"))


def test_no_time_steps():
    with pytest.raises(ValueError, match="needs at least one time step"):
        unfold_rnn.LSTM(3)(np.zeros((2, 0, 3), "float32"))


def test_unknown_feature_dimension():
    with pytest.raises(ValueError, match="needs the number of input features"):
        unfold_rnn.GRU(3)(keras.Input((None, None)))


def test_integer_input():
    with pytest.raises(ValueError, match=r"expects float inputs.*Embedding"):
        unfold_rnn.VanillaRNN(3)(np.zeros((2, 4, 3), "int32"))


@pytest.mark.parametrize("name", list(KINDS))
def test_wrong_number_of_initial_states(name):
    kind = KINDS[name]
    wrong = [np.zeros((2, 3), "float32")] * (kind.num_states + 1)
    with pytest.raises(ValueError, match=rf"takes {kind.num_states} initial state"):
        kind.ours(3, **kind.kwargs)(np.zeros((2, 4, 3), "float32"), initial_state=wrong)


@pytest.mark.parametrize("shape", [(2, 4), (3, 3), (2, 3, 1)])
def test_wrong_initial_state_shape(shape):
    states = [np.zeros(shape, "float32"), np.zeros((2, 3), "float32")]
    with pytest.raises(ValueError, match=r"initial state 0 must have shape \(batch=2, 3\)"):
        unfold_rnn.LSTM(3)(np.zeros((2, 4, 3), "float32"), initial_state=states)


def test_wrong_initial_state_in_a_functional_model():
    inputs, state = keras.Input((None, 3)), keras.Input((7,))
    with pytest.raises(ValueError, match=r"initial state 0 must have shape"):
        unfold_rnn.GRU(3)(inputs, initial_state=[state])


def test_stateful_needs_a_fixed_batch_size():
    with pytest.raises(ValueError, match=r"stateful=True\) needs a fixed batch size"):
        unfold_rnn.LSTM(3, stateful=True)(keras.Input((None, 3)))


def test_stateful_rejects_another_batch_size():
    layer = unfold_rnn.LSTM(3, stateful=True)
    layer(np.zeros((2, 4, 3), "float32"))
    with pytest.raises(ValueError, match="built for batches of 2"):
        layer(np.zeros((5, 4, 3), "float32"))


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="`units` must be a positive whole number"):
        unfold_rnn.LSTM(0)
    with pytest.raises(ValueError, match=r"`dropout` .* \[0, 1\)"):
        unfold_rnn.GRU(4, dropout=1.0)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        unfold_rnn.VanillaRNN(4, dropuot=0.1)


@pytest.mark.parametrize("make", [lambda: unfold_rnn.LSTM(4), lambda: unfold_rnn.GRUCell(4)])
def test_other_keras_backend_is_refused_clearly(make):
    with (
        mock.patch("keras.backend.backend", return_value="jax"),
        pytest.raises(ValueError, match=r"needs Keras.s TensorFlow backend.*running on .jax."),
    ):
        make()


def test_unknown_backward_is_refused_clearly():
    with pytest.raises(ValueError, match=r"`backward` must be one of 'handwritten', 'autodiff'"):
        unfold_rnn.LSTM(3, backward="manual")
    layer = unfold_rnn.GRU(3, backward="autodiff")
    assert unfold_rnn.GRU.from_config(layer.get_config()).backward == "autodiff"
