"""A trained run as a static web page: the char-LM demo, or the adder's, in plain JavaScript.

`export_web(run_dir, out)` writes

    OUT/index.html     the page: for a language model, a prime, the sampling controls,
                       Generate and Stop, and each character coloured by a chosen unit; for
                       an adder, two numbers, the sum written bit by bit, the carry unit below
    OUT/page.js        the page's controls (for an adder, adder.js)
    OUT/page.css       how both pages look
    OUT/unfold_rnn.js  the model in plain JavaScript: load, step, generate (docs/web.md)
    OUT/weights.js     the run's weights, vocabulary and units, as one classic script that
                       sets `UNFOLD_RNN_DATA`: a page loads it with a <script> tag, from
                       file:// as from any server, where fetch() and modules would fail

The page has no server code and loads nothing from the network. The JavaScript steps each
layer by the equations its cell names (`equations()`, unfold_rnn.contract), over the cell's
weights in Keras's layout, so a new cell reaches the page by naming equations it knows.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import keras
import numpy as np

from unfold_rnn import runs
from unfold_rnn._files import replace_dir
from unfold_rnn.inspect_run import addition_activations
from unfold_rnn.inspection import find_units
from unfold_rnn.stepper import LanguageModelStepper, Layer, recurrent_layers, state_names

FORMAT = 1  # of weights.js; unfold_rnn.js refuses others
DTYPES = {"float32": "<f4", "float16": "<f2"}  # little-endian, as every browser's arrays
# What unfold_rnn.js implements: the five cells' equations and these activations.
EQUATIONS = ("vanilla", "gru", "lstm", "mingru", "minlstm")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "softsign")
# The page and its script, by the run's kind; both load page.css, unfold_rnn.js and weights.js.
PAGES = {"language_model": ("index.html", "page.js"), "binary_addition": ("adder.html", "adder.js")}


@dataclass(frozen=True)
class WebExport:
    """Where the page went, how large its weights are, and the units it offers."""

    site: Path  # the folder; open site/index.html
    weights_bytes: int  # the size of weights.js
    units: tuple[dict[str, Any], ...]  # one-click units: the inspected ones, or the carry


def export_web(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str = "float32",
    overwrite: bool = False,
) -> WebExport:
    """Write the run's model (its best, `model.keras`) as a static web page in `out`.

    `dtype` "float16" halves the weights' size. For a language model whose run has been
    inspected (`unfold-rnn inspect`), the units found there become one-click choices.

    Raises ValueError, and changes nothing in `out`, if `run_dir` is not a run with a usable
    model, if a layer's cell follows equations the page does not know, if `out` holds
    something and `overwrite` is false, or if `out` cannot be written.
    """
    if dtype not in DTYPES:
        raise ValueError(f"The web dtype must be {' or '.join(DTYPES)}; got {dtype!r}.")
    run_dir, out = Path(run_dir), Path(out)
    config = runs.read_config(run_dir)
    model = runs.load_model(run_dir / runs.MODEL)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; the page is a folder. Choose another place for it.")
    if out.resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise ValueError(f"{out} holds the run itself; write the page somewhere else.")
    if not overwrite and out.exists() and any(out.iterdir()):
        raise ValueError(
            f"{out} already holds files. Choose another folder, or replace it (--overwrite)."
        )
    arrays = _Arrays(DTYPES[dtype])
    if config.kind == "language_model":
        data = _language_model(run_dir, model, arrays)
    else:
        data = _adder(model, config, arrays)
    data = {"format": FORMAT, "kind": config.kind, "run": run_dir.name, "dtype": dtype, **data}
    data["data"] = arrays.encoded()
    script = (
        f"// The weights of the unfold_rnn run {run_dir.name!r}, for unfold_rnn.js (docs/web.md).\n"
        f"globalThis.UNFOLD_RNN_DATA = {json.dumps(data, separators=(',', ':'))};\n"
    )
    _write_site(out, script, PAGES[config.kind])
    return WebExport(out, len(script.encode("utf-8")), tuple(data["units"]))


def _write_site(out: Path, script: str, page: tuple[str, str]) -> None:
    """The page's files in a new folder beside `out`, renamed into place when all are written;
    on failure, `out` is as it was."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        staging.chmod(_new_folder_mode())  # mkdtemp's 0700 would keep a web server out
    except OSError as error:
        raise ValueError(f"Cannot write to {out}: {error.strerror or error}.") from None
    try:
        assets = resources.files("unfold_rnn") / "web_assets"
        html, code = page
        (staging / "index.html").write_bytes((assets / html).read_bytes())
        for name in ("unfold_rnn.js", "page.css", code):
            (staging / name).write_bytes((assets / name).read_bytes())
        (staging / "weights.js").write_text(script, encoding="utf-8")
        replace_dir(staging, out)
    except OSError as error:
        raise ValueError(f"Cannot write to {out}: {error.strerror or error}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _new_folder_mode() -> int:
    """The mode `mkdir` gives a new folder: 0777 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


class _Arrays:
    """The model's arrays end to end in one buffer; each is described by its shape and its
    offset in numbers, and the buffer travels as base64."""

    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, name: str, array: Any) -> dict[str, Any]:
        values = np.asarray(array, np.float32)
        with np.errstate(over="ignore"):  # said below, in words
            stored = values.astype(self.dtype)
        if not np.all(np.isfinite(stored)):
            raise ValueError(
                f"{name} has values {self.dtype.name} cannot hold (beyond ±65504, or not finite); "
                "export it as float32."
            )
        entry = {"shape": list(values.shape), "offset": self.size}
        self.parts.append(stored.ravel())
        self.size += stored.size
        return entry

    def encoded(self) -> str:
        buffer = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        return base64.b64encode(buffer.tobytes()).decode("ascii")


def _language_model(run_dir: Path, model: keras.Model, arrays: _Arrays) -> dict[str, Any]:
    stepper = LanguageModelStepper(model)
    vocab = runs.read_vocab(run_dir)
    if stepper.vocab_size != len(vocab):
        raise ValueError(
            f"The model predicts {stepper.vocab_size} characters but the run's vocabulary has "
            f"{len(vocab)}: they do not belong together."
        )
    layers = [_layer(layer, arrays) for layer in stepper.recurrent]
    return {
        "vocab": list(vocab.chars),
        "embedding": arrays.add("The embedding", stepper.embedding.embeddings.numpy()),
        "layers": layers,
        "head": _dense(stepper.logits, arrays),
        "units": _inspected_units(run_dir, layers),
    }


def _adder(model: keras.Model, config: Any, arrays: _Arrays) -> dict[str, Any]:
    recurrent = recurrent_layers(model)
    head = model.layers[-1]
    if len(recurrent) != 1 or not isinstance(head, keras.layers.Dense):
        raise ValueError(
            "This model is not an adder as build_binary_addition_model makes it (one recurrent "
            "layer, then a Dense layer)."
        )
    recorded, carry = addition_activations(recurrent[0], config)
    best = find_units([recorded], {"carry": carry})["carry"]
    units = [_unit("carry", best[0].layer, best[0].state, best[0].index, best[0].r)] if best else []
    return {
        "bits": config.bits,
        "layers": [_layer(recurrent[0], arrays)],
        "head": _dense(head, arrays),
        "units": units,
    }


def _layer(layer: Layer, arrays: _Arrays) -> dict[str, Any]:
    """A recurrent layer as the page steps it: its cell's equations and weights."""
    cell = layer.cell
    if not hasattr(cell, "equations"):
        raise ValueError(
            f"{layer.name}'s cell, {type(cell).__name__}, does not say which equations its step "
            "follows (`equations()`, unfold_rnn.contract), so the web page cannot step it."
        )
    equations = cell.equations()
    if equations.name not in EQUATIONS:
        raise ValueError(
            f"{layer.name} follows the equations {equations.name!r}; the web page knows "
            f"{', '.join(EQUATIONS)}."
        )
    for setting, value in equations.settings.items():
        if setting.endswith("activation") and value not in ACTIVATIONS:
            raise ValueError(
                f"{layer.name}'s {setting.replace('_', ' ')} is {value}; the web page knows "
                f"{', '.join(ACTIVATIONS)}."
            )
    if getattr(layer, "go_backwards", False):
        raise ValueError(f"{layer.name} reads its sequence backwards; the web page steps forwards.")
    weights = {
        w: arrays.add(f"{layer.name}'s {w}", getattr(cell, w).numpy()) for w in equations.weights
    }
    return {
        "name": layer.name,
        "equations": equations.name,
        "settings": equations.settings,
        "units": cell.units,
        "states": list(state_names(layer)),
        "weights": weights,
    }


def _dense(dense: keras.layers.Dense, arrays: _Arrays) -> dict[str, Any]:
    activation = keras.activations.serialize(dense.activation)
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{dense.name}'s activation is {activation}; the web page knows "
            f"{', '.join(ACTIVATIONS)}."
        )
    weights = {"kernel": arrays.add(f"{dense.name}'s kernel", dense.kernel.numpy())}
    if dense.use_bias:
        weights["bias"] = arrays.add(f"{dense.name}'s bias", dense.bias.numpy())
    return {"name": dense.name, "activation": activation, "weights": weights}


def _unit(label: str, layer: int, state: str, unit: int, r: float) -> dict[str, Any]:
    return {"label": label, "layer": layer, "state": state, "unit": unit, "r": round(r, 3)}


def _inspected_units(run_dir: Path, layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best unit per text property that `unfold-rnn inspect` found, if it has run."""
    path = run_dir / "inspect" / "units.json"
    if not path.is_file():
        return []
    stale = f"{path} does not describe this model: run `unfold-rnn inspect` again, or remove it."
    try:
        best = json.loads(path.read_text(encoding="utf-8"))["best_units"]
        units = [
            _unit(prop.replace("_", " "), u["layer"], u["state"], u["index"], u["r"])
            for prop, found in best.items()
            for u in found[:1]
        ]
    except (ValueError, KeyError, TypeError, IndexError):
        raise ValueError(stale) from None
    for unit in units:
        layer = unit["layer"]
        if not (
            isinstance(layer, int)
            and 0 <= layer < len(layers)
            and unit["state"] in layers[layer]["states"]
            and 0 <= unit["unit"] < layers[layer]["units"]
        ):
            raise ValueError(stale)
    return units
