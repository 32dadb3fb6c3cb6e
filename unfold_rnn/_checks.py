"""Argument checks shared by the cells and the layers, with messages written for people."""

from __future__ import annotations

import numbers

import keras


def require_tensorflow_backend(what: str) -> None:
    """Fail clearly when Keras runs on another backend: our time loop is TensorFlow's."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{what} needs Keras's TensorFlow backend, but Keras is running on {backend!r}. "
            "Set the environment variable KERAS_BACKEND=tensorflow before Python starts "
            "(or remove the 'backend' entry from ~/.keras/keras.json)."
        )


def positive_int(name: str, value: object) -> int:
    """`value` as an int if it is a whole number > 0, else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive whole number; got {value!r}.")
    return int(value)


def rate(name: str, value: object) -> float:
    """`value` as a float if it is a probability in [0, 1), else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` is the fraction of units to drop and must be in [0, 1); got {value!r}."
        )
    return float(value)


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else a ValueError naming `name` and the choices."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return str(value)
