"""Our layers where a script expects Keras's: every public member Keras's recurrent layers have,
and a model written the way TensorFlow's text-generation tutorial writes one."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import unfold_rnn

PAIRS = [
    (keras.layers.LSTM, unfold_rnn.LSTM),
    (keras.layers.GRU, unfold_rnn.GRU),
    (keras.layers.SimpleRNN, unfold_rnn.VanillaRNN),
]

# Members of Keras's layers that ours leave out on purpose, and why.
NOT_OURS = {
    "inner_loop": "Keras's hook for its backends' fused kernels; our time loop is tf.scan, "
    "chosen once by unfold_rnn.unfolding.choose",
    "single_state": "Keras's own bookkeeping for that loop (whether state_size was an int)",
    "use_cudnn": "cuDNN only; the argument is accepted and ignored, since ours never runs cuDNN",
}

ARGUMENTS = {
    "units": 4,
    "dropout": 0.25,
    "recurrent_dropout": 0.125,
    "use_bias": False,
    "kernel_initializer": "he_normal",
    "recurrent_initializer": "identity",
    "bias_initializer": "ones",
    "kernel_regularizer": "l2",
    "recurrent_regularizer": "l1",
    "bias_regularizer": "l2",
    "kernel_constraint": "non_neg",
    "recurrent_constraint": "unit_norm",
    "bias_constraint": "max_norm",
    "activation": "relu",
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "stateful": True,
}
OWN_ARGUMENTS = {
    keras.layers.LSTM: {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False},
    keras.layers.GRU: {"recurrent_activation": "hard_sigmoid", "reset_after": False},
    keras.layers.SimpleRNN: {},
}


def _public(layer: keras.layers.Layer) -> set[str]:
    return {name for name in dir(layer) if not name.startswith("_")}


def test_each_exception_is_still_a_member_of_keras_layers():
    keras_members = set().union(*(_public(theirs(4)) for theirs, _ in PAIRS))
    assert set(NOT_OURS) <= keras_members


def _comparable(value: object) -> object:
    """A value as a script would compare it: Keras objects by their serialized form."""
    if callable(value) or hasattr(value, "get_config"):
        return keras.saving.serialize_keras_object(value)
    if isinstance(value, (list, tuple)):  # state_size, or the carried states' values
        return [np.asarray(v).tolist() for v in value]
    return value


def _built_pair(theirs_class: type, ours_class: type) -> tuple:
    arguments = {**ARGUMENTS, **OWN_ARGUMENTS[theirs_class]}
    theirs, ours = theirs_class(**arguments), ours_class(**arguments)
    for layer in (theirs, ours):
        layer.build((3, 5, 2))
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.mark.parametrize(("theirs_class", "ours_class"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_member_of_keras_layer_is_ours_and_the_same(theirs_class, ours_class):
    """Each public method and property of Keras's layer, on instances made with the same
    arguments: the same value, or, for a method, the same result of the same call."""
    theirs, ours = _built_pair(theirs_class, ours_class)
    missing = _public(theirs) - _public(ours) - set(NOT_OURS)
    assert missing == set()

    base = _public(keras.layers.Layer(name="base"))  # every layer's, checked by Keras's tests
    for name in sorted(_public(theirs) - base - set(NOT_OURS)):
        mine, keras_own = getattr(ours, name), getattr(theirs, name)
        if inspect.ismethod(keras_own):
            assert list(inspect.signature(keras_own).parameters) == list(
                inspect.signature(mine).parameters
            ), name
        elif name == "cell":  # ours is our cell: Keras's arguments, the same values
            their_config = keras_own.get_config()
            their_config.pop("implementation", None)  # Keras's kernel layout: ours has one
            mine_config = mine.get_config()
            assert {k: mine_config[k] for k in their_config if k != "name"} == {
                k: v for k, v in their_config.items() if k != "name"
            }
        else:
            assert _comparable(mine) == _comparable(keras_own), name

    for ours_state, their_state in zip(
        ours.get_initial_state(3), theirs.get_initial_state(3), strict=True
    ):
        np.testing.assert_array_equal(ours_state, their_state)
    x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
    for layer in (theirs, ours):
        layer(x)
        assert np.abs(layer.states[0]).max() > 0
    ours.reset_states(), theirs.reset_state()
    for layer in (theirs, ours):
        assert all(np.abs(state).max() == 0 for state in layer.states)


# -- a model written the way TensorFlow's text-generation tutorial writes one ---------------

PAIRS_GRU = {"ours": unfold_rnn.GRU, "keras": keras.layers.GRU}


class CharModel(keras.Model):
    """A subclassed model that carries its recurrent states itself: with `return_state`,
    call it on one character at a time and feed the states back."""

    def __init__(self, vocab_size: int, gru_class: type, units: int = 16) -> None:
        super().__init__()
        self.embedding = keras.layers.Embedding(vocab_size, 8)
        self.gru = gru_class(units, return_sequences=True, return_state=True)
        self.dense = keras.layers.Dense(vocab_size)

    def call(self, inputs, states=None, return_state=False, training=False):
        x = self.embedding(inputs, training=training)
        if states is None:
            states = self.gru.get_initial_state(tf.shape(x)[0])
        x, states = self.gru(x, initial_state=states, training=training)
        x = self.dense(x, training=training)
        return (x, states) if return_state else x


def _generate(model: CharModel, prime: np.ndarray, steps: int) -> tuple[list, np.ndarray]:
    """Greedy generation one character at a time, states carried: the logits of each step
    and the ids."""
    states, ids, every_logits = None, prime, []
    for _ in range(steps):
        logits, states = model(ids, states=states, return_state=True)
        every_logits.append(logits[:, -1].numpy())
        ids = np.argmax(logits[:, -1:], axis=-1)  # (B, 1): the next input is one character
    return every_logits, ids


def test_a_tutorial_shaped_model_trains_and_generates_as_with_keras_gru():
    vocab_size, rng = 11, np.random.default_rng(3)
    text = rng.integers(0, vocab_size, size=(32, 21))
    models = {name: CharModel(vocab_size, cls) for name, cls in PAIRS_GRU.items()}
    for model in models.values():
        model(text[:, :-1])
    models["ours"].set_weights(models["keras"].get_weights())

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    history = {
        name: model.fit(text[:, :-1], text[:, 1:], batch_size=8, epochs=2, shuffle=False, verbose=0)
        for name, model in models.items()
    }
    np.testing.assert_allclose(
        history["ours"].history["loss"], history["keras"].history["loss"], rtol=1e-4
    )
    assert history["ours"].history["loss"][-1] < history["ours"].history["loss"][0]
    for mine, theirs in zip(models["ours"].weights, models["keras"].weights, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)

    prime = text[:4, :5]
    ours, ours_ids = _generate(models["ours"], prime, 12)
    theirs, their_ids = _generate(models["keras"], prime, 12)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_array_equal(ours_ids, their_ids)
