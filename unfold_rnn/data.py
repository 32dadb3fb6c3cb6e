"""Data for the two model families: characters of a text, and bits of binary additions.

Text:   file or str -> `CharVocab` -> ids (one int per character)
                    -> train part | validation part (split by position, no overlap)
                    -> windows of seq_len + 1 ids -> (inputs, next-character targets) batches

Bits:   a + b with operands below 2^(bits-1) -> both numbers' bits, least significant first,
        as (steps, 2) inputs, and the sum's bits as (steps, 1) targets.
"""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tensorflow as tf

from unfold_rnn import _checks
from unfold_rnn._files import write_text_atomically

_VOCAB_FORMAT = "unfold_rnn.CharVocab"
_ENCODE_CHUNK = 1 << 23  # characters encoded at a time, to bound memory on large texts


# -- the vocabulary ----------------------------------------------------------------------------


class CharVocab:
    """The characters a model knows, each with an id (its index in `chars`).

    Unknown characters have no id; `encode` either refuses them (`unknown="error"`, the
    default) or drops them (`unknown="skip"`). There is no catch-all "unknown" id: a language
    model's predictions are over exactly the characters it was trained on.

    Example:
        >>> vocab = CharVocab.from_text("hello")
        >>> vocab.chars
        ['e', 'h', 'l', 'o']
        >>> vocab.decode(vocab.encode("hole"))
        'hole'
    """

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("A vocabulary needs at least one character; got none.")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"A vocabulary holds single characters; got {bad[:5]!r}.")
        if len(set(chars)) != len(chars):
            raise ValueError("A vocabulary's characters must be distinct.")
        self.chars = chars
        codes = np.array([ord(c) for c in chars], dtype=np.uint32)
        self._order = np.argsort(codes)  # id of the i-th smallest code point
        self._sorted_codes = codes[self._order]

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Every character of `text`, in code-point order (stable across runs and machines)."""
        if not text:
            raise ValueError("Cannot build a vocabulary from an empty text.")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str, unknown: Literal["error", "skip"] = "error") -> np.ndarray:
        """The ids of `text`'s characters, as an int32 array of the text's length."""
        if unknown not in ("error", "skip"):
            raise ValueError(f"`unknown` must be 'error' or 'skip'; got {unknown!r}.")
        chunks = [
            self._encode_chunk(text[start : start + _ENCODE_CHUNK], start, unknown)
            for start in range(0, len(text), _ENCODE_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0,), np.int32)

    def _encode_chunk(self, text: str, offset: int, unknown: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        where = np.searchsorted(self._sorted_codes, codes)
        where = np.minimum(where, len(self._sorted_codes) - 1)
        known = self._sorted_codes[where] == codes
        if not known.all():
            if unknown == "error":
                missing = sorted({text[i] for i in np.flatnonzero(~known)[:1000]})
                first = offset + int(np.argmin(known))
                raise ValueError(
                    f"The text has characters the vocabulary does not know, first at position "
                    f"{first}: {''.join(missing)[:40]!r}. Use only the model's characters, or "
                    "pass unknown='skip' to drop them."
                )
            where = where[known]
        return self._order[where].astype(np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The text of `ids`."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"Ids must be in [0, {len(self)}); got {ids.min()}..{ids.max()}.")
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"format": _VOCAB_FORMAT, "version": 1, "chars": self.chars})

    @classmethod
    def from_json(cls, text: str) -> CharVocab:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Not a vocabulary file: invalid JSON ({error}).") from None
        if not isinstance(data, dict) or data.get("format") != _VOCAB_FORMAT:
            raise ValueError(f"Not a vocabulary file: expected a JSON object of {_VOCAB_FORMAT}.")
        return cls(data["chars"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (beside, then renamed into place)."""
        write_text_atomically(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocab:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"No vocabulary file at {path}.") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"Cannot read the vocabulary file {path}: {error}.") from None
        try:
            return cls.from_json(text)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a usable vocabulary file: {error}") from None


# -- reading text ------------------------------------------------------------------------------


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's contents, or a ValueError that says what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"No such file: {path}.")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the path of a UTF-8 text file.")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path} is empty; give a UTF-8 text file with some text in it.")
    if b"\0" in data[:65536]:
        raise ValueError(f"{path} looks like a binary file (it has NUL bytes); give a text file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start : error.start + 1]
        raise ValueError(
            f"{path} is not UTF-8 text: byte {error.start} ({bad!r}) cannot be decoded. "
            "Convert it first, e.g. iconv -f latin1 -t utf-8."
        ) from None


def default_corpus(max_chars: int = 4_000_000) -> str:
    """The built-in corpus: the Python standard library's own source, on every machine.

    The standard library's `.py` files (its tests left out), in sorted path order, until
    `max_chars` characters. Nothing to download; the exact text follows the Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).parts
        if relative[0] in ("site-packages", "dist-packages") or any(
            part in ("test", "tests", "idle_test") for part in relative
        ):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    corpus = "".join(parts)[:max_chars]
    if not corpus:
        raise ValueError(f"Found no Python source under {root} to use as the default corpus.")
    return corpus


# -- text windows ------------------------------------------------------------------------------


@dataclass
class TextData:
    """A text ready for `model.fit`.

    Attributes:
        vocab: the characters and their ids.
        train: endless batches of (inputs, targets), each (batch_size, seq_len) int32;
            targets are the inputs shifted by one character.
        validation: the validation part's windows, once each, in order (None without one).
        train_from: `train_from(b)` is the training stream started at batch b (`train` is
            `train_from(skip_batches)`): how a resumed run continues where it stopped.
        steps_per_epoch: training batches that make one pass over the training characters.
        train_chars, validation_chars: how many characters each part holds.
    """

    vocab: CharVocab
    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    train_from: Callable[[int], tf.data.Dataset]
    steps_per_epoch: int
    train_chars: int
    validation_chars: int


def text_data(
    text: str,
    seq_len: int = 100,
    batch_size: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
    vocab: CharVocab | None = None,
    skip_batches: int = 0,
) -> TextData:
    """Windows of `text` for a character-level language model.

    The text's first `1 - val_fraction` is for training, the rest for validation. A training
    batch holds windows of seq_len + 1 characters starting at uniformly random positions
    (drawn afresh for every batch, reproducibly from `seed`), so each epoch sees new offsets
    in a new order; validation walks its part in consecutive, non-overlapping windows. Memory
    is the text's ids, never a list of windows.

    Args:
        text: the whole corpus.
        seq_len: time steps per window (the length of backpropagation through time).
        batch_size: windows per batch.
        val_fraction: the share of the text, taken from its end, kept for validation, in [0, 1).
        seed: makes the training batches reproducible.
        vocab: the characters to use; by default, every character of `text`.
        skip_batches: start the training stream this many batches in (to resume a run
            exactly where it stopped).
    """
    seq_len = _checks.positive_int("seq_len", seq_len)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1); got {val_fraction!r}.")
    if not text:
        raise ValueError("The text is empty; a language model needs some text to learn from.")
    vocab = vocab or CharVocab.from_text(text)
    ids = vocab.encode(text)
    split = round(len(ids) * (1.0 - val_fraction))
    train_ids, validation_ids = ids[:split], ids[split:]
    window = seq_len + 1
    if len(train_ids) < window:
        raise ValueError(
            f"The training part of the text has {len(train_ids)} characters, shorter than one "
            f"window of seq_len + 1 = {window}. Use a longer text or a smaller --seq-len."
        )
    if val_fraction > 0 and len(validation_ids) < window:
        raise ValueError(
            f"The validation part of the text ({val_fraction:.0%}) has {len(validation_ids)} "
            f"characters, shorter than one window of {window}. Use a longer text, a larger "
            "validation fraction, or a smaller --seq-len."
        )

    def train_from(batch: int) -> tf.data.Dataset:
        return _random_windows(train_ids, seq_len, batch_size, seed, batch)

    return TextData(
        vocab=vocab,
        train=train_from(skip_batches),
        validation=_consecutive_windows(validation_ids, seq_len, batch_size)
        if val_fraction > 0
        else None,
        train_from=train_from,
        steps_per_epoch=max(1, len(train_ids) // (seq_len * batch_size)),
        train_chars=len(train_ids),
        validation_chars=len(validation_ids),
    )


def _split_window(windows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(B, seq_len + 1) -> inputs (B, seq_len), targets (B, seq_len): next characters."""
    windows = tf.cast(windows, tf.int32)
    return windows[:, :-1], windows[:, 1:]


def _gather_windows(ids: tf.Tensor, starts: tf.Tensor, seq_len: int) -> tf.Tensor:
    offsets = tf.range(seq_len + 1, dtype=starts.dtype)
    return tf.gather(ids, starts[:, None] + offsets[None, :])  # (B, seq_len + 1)


def _compact(ids: np.ndarray) -> tf.Tensor:
    """The ids as a constant, in 16 bits when the vocabulary allows (half the memory)."""
    small = ids.size == 0 or ids.max() < 2**15
    return tf.constant(ids.astype(np.int16 if small else np.int32))


def _random_windows(
    ids: np.ndarray, seq_len: int, batch_size: int, seed: int, skip_batches: int = 0
) -> tf.data.Dataset:
    """Endless batches of windows at uniformly random starts. Batch b's starts are stateless
    random numbers keyed by (seed, b): the stream depends on nothing else (no global seed),
    and resuming at batch b is starting the count there."""
    data = _compact(ids)
    num_starts = len(ids) - seq_len  # window starts 0 .. len - seq_len - 1

    def starts(b: tf.Tensor) -> tf.Tensor:
        key = tf.stack([tf.constant(seed, tf.int64), b])
        return tf.random.stateless_uniform(
            [batch_size], seed=key, minval=0, maxval=num_starts, dtype=tf.int64
        )

    batches = tf.data.Dataset.counter(start=skip_batches).map(starts)
    windows = batches.map(lambda s: _gather_windows(data, s, seq_len))
    return windows.map(_split_window).prefetch(tf.data.AUTOTUNE)


def text_windows(ids: np.ndarray, seq_len: int, batch_size: int) -> tf.data.Dataset:
    """Every full window of `ids`, consecutive and non-overlapping, once, as (inputs, targets)
    batches: for measuring a model's loss on a whole text."""
    if len(ids) < seq_len + 1:
        raise ValueError(
            f"The text has {len(ids)} characters the model knows, shorter than one window of "
            f"{seq_len + 1}."
        )
    return _consecutive_windows(ids, seq_len, batch_size)


def _consecutive_windows(ids: np.ndarray, seq_len: int, batch_size: int) -> tf.data.Dataset:
    data = _compact(ids)
    starts = np.arange(0, len(ids) - seq_len, seq_len, dtype=np.int64)
    windows = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    windows = windows.map(lambda s: _gather_windows(data, s, seq_len))
    return windows.map(_split_window).prefetch(tf.data.AUTOTUNE)


# -- binary addition ---------------------------------------------------------------------------

MAX_BITS = 64  # sums are decoded as unsigned 64-bit integers


def addition_problems(
    num: int,
    bits: int = 8,
    seed: int | np.random.Generator | None = None,
    propagate: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """`num` random problems a + b, as bits, least significant bit first.

    Operands are below 2^(bits-1), so every sum fits in `bits` bits. At each of the lower
    bits - 1 positions, the two bits differ (a carry arriving there propagates on) with
    probability `propagate`; at 0.5, the default, a and b are independent and uniform. A
    larger value gives more long carry chains, the hard cases for a network that must carry.

    Returns:
        inputs (num, bits, 2) float32: a's bit and b's bit at each step;
        targets (num, bits, 1) float32: the sum's bit at each step.
    """
    num = _checks.positive_int("num", num)
    _check_bits(bits)
    if not 0.0 <= propagate <= 1.0:
        raise ValueError(f"`propagate` is a probability, in [0, 1]; got {propagate!r}.")
    rng = np.random.default_rng(seed)
    a_bits = np.zeros((num, bits), np.uint8)
    differ = np.zeros((num, bits), np.uint8)
    a_bits[:, :-1] = rng.random((num, bits - 1)) < 0.5
    differ[:, :-1] = rng.random((num, bits - 1)) < propagate
    b_bits = a_bits ^ differ  # uniform and independent of a when propagate = 0.5
    total = bits_to_ints(a_bits) + bits_to_ints(b_bits)
    inputs = np.stack([a_bits, b_bits], axis=-1).astype(np.float32)
    return inputs, ints_to_bits(total, bits)[..., None].astype(np.float32)


def _check_bits(bits: object) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 2:
        raise ValueError(
            f"`bits` must be a whole number >= 2 (one bit for the operands, one for the "
            f"carry); got {bits!r}."
        )
    if bits > MAX_BITS:
        raise ValueError(f"`bits` can be at most {MAX_BITS}; got {bits}.")


def ints_to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """(N,) non-negative integers -> (N, bits) of 0/1, least significant bit first."""
    values = np.asarray(values, dtype=np.uint64)
    return ((values[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


def bits_to_ints(bits: np.ndarray) -> np.ndarray:
    """(N, steps) or (N, steps, 1) of 0/1, least significant first -> (N,) uint64.

    Probabilities are read as bits by rounding at 0.5, so a model's predictions decode
    directly: `bits_to_ints(model.predict(inputs))`.
    """
    bits = np.asarray(bits)
    if bits.ndim == 3:
        bits = bits[..., 0]
    if bits.ndim != 2:
        raise ValueError(f"Expected bits of shape (N, steps) or (N, steps, 1); got {bits.shape}.")
    if bits.shape[1] > MAX_BITS:
        raise ValueError(f"Can decode at most {MAX_BITS} bits; got {bits.shape[1]}.")
    ones = (bits > 0.5).astype(np.uint64)
    return (ones << np.arange(bits.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
