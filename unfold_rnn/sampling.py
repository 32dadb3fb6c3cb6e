"""Generating text from a character-level language model, one character at a time.

The model's recurrent layers are stepped through their cells, carrying the states from one
character to the next, so each new character costs one step whatever the length so far
(the scan is never re-run over the prefix):

    states = zeros; for c in prime: logits, states = step(c, states)
    repeat: c = pick(logits); emit c; logits, states = step(c, states)

`pick` draws from softmax(logits / temperature), optionally only among the `top_k` most
likely characters or the smallest set whose probability reaches `top_p` (nucleus sampling,
Holtzman et al. 2020), or takes the most likely character (`greedy`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from unfold_rnn.data import CharVocab
from unfold_rnn.stepper import LanguageModelStepper, States

# Characters per compiled call. Generation runs as a `tf.while_loop` compiled by XLA, CHUNK
# steps per call, so Python and TensorFlow's per-call cost are paid once per chunk; a chunk
# of static size keeps XLA to one compilation (chunk sizes compared: docs/performance.md).
CHUNK = 256


@dataclass(frozen=True)
class SamplingOptions:
    """How the next character is picked from the model's logits.

    Attributes:
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        top_k: if set, draw only among the k most likely characters (1 <= k <= vocab size).
        top_p: if set, draw only from the most likely characters whose probabilities add
            up to at least top_p, in (0, 1].
        greedy: always take the most likely character (ignores the others).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def check(self, vocab_size: int) -> None:
        if not self.temperature > 0:
            raise ValueError(
                f"The temperature must be > 0; got {self.temperature}. For the most likely "
                "character every time, use greedy sampling."
            )
        if self.top_k is not None and not 1 <= self.top_k <= vocab_size:
            raise ValueError(
                f"top-k must be between 1 and the vocabulary size, {vocab_size}; got {self.top_k}."
            )
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1]; got {self.top_p}.")


def keep_top(logits: tf.Tensor, options: SamplingOptions) -> tf.Tensor:
    """Logits (B, V) with the characters outside top-k / top-p set to -inf."""
    never = tf.fill(tf.shape(logits), -np.inf)
    if options.top_k is not None:
        kth = tf.math.top_k(logits, k=options.top_k).values[:, -1:]  # (B, 1)
        logits = tf.where(logits < kth, never, logits)
    if options.top_p is not None:
        order = tf.argsort(logits, axis=-1, direction="DESCENDING")
        sorted_probs = tf.gather(tf.nn.softmax(logits), order, batch_dims=1)
        before = tf.cumsum(sorted_probs, axis=-1, exclusive=True)  # mass above each character
        keep_sorted = before < options.top_p  # the smallest set reaching top_p
        keep = tf.scatter_nd(
            tf.stack(
                [
                    tf.repeat(tf.range(tf.shape(order)[0]), tf.shape(order)[1]),
                    tf.reshape(order, [-1]),
                ],
                axis=1,
            ),
            tf.reshape(keep_sorted, [-1]),
            tf.shape(logits),
        )
        logits = tf.where(keep, logits, never)
    return logits


class Sampler:
    """Generates text from a language model built by `build_language_model`, stepping it one
    character at a time through its `LanguageModelStepper` (our layers or Keras's alike).

    Example:
        >>> sampler = Sampler(model, vocab)
        >>> print(sampler.generate("ROMEO:", length=200, temperature=0.8, seed=1)[0])
    """

    def __init__(self, model: keras.Model, vocab: CharVocab) -> None:
        self.vocab = vocab
        self.stepper = LanguageModelStepper(model)
        if self.stepper.vocab_size != len(vocab):
            raise ValueError(
                f"The model predicts {self.stepper.vocab_size} characters but the vocabulary "
                f"has {len(vocab)}: they do not belong together."
            )
        self._step = tf.function(self.stepper.step, reduce_retracing=True)
        self._read = tf.function(self._read_fn, reduce_retracing=True)
        self._advance: dict[SamplingOptions, Any] = {}  # one compiled function per options

    def initial_states(self, batch_size: int | tf.Tensor) -> States:
        return self.stepper.initial_states(batch_size)

    def step(self, ids: np.ndarray | tf.Tensor, states: States) -> tuple[tf.Tensor, States]:
        """One character per sequence: ids (B,) and the states -> logits (B, V), new states."""
        return self._step(tf.convert_to_tensor(ids, tf.int32), states)

    def generate(
        self,
        prime: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        seed: int | None = None,
        num_samples: int = 1,
    ) -> list[str]:
        """`num_samples` continuations of `prime`, each `length` characters long (the prime
        not included), generated side by side as one batch.

        The draw for the character at position t of the continuation uses randomness keyed
        by (seed, t), so with one seed a shorter sample is the start of a longer one.
        """
        options = SamplingOptions(temperature, top_k, top_p, greedy)
        options.check(len(self.vocab))
        if length < 0:
            raise ValueError(f"The length must be >= 0; got {length}.")
        if num_samples < 1:
            raise ValueError(f"The number of samples must be >= 1; got {num_samples}.")
        if not prime:
            raise ValueError("The prime must have at least one character to start from.")
        prime_ids = self.vocab.encode(prime)  # a clear error for unknown characters
        prime_ids = np.broadcast_to(prime_ids, (num_samples, len(prime_ids)))
        ids = self.continuation(
            tf.constant(prime_ids, tf.int32),
            tf.constant(length, tf.int32),
            tf.constant(temperature, tf.float32),
            tf.constant(seed if seed is not None else _fresh_seed(), tf.int32),
            options,
        )
        return [self.vocab.decode(row) for row in ids.numpy()]

    def continuation(
        self,
        prime_ids: tf.Tensor,
        length: tf.Tensor,
        temperature: tf.Tensor,
        seed: tf.Tensor,
        options: SamplingOptions = SamplingOptions(),
    ) -> tf.Tensor:
        """The ids (B, length) drawn after reading `prime_ids` (B, P), P >= 1, at
        `temperature` with `seed`; `options` gives top-k, top-p and greedy (its temperature
        is not used). Runs eagerly or inside a `tf.function` (the exported `generate`), with
        the same compiled loop and so the same draws."""
        logits, states = self._read(prime_ids, self.initial_states(tf.shape(prime_ids)[0]))
        advance = self._compiled_advance(options)
        chunks = (length + CHUNK - 1) // CHUNK  # the last chunk's surplus is dropped

        def body(i: tf.Tensor, logits: tf.Tensor, states: list, picked: tf.TensorArray):
            ids, logits, states = advance(logits, states, seed, i * CHUNK, temperature)
            return i + 1, logits, states, picked.write(i, ids)

        picked = tf.TensorArray(tf.int32, size=chunks, element_shape=(prime_ids.shape[0], CHUNK))
        *_, picked = tf.while_loop(
            lambda i, *_: i < chunks, body, (tf.constant(0), logits, states, picked)
        )
        ids = tf.reshape(tf.transpose(picked.stack(), [1, 0, 2]), [tf.shape(prime_ids)[0], -1])
        return ids[:, :length]

    def _compiled_advance(self, options: SamplingOptions) -> Any:
        """The XLA-compiled chunk loop for `options`, compiled once for all temperatures.
        Keyed by value: tf.function would key an options object by its identity."""
        key = dataclasses.replace(options, temperature=1.0)
        if key not in self._advance:
            advance = functools.partial(self._advance_fn, options=key)
            self._advance[key] = tf.function(advance, jit_compile=True)
        return self._advance[key]

    def _read_fn(self, ids: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
        """Steps through ids (B, P), P >= 1: the logits after the last one, and the states."""
        logits, states = self.stepper.step(ids[:, 0], states)

        def body(t: tf.Tensor, logits: tf.Tensor, states: list) -> tuple:
            return (t + 1, *self.stepper.step(ids[:, t], states))

        _, logits, states = tf.while_loop(
            lambda t, *_: t < tf.shape(ids)[1], body, (tf.constant(1), logits, states)
        )
        return logits, states

    def _advance_fn(
        self,
        logits: tf.Tensor,
        states: list,
        seed: tf.Tensor,
        start: tf.Tensor,
        temperature: tf.Tensor,
        options: SamplingOptions,
    ) -> tuple[tf.Tensor, tf.Tensor, list]:
        """CHUNK times: pick the next characters from `logits`, step the model on them.
        Returns the picks (B, CHUNK) for positions start, start + 1, ..., and the logits and
        states after the last one."""

        def body(t: tf.Tensor, logits: tf.Tensor, states: list, picked: tf.TensorArray) -> tuple:
            if options.greedy:
                ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            else:
                filtered = keep_top(tf.cast(logits, tf.float32) / temperature, options)
                # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
                key = tf.stack([seed, start + t])
                uniform = tf.random.stateless_uniform(tf.shape(filtered), key, 1e-20, 1.0)
                noisy = filtered - tf.math.log(-tf.math.log(uniform))
                ids = tf.argmax(noisy, axis=-1, output_type=tf.int32)
            logits, states = self.stepper.step(ids, states)
            return t + 1, logits, states, picked.write(t, ids)

        picked = tf.TensorArray(tf.int32, size=CHUNK)
        _, logits, states, picked = tf.while_loop(
            lambda t, *_: t < CHUNK, body, (tf.constant(0), logits, states, picked)
        )
        return tf.transpose(picked.stack()), logits, states  # (B, CHUNK)


def _fresh_seed() -> int:
    return int(np.random.default_rng().integers(2**31))
