"""Taking a trained run out of Python: a SavedModel for TF Serving, and a LiteRT step model.

`export(run_dir, out)` writes, for a language model:

    OUT/<N>/                 a SavedModel; OUT is a TF Serving model base path as it is
        serving_default      ids (B, T) int32 -> logits (B, T, V) float32
        step                 ids (B,) int32, states (B, W) float32 -> logits (B, V), states (B, W)
        generate             prime, length, temperature, seed (scalars) -> text (string scalar)
        assets/chars.txt     the vocabulary: the character of id i is the file's i-th, in UTF-8
        unfold_rnn.json      the state width W, the order of the states, the vocabulary size
    OUT/step.tflite          `step` for one sequence, LiteRT builtin ops only

`step` carries the recurrent states in and out, so the server keeps none: zeros start a text.
The states of all layers travel as one row of W numbers, layer after layer from the
embedding up, each layer's states in its cell's order (an LSTM's h, then c).

For a binary-addition run, the SavedModel has one signature, `serving_default`: bits (B, T, 2)
int32, a's and b's bits least significant first -> sum_bits (B, T) int32 and probabilities
(B, T) float32.

Everything is written beside the target first and renamed into place, so a failed export
leaves what was there before.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from unfold_rnn import runs
from unfold_rnn._files import replace_dir
from unfold_rnn.data import CharVocab
from unfold_rnn.sampling import Sampler
from unfold_rnn.stepper import StateSlot

CHARS_ASSET = "chars.txt"
DESCRIPTION = "unfold_rnn.json"
TFLITE = "step.tflite"


@dataclass(frozen=True)
class Exported:
    """Where an export went and what its step carries."""

    saved_model: Path
    tflite: Path | None  # the LiteRT step model (language models only)
    state_width: int  # W, the width of `step`'s states (0 for binary addition)
    state_layout: tuple[StateSlot, ...]


def export(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    version: int = 1,
    overwrite: bool = False,
) -> Exported:
    """Export the run's model (its best, `model.keras`) to `out`/`version` as a SavedModel,
    and for a language model its step to `out`/step.tflite as well.

    Raises ValueError, and changes nothing in `out`, if `run_dir` is not a run with a saved
    model, if `out`/`version` holds something and `overwrite` is false, or if `out` cannot
    be written.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"The version must be a whole number >= 1; got {version!r}.")
    config = runs.read_config(run_dir)
    model = runs.load_model(Path(run_dir) / runs.MODEL)
    out = Path(out)
    target = out / str(version)
    if not overwrite and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(
            f"{target} already holds a model. Choose another version, or replace it (--overwrite)."
        )
    with _staging_dir(out, version) as staging:
        if config.kind == "language_model":
            serving = _LanguageModelServing(model, runs.read_vocab(run_dir), staging)
            serving.save(staging / "saved_model")
            (staging / TFLITE).write_bytes(serving.step_to_tflite(staging / "step_batch_1"))
        else:
            serving = _AdderServing(model)
            serving.save(staging / "saved_model")
        replace_dir(staging / "saved_model", target)
        tflite = out / TFLITE if (staging / TFLITE).exists() else None
        if tflite is not None:
            os.replace(staging / TFLITE, tflite)
    return Exported(target, tflite, serving.width, tuple(serving.layout))


@contextmanager
def _staging_dir(out: Path, version: int) -> Iterator[Path]:
    """A new hidden directory in `out` (TF Serving reads only numbered ones), removed after,
    with `out` itself if it was made for it and the export failed."""
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=out))
    except OSError as error:
        raise ValueError(f"Cannot write to {out}: {error.strerror or error}.") from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _describe(path: Path, **description: object) -> None:
    """`unfold_rnn.json` beside the SavedModel: what a client needs besides the signatures."""
    text = json.dumps(description, indent=1, default=dataclasses.asdict) + "\n"
    (path / DESCRIPTION).write_text(text, encoding="utf-8")


# -- the language model ------------------------------------------------------------------------


class _Serving(tf.Module):
    """A model's weights and its inference call, for the signatures of a subclass."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        # The weights are saved as a list, as Keras's own ExportArchive does, and the model
        # is called, not tracked, so that every loader, LiteRT's converter among them,
        # restores them.
        self._weights = [variable.value for variable in model.variables]
        self._forward = functools.partial(model, training=False)


class _LanguageModelServing(_Serving):
    """The three signatures of a language model, over its weights and its vocabulary."""

    def __init__(self, model: keras.Model, vocab: CharVocab, staging: Path) -> None:
        super().__init__(model)
        self._sampler = Sampler(model, vocab)
        self._vocab_size = len(vocab)
        chars_file = staging / "assets_source" / CHARS_ASSET
        chars_file.parent.mkdir()
        chars_file.write_bytes("".join(vocab.chars).encode("utf-8"))
        self.chars = tf.saved_model.Asset(str(chars_file))
        self.layout = self._sampler.stepper.state_layout()
        self.width = sum(slot.size for slot in self.layout)

    def save(self, path: Path) -> None:
        signatures = {
            "serving_default": self.serve,
            "step": self._step_function(batch_size=None),
            "generate": self.generate,
        }
        tf.saved_model.save(self, str(path), signatures=signatures)
        _describe(
            path,
            kind="language_model",
            vocab_size=self._vocab_size,
            state_width=self.width,
            state_layout=list(self.layout),
        )

    def step_to_tflite(self, scratch: Path) -> bytes:
        """`step` for one sequence, ids (1,) and states (1, W), as a LiteRT model of builtin
        ops: one cell step per layer and no time loop, so none of the TensorList ops that
        `tf.scan` lowers to (which LiteRT has only among its Select TF ops)."""
        tf.saved_model.save(self, str(scratch), signatures={"step": self._step_function(1)})
        converter = tf.lite.TFLiteConverter.from_saved_model(str(scratch), signature_keys=["step"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="ids")])
    def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": tf.cast(self._forward(ids), tf.float32)}

    def _step_function(self, batch_size: int | None) -> tf.types.experimental.GenericFunction:
        return tf.function(
            self._step,
            input_signature=[
                tf.TensorSpec((batch_size,), tf.int32, name="ids"),
                tf.TensorSpec((batch_size, self.width), tf.float32, name="states"),
            ],
        )

    def _step(self, ids: tf.Tensor, states: tf.Tensor) -> dict[str, tf.Tensor]:
        """One character per sequence; the states as one row of `width` numbers each."""
        parts = iter(tf.split(states, [slot.size for slot in self.layout], axis=1))
        nested = [[next(parts) for _ in names] for names in self._sampler.stepper.state_names]
        logits, new_states = self._sampler.step(ids, nested)
        flat = [tf.cast(state, tf.float32) for layer in new_states for state in layer]
        return {"logits": tf.cast(logits, tf.float32), "states": tf.concat(flat, axis=1)}

    @tf.function(
        input_signature=[
            tf.TensorSpec((), tf.string, name="prime"),
            tf.TensorSpec((), tf.int32, name="length"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="seed"),
        ]
    )
    def generate(
        self, prime: tf.Tensor, length: tf.Tensor, temperature: tf.Tensor, seed: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """The prime and `length` characters after it, as `unfold-rnn sample` writes them."""
        chars = tf.strings.unicode_split(tf.io.read_file(self.chars.asset_path), "UTF-8")
        prime_chars = tf.strings.unicode_split(prime, "UTF-8")
        matches = tf.equal(prime_chars[:, None], chars[None, :])  # (P, V)
        checks = [
            tf.debugging.assert_positive(tf.size(prime_chars), "The prime must not be empty."),
            tf.debugging.assert_equal(
                tf.reduce_all(tf.reduce_any(matches, axis=1)),
                True,
                "The prime has characters the vocabulary does not know.",
            ),
            tf.debugging.assert_non_negative(length, "The length must be >= 0."),
            tf.debugging.assert_positive(temperature, "The temperature must be > 0."),
        ]
        with tf.control_dependencies(checks):
            prime_ids = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
        ids = self._sampler.continuation(prime_ids[None], length, temperature, seed)
        return {"text": prime + tf.strings.reduce_join(tf.gather(chars, ids[0]))}


# -- binary addition ---------------------------------------------------------------------------


class _AdderServing(_Serving):
    width = 0  # no `step`, so no states travel
    layout = ()

    def save(self, path: Path) -> None:
        tf.saved_model.save(self, str(path), signatures={"serving_default": self.serve})
        _describe(path, kind="binary_addition")

    @tf.function(input_signature=[tf.TensorSpec((None, None, 2), tf.int32, name="bits")])
    def serve(self, bits: tf.Tensor) -> dict[str, tf.Tensor]:
        """a's and b's bits (B, T, 2), least significant first -> the sum's bits (B, T)."""
        probabilities = self._forward(tf.cast(bits, tf.float32))[..., 0]
        probabilities = tf.cast(probabilities, tf.float32)
        return {"sum_bits": tf.cast(probabilities > 0.5, tf.int32), "probabilities": probabilities}
