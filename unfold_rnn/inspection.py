"""Looking inside a trained network: every recurrent unit's state and gates at every step.

`layer_activations(layer, inputs)` steps one of our layers through its cell and returns, as
arrays of shape (batch, time, units), the hidden state `h`, an LSTM's cell state `c`, and each
sigmoid gate (GRU: `update`, `reset`; LSTM: `input`, `forget`, `output`).
`language_model_activations(model, ids)` does it for every recurrent layer of a language
model, feeding each layer the one below, as the model does at inference.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from unfold_rnn.layers import Unfold

SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9  # a gate below / above is left / right saturated


def layer_activations(layer: Unfold, inputs: np.ndarray | tf.Tensor) -> dict[str, np.ndarray]:
    """States and gates of `layer` over `inputs` (batch, time, features), from zero states."""
    if not isinstance(layer, Unfold):
        raise ValueError(f"Can only look inside unfold_rnn layers; got {type(layer).__name__}.")
    cell = layer.cell
    inputs = tf.convert_to_tensor(inputs, dtype=layer.compute_dtype)
    projected = cell.project_inputs(inputs)  # (B, T, G)
    states = tuple(cell.get_initial_state(tf.shape(inputs)[0]))
    steps = range(inputs.shape[1])
    record: dict[str, list[tf.Tensor]] = {}
    for t in reversed(steps) if layer.go_backwards else steps:
        states, gates = cell.step_with_gates(projected[:, t], states)
        named = {"h": states[0], **({"c": states[1]} if len(states) > 1 else {}), **gates}
        for name, value in named.items():
            record.setdefault(name, []).append(value)
    order = slice(None, None, -1) if layer.go_backwards else slice(None)
    return {name: np.stack(values[order], axis=1) for name, values in record.items()}


def language_model_activations(
    model: keras.Model, ids: np.ndarray
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(layer name, activations) for each recurrent layer of a language model, over ids
    (batch, time)."""
    x = None
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Embedding):
            x = layer(np.asarray(ids))
        elif isinstance(layer, Unfold):
            activations = layer_activations(layer, x)
            found.append((layer.name, activations))
            x = activations["h"]
        elif isinstance(layer, keras.layers.Dropout):
            continue  # inactive at inference
        else:
            break  # the output layer
    if not found:
        raise ValueError("The model has no unfold_rnn recurrent layers to look inside.")
    return found


def saturation(gate: np.ndarray) -> tuple[float, float]:
    """Fractions of a gate's activations that are left (< 0.1) and right (> 0.9) saturated."""
    return float(np.mean(gate < SATURATED_LOW)), float(np.mean(gate > SATURATED_HIGH))
