"""The one place that knows a trained model's parts, and steps it.

A language model, as `build_language_model` makes it, is one chain of layers:

    ids (B, T) -> Embedding -> [Dropout] -> recurrent -> [Dropout] -> recurrent ... -> Dense

`LanguageModelStepper` finds the embedding, the recurrent layers (with their states' names)
and the logits once, and every tool after training goes through it: sampling steps it one
character at a time, stream evaluation reads windows with the states carried, inspection
records every state and gate, and export lays the states out in one row. It works for this
package's layers and for Keras's built-in recurrent layers alike: both hold a `cell`.
Dropout is off at inference, so the stepper passes its layers by.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from unfold_rnn.contract import state_sizes
from unfold_rnn.layers import Unfold

# Keras's built-in cells name no states; Keras documents their order: h, then an LSTM's c.
_KERAS_STATE_NAMES = {
    keras.layers.SimpleRNNCell: ("h",),
    keras.layers.GRUCell: ("h",),
    keras.layers.LSTMCell: ("h", "c"),
}

Layer = keras.layers.Layer
States = list[list[tf.Tensor]]  # per recurrent layer, its states in its cell's order


def is_recurrent(layer: Layer) -> bool:
    """Whether `layer` unfolds a cell: ours, or Keras's `SimpleRNN`, `GRU`, `LSTM`, `RNN`."""
    return hasattr(layer, "cell")


def recurrent_layers(model: keras.Model) -> list[Layer]:
    """The model's recurrent layers, bottom up."""
    return [layer for layer in model.layers if is_recurrent(layer)]


def state_names(layer: Layer) -> tuple[str, ...]:
    """The names of a recurrent layer's states, in its cell's order."""
    cell = layer.cell
    names = getattr(cell, "state_names", None) or _KERAS_STATE_NAMES.get(type(cell))
    if names is None:
        raise ValueError(
            f"{layer.name}'s cell, {type(cell).__name__}, does not name its states: give it "
            "`state_names`, as unfold_rnn.contract describes."
        )
    return tuple(names)


@dataclass(frozen=True)
class Activations:
    """One recurrent layer's states and gates by name, each (batch, time, units)."""

    layer: str
    states: dict[str, np.ndarray]  # "h", and an LSTM's "c"
    gates: dict[str, np.ndarray]  # GRU: update, reset; LSTM: input, forget, output; ...


def layer_activations(layer: Layer, inputs: np.ndarray | tf.Tensor) -> Activations:
    """Every state and gate of one of our layers over `inputs` (batch, time, features), from
    zero states."""
    if not isinstance(layer, Unfold) or not hasattr(layer.cell, "step_with_gates"):
        raise ValueError(f"Can only look inside unfold_rnn layers; got {type(layer).__name__}.")
    cell = layer.cell
    inputs = tf.convert_to_tensor(inputs, dtype=layer.compute_dtype)
    projected = cell.project_inputs(inputs)  # (B, T, G)
    states = tuple(cell.get_initial_state(tf.shape(inputs)[0]))
    steps = range(inputs.shape[1])
    record: dict[str, list[tf.Tensor]] = {}
    for t in reversed(steps) if layer.go_backwards else steps:
        states, gates = cell.step_with_gates(projected[:, t], states)
        for name, value in {**dict(zip(cell.state_names, states, strict=True)), **gates}.items():
            record.setdefault(name, []).append(value)
    order = slice(None, None, -1) if layer.go_backwards else slice(None)
    stacked = {name: np.stack(values[order], axis=1) for name, values in record.items()}
    states = {name: stacked.pop(name) for name in cell.state_names}
    return Activations(layer.name, states, stacked)


@dataclass(frozen=True)
class StateSlot:
    """Where one state of one layer sits in a row of all the states."""

    layer: str  # the recurrent layer's name, e.g. "rnn_0"
    state: str  # "h", or an LSTM's cell state "c"
    offset: int
    size: int


class LanguageModelStepper:
    """A character-level language model's parts, stepped one character or one window at a
    time, with every recurrent layer's states carried by the caller.

    Example:
        >>> stepper = LanguageModelStepper(model)
        >>> states = stepper.initial_states(batch_size=1)
        >>> logits, states = stepper.step(tf.constant([3]), states)   # (1, V)
    """

    def __init__(self, model: keras.Model) -> None:
        not_a_language_model = (
            "This model is not one chain of layers from character ids to logits (Embedding, "
            "recurrent layers, Dense), as build_language_model makes it"
        )
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if not _is_one_chain(model, layers):
            raise ValueError(f"{not_a_language_model}.")
        self.recurrent = [layer for layer in layers if is_recurrent(layer)]
        if not self.recurrent:
            raise ValueError("The model has no recurrent layers to step through.")
        first, last = layers[0], layers[-1]
        others = [
            layer
            for layer in layers[1:-1]
            if not is_recurrent(layer) and not isinstance(layer, keras.layers.Dropout)
        ]
        if not isinstance(first, keras.layers.Embedding) or not isinstance(
            last, keras.layers.Dense
        ):
            raise ValueError(f"{not_a_language_model}: it starts or ends with something else.")
        if others:
            raise ValueError(f"{not_a_language_model}: it also has {others[0].name}.")
        self.embedding, self.logits = first, last
        self.state_names = [state_names(layer) for layer in self.recurrent]
        self._readers: list[Layer] | None = None

    @property
    def vocab_size(self) -> int:
        return self.logits.units

    def state_layout(self) -> tuple[StateSlot, ...]:
        """Each state's place in a row of all the states: layer after layer, each layer's
        states in its cell's order."""
        slots, offset = [], 0
        for layer, names in zip(self.recurrent, self.state_names, strict=True):
            for name, size in zip(names, state_sizes(layer.cell), strict=True):
                slots.append(StateSlot(layer.name, name, offset, int(size)))
                offset += int(size)
        return tuple(slots)

    def initial_states(self, batch_size: int | tf.Tensor) -> States:
        return [list(layer.cell.get_initial_state(batch_size)) for layer in self.recurrent]

    def step(self, ids: tf.Tensor, states: States) -> tuple[tf.Tensor, States]:
        """One character per sequence: ids (B,) and the states -> logits (B, V), new states."""
        x = self.embedding(ids)  # (B, E)
        new_states = []
        for layer, layer_states in zip(self.recurrent, states, strict=True):
            x, next_states = layer.cell(x, layer_states, training=False)  # (B, H)
            new_states.append(list(next_states))
        return self.logits(x), new_states

    def read(self, ids: tf.Tensor, states: States) -> tuple[tf.Tensor, States]:
        """A window per sequence: ids (B, W) and the states -> logits (B, W, V), and the
        states after the window. Each layer unfolds its own cell over the whole window."""
        x = self.embedding(ids)  # (B, W, E)
        new_states = []
        for reader, layer_states in zip(self._window_readers(), states, strict=True):
            x, *next_states = reader(x, initial_state=layer_states, training=False)
            new_states.append(next_states)
        return self.logits(x), new_states

    def activations(self, ids: np.ndarray) -> list[Activations]:
        """Every state and gate of each recurrent layer over ids (B, T), from zero states,
        each layer reading the one below."""
        x, found = self.embedding(np.asarray(ids)), []
        for layer in self.recurrent:
            found.append(layer_activations(layer, x))
            x = found[-1].states[layer.cell.state_names[0]]  # the output, h_t
        return found

    def _window_readers(self) -> list[Layer]:
        """Per recurrent layer, a layer that unfolds the same cell (the same weights) and
        also returns its final states."""
        if self._readers is None:
            self._readers = [_reader(layer) for layer in self.recurrent]
        return self._readers


def _reader(layer: Layer) -> Layer:
    options = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": layer.go_backwards,
        "dtype": layer.dtype_policy,
    }
    if isinstance(layer, Unfold):
        chosen = {"jit_compile": layer.jit_compile, "backward": layer.backward, "scan": layer.scan}
        chosen["recompute"] = layer.recompute
        return Unfold(layer.cell, **options, **chosen)
    return keras.layers.RNN(layer.cell, **options)


def _is_one_chain(model: keras.Model, layers: list[Layer]) -> bool:
    """Whether each layer reads the output of the one before, from the model's one input to
    its one output."""
    try:
        tensors = [model.inputs, *([layer.input] for layer in layers), model.outputs]
        outputs = [model.inputs, *([layer.output] for layer in layers)]
    except (AttributeError, ValueError):
        return False  # a layer called more than once, or never
    return all(
        len(read) == 1 and len(written) == 1 and read[0] is written[0]
        for read, written in zip(tensors[1:], outputs, strict=True)
    )
