"""The run directory, `<logdir>/<run-name>/`: everything `sample`, `evaluate` and `--resume`
need, nothing they must guess. Every file is written atomically.

    config.json           the run's configuration, its kind and the package version
    vocab.json            the characters (language models)
    model.keras           the best model so far, by validation loss
    checkpoint/step-N.keras  the model and optimizer after training step N (the last saved)
    checkpoint/state.json where the run stands: the step and epoch of that checkpoint, the
                          random generators' states, the training metrics' sums so far
                          in the epoch, the best validation loss, training time, whether
                          the run finished
    train/, validation/   TensorBoard event files

A checkpoint is committed by writing `state.json`, which names its model file: the model file
is written first under a new name, and older ones are removed only after. A crash at any
moment leaves the previous checkpoint or the new one, whole, never a mix.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from unfold_rnn import config as config_lib
from unfold_rnn._files import write_atomically, write_text_atomically
from unfold_rnn.data import CharVocab

CONFIG, VOCAB, MODEL = "config.json", "vocab.json", "model.keras"
CHECKPOINTS = "checkpoint"
STATE = f"{CHECKPOINTS}/state.json"


def default_run_name(config: Any) -> str:
    short = {"language_model": "lm", "binary_addition": "add"}[config.kind]
    return f"{short}-{config.cell}-{time.strftime('%Y%m%d-%H%M%S')}"


def new_run_dir(logdir: str | Path, run_name: str | None, config: Any) -> Path:
    """Where a new run will live; an error if a run is there already (never overwritten)."""
    run_dir = Path(logdir) / (run_name or default_run_name(config))
    if run_dir.exists() and any(_holds_more_than_a_start(entry) for entry in run_dir.iterdir()):
        raise ValueError(
            f"{run_dir} already holds a run. Continue it with --resume, or choose another "
            "--run-name."
        )
    return run_dir


def _holds_more_than_a_start(entry: Path) -> bool:
    """Whether `entry` of a directory is more than what `create` makes before `config.json`
    (a run killed then can be started again in the same place)."""
    if entry.name == CHECKPOINTS:
        return any(entry.iterdir())
    return entry.name != VOCAB and not (entry.name.startswith(".") and ".tmp" in entry.name)


def create(run_dir: Path, config: Any, vocab: CharVocab | None = None) -> Path:
    """Make the run directory from `new_run_dir`: the vocabulary, if any, then `config.json`
    last, so that a directory with a configuration is a whole run."""
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    if vocab is not None:
        vocab.save(run_dir / VOCAB)
    write_text_atomically(run_dir / CONFIG, config_lib.to_json(config))
    return run_dir


def read_config(run_dir: str | Path, kind: str | None = None) -> Any:
    """The run's configuration, checked to be of `kind` if given."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"No run directory at {run_dir}.")
    path = run_dir / CONFIG
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run directory: it has no {CONFIG}.")
    try:
        config = config_lib.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot use {path}: {error}.") from None
    if kind is not None and config.kind != kind:
        raise ValueError(
            f"{run_dir} holds a {config.kind.replace('_', ' ')} run, not a "
            f"{kind.replace('_', ' ')} run."
        )
    return config


def run_to_resume(logdir: str | Path, run_name: str | None, kind: str) -> tuple[Path, Any, State]:
    """The directory, configuration and state of the run of `kind` that `--resume` is to
    continue, or a ValueError saying why there is none."""
    if not run_name:
        raise ValueError("--resume needs the --run-name of the run to continue.")
    run_dir = Path(logdir) / run_name
    if not (run_dir / CONFIG).is_file():
        raise ValueError(
            f"There is no run to resume at {run_dir}; start one without --resume."
            if not run_dir.is_dir() or not any(run_dir.iterdir())
            else f"{run_dir} holds no run to resume (it has no {CONFIG})."
        )
    config = read_config(run_dir, kind)
    state = read_state(run_dir)
    if state.finished:
        raise ValueError(f"{run_dir} has already finished its {state.epoch} epochs.")
    return run_dir, config, state


def read_vocab(run_dir: str | Path) -> CharVocab:
    return CharVocab.load(Path(run_dir) / VOCAB)


def load_model(path: str | Path) -> keras.Model:
    """A saved model, loaded with Keras's safe mode (no code from the file is run)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No model at {path}: the run has not finished an epoch yet.")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ValueError(
            f"{path} is not a usable model file (damaged or not made by unfold_rnn): {first_line}"
        ) from None


def save_model(model: keras.Model, path: str | Path) -> None:
    write_atomically(Path(path), model.save)


@dataclass
class State:
    """Where a run stands, as of its last checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # training steps (batches) completed, over all epochs
    checkpoint: str | None = None  # the model file in checkpoint/ saved at `step`
    random_states: list[list[int]] = field(default_factory=list)  # the model's generators
    best_val_loss: float | None = None
    training_seconds: float = 0.0  # time spent training, validation left out
    finished: bool = False
    # The training metrics' variables (Keras's running sums and counts) at `step`, when it
    # falls mid-epoch: a resumed run adds them back, so the epoch's averages cover all of
    # its steps. Empty at an epoch's end.
    epoch_metrics: list[list[float]] = field(default_factory=list)


def read_state(run_dir: str | Path) -> State:
    path = Path(run_dir) / STATE
    if not path.is_file():
        return State()
    try:
        return State(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot use {path}: {error}.") from None


def write_state(run_dir: str | Path, state: State) -> None:
    write_text_atomically(Path(run_dir) / STATE, json.dumps(state.__dict__) + "\n")


def metric_variables(model: keras.Model) -> list[keras.Variable]:
    """The variables of the model's metrics, the loss's running mean included (Keras resets
    them at each epoch's start)."""
    return [variable for metric in model.metrics for variable in metric.variables]


def _random_generators(model: keras.Model) -> list[keras.Variable]:
    """The state of each of the model's random generators (Dropout's masks). A `.keras` file
    does not keep them; the checkpoint does, so a resumed run draws the masks it would have."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def save_checkpoint(run_dir: str | Path, model: keras.Model, state: State) -> None:
    """Save the model and its optimizer as they are after `state.step` steps, then commit
    `state` naming that file; then remove older checkpoints (and any left half-written)."""
    folder = Path(run_dir) / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:09d}.keras"
    if state.checkpoint != name or not (folder / name).is_file():
        save_model(model, folder / name)
    state.checkpoint = name
    state.random_states = [v.numpy().tolist() for v in _random_generators(model)]
    write_state(run_dir, state)
    for old in folder.glob("*.keras"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: str | Path, state: State) -> keras.Model:
    """The model and optimizer of the run's checkpoint, random generators restored."""
    if state.checkpoint is None:
        raise ValueError(f"{run_dir} has no checkpoint to resume from.")
    model = load_model(Path(run_dir) / CHECKPOINTS / state.checkpoint)
    generators = _random_generators(model)
    if len(generators) != len(state.random_states):
        raise ValueError(
            f"{Path(run_dir) / STATE} records {len(state.random_states)} random generators, "
            f"but its model has {len(generators)}: the checkpoint is not this run's."
        )
    for variable, value in zip(generators, state.random_states, strict=True):
        variable.assign(np.array(value, dtype=variable.dtype))
    return model


def latest_unfinished(logdir: str | Path, kind: str) -> Path | None:
    """The run of `kind` in `logdir` that has not finished and was checkpointed (or, before
    its first checkpoint, configured) last; None if there is none."""
    candidates = []
    for config_path in Path(logdir).glob(f"*/{CONFIG}"):
        run_dir = config_path.parent
        try:
            if read_config(run_dir).kind != kind or read_state(run_dir).finished:
                continue
        except ValueError:
            continue  # not a run this command can continue
        state_path = run_dir / STATE
        touched = (state_path if state_path.is_file() else config_path).stat().st_mtime
        candidates.append((touched, run_dir))
    return max(candidates)[1] if candidates else None
