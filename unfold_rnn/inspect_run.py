"""`unfold-rnn inspect`: what a trained run's units do, as files and TensorBoard images.

For a language-model run: the units that best track simple properties of a text, and a
chosen unit, as text coloured by activation (`units.html`, `units.png`); per layer and gate,
how often each unit saturates (`gates.png`); the rankings as JSON (`units.json`). For a
binary-addition run: the units that best track the carry bit (`carry.png`, `units.json`).
The pictures also go to the run's TensorBoard, under its `inspect/` run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from unfold_rnn import pictures, runs
from unfold_rnn.config import AdditionConfig
from unfold_rnn.data import CharVocab, addition_problems, default_corpus, read_text
from unfold_rnn.inspection import (
    Unit,
    carries,
    correlations,
    find_units,
    gate_saturation,
    text_properties,
    varies,
)
from unfold_rnn.stepper import (
    Activations,
    LanguageModelStepper,
    Layer,
    layer_activations,
    recurrent_layers,
    state_names,
)


@dataclass
class Inspection:
    """What `inspect` found and where it wrote it."""

    found: dict[str, list[Unit]]  # per property (or "carry"), the best units
    chosen: Unit | None  # the unit asked for, with its correlations in `chosen_r`
    chosen_r: dict[str, float] = field(default_factory=dict)
    gates: dict[str, tuple[float, float]] = field(default_factory=dict)  # mean left, right
    files: list[Path] = field(default_factory=list)


def inspect_run(
    run_dir: str | Path,
    text: str | Path | None = None,
    layer: int = 0,
    unit: int | None = None,
    state: str = "h",
    chars: int = 1500,
    out: str | Path | None = None,
) -> Inspection:
    """Inspect a run: a language model over `chars` characters of `text` (a file; by
    default, of the first 8 windows of the run's validation text, the first in which the
    most text properties vary), or a binary-addition model over new
    problems. `layer`, `unit` and `state` choose a unit to show besides those found; the
    files go to `out` (default: `<run_dir>/inspect`)."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    if chars < 2:
        raise ValueError(f"--chars must be at least 2; got {chars}.")
    out = Path(out) if out is not None else run_dir / "inspect"
    model = runs.load_model(run_dir / runs.MODEL)
    recurrent = recurrent_layers(model)
    if not 0 <= layer < len(recurrent):
        raise ValueError(f"--layer must be from 0 to {len(recurrent) - 1}; got {layer}.")
    units = recurrent[layer].cell.units
    if unit is not None and not 0 <= unit < units:
        raise ValueError(f"--unit must be from 0 to {units - 1} in layer {layer}; got {unit}.")
    names = state_names(recurrent[layer])
    if state not in names:
        raise ValueError(f"--state must be {' or '.join(names)} for layer {layer}; got {state}.")
    out.mkdir(parents=True, exist_ok=True)
    if config.kind == "language_model":
        return _language_model(run_dir, config, model, text, layer, unit, state, chars, out)
    return _addition(run_dir, config, recurrent, layer, unit, state, out)


def sample_text(config, vocab: CharVocab, text: str | Path | None, chars: int) -> str:
    if text is not None:
        whole = read_text(text)
        alphabet = set(vocab.chars)
        known = "".join(c for c in whole if c in alphabet)
        if not known:
            raise ValueError(f"{text} has none of the model's characters.")
        return known[:chars]
    whole = read_text(config.text) if config.text else default_corpus()
    start = round(len(whole) * (1 - config.val_fraction))
    starts = range(start, len(whole), chars)[:WINDOWS]
    windows = [whole[at : at + chars] for at in starts]
    return max(windows, key=_properties_varying)  # the first of the most telling ones


WINDOWS = 8  # windows of the validation text tried for a default sample


def _properties_varying(text: str) -> int:
    """In how many of the text properties the text varies (a sample without quotes cannot
    show a quote unit)."""
    return sum(varies(values) for values in text_properties(text).values())


def _language_model(run_dir, config, model, text, layer, unit, state, chars, out) -> Inspection:
    vocab = runs.read_vocab(run_dir)
    sample = sample_text(config, vocab, text, chars)
    activations = LanguageModelStepper(model).activations(vocab.encode(sample)[None])
    properties = text_properties(sample)
    found = find_units(activations, properties)
    name = activations[layer].layer
    chosen_unit = 0 if unit is None else unit
    chosen = Unit(layer, name, state, chosen_unit, 0.0)
    chosen_values = activations[layer].states[state][0, :, chosen_unit]
    chosen_r = {p: float(correlations(chosen_values[:, None], v)[0]) for p, v in properties.items()}
    traces = [pictures.Trace(f"chosen: {name} {state}[{chosen_unit}]", chosen_values)]
    for prop, best in found.items():
        if not best:
            continue  # the text does not vary in this property
        top = best[0]
        values = activations[top.layer].states[top.state][0, :, top.index]
        traces.append(pictures.Trace(f"tracks {prop}: {top}", values))
    heading = f"Units of {run_dir.name} over {len(sample):,} characters"
    images = {"units": pictures.text_png(sample, traces)}
    files = [
        pictures.write(out / "units.html", pictures.text_html(sample, traces, heading)),
        pictures.write(out / "units.png", images["units"]),
    ]
    panels, gates = [], {}
    for recorded in activations:
        for gate, values in recorded.gates.items():
            left, right = gate_saturation(values)
            panels.append((f"{recorded.layer} {gate} gate", left, right))
            gates[f"{recorded.layer}/{gate}"] = (float(left.mean()), float(right.mean()))
    if panels:
        images["gates"] = pictures.saturation_png(panels)
        files.append(pictures.write(out / "gates.png", images["gates"]))
    files.append(_write_json(out, found, chosen, chosen_r, gates))
    _to_tensorboard(run_dir, images)
    return Inspection(found, chosen, chosen_r, gates, files)


def addition_activations(layer: Layer, config: AdditionConfig) -> tuple[Activations, np.ndarray]:
    """An adder's recurrent layer over new problems of the run's size, from zero states as
    at inference: its activations, and the carry out of each position (num, bits)."""
    bits, _ = addition_problems(500, config.bits, seed=config.seed + 101)
    return layer_activations(layer, bits), carries(bits)


def _addition(run_dir, config, recurrent, layer, unit, state, out) -> Inspection:
    recorded, carry = addition_activations(recurrent[layer], config)
    # An adder has one recurrent layer (--layer 0), so find_units numbers it right.
    found = find_units([recorded], {"carry": carry})
    top = found["carry"][0]
    chosen = Unit(layer, recurrent[layer].name, state, unit, 0.0) if unit is not None else None
    shown = chosen or top
    values = recorded.states[shown.state][..., shown.index]
    r = float(correlations(values[..., None], carry)[0])
    title = f"{shown.layer_name} {shown.state}[{shown.index}] against the carry (r = {r:+.2f})"
    images = {"carry": pictures.carry_png(values, carry, title)}
    files = [pictures.write(out / "carry.png", images["carry"])]
    chosen_r = {"carry": r} if chosen else {}
    files.append(_write_json(out, found, chosen, chosen_r, {}))
    _to_tensorboard(run_dir, images)
    return Inspection(found, chosen, chosen_r, {}, files)


def _write_json(out: Path, found, chosen, chosen_r, gates) -> Path:
    record = {
        "best_units": {k: [asdict(u) for u in v] for k, v in found.items()},
        "chosen": None if chosen is None else {**asdict(chosen), "r": chosen_r},
        "gate_saturation": {k: {"left": a, "right": b} for k, (a, b) in gates.items()},
    }
    return pictures.write(out / "units.json", json.dumps(record, indent=2) + "\n")


def _to_tensorboard(run_dir: Path, images: dict[str, bytes]) -> None:
    """The PNGs as images of the run's `inspect` run in TensorBoard (added, never replaced)."""
    writer = tf.summary.create_file_writer(str(run_dir / "inspect"))
    with writer.as_default():
        for name, png in images.items():
            image = tf.io.decode_png(png, channels=4)
            tf.summary.image(f"inspect/{name}", image[None], step=0)
    writer.close()
