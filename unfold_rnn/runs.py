"""The run directory, `<logdir>/<run-name>/`: everything `sample`, `evaluate` and `--resume`
need, nothing they must guess. Every file is written atomically.

    config.json           the run's configuration, its kind and the package version
    vocab.json            the characters (language models)
    model.keras           the best model so far, by validation loss
    checkpoint/last.keras the model and optimizer after the last completed epoch
    checkpoint/state.json that epoch, the best validation loss, whether the run finished
    train/, validation/   TensorBoard event files
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from unfold_rnn import config as config_lib
from unfold_rnn._files import write_atomically, write_text_atomically
from unfold_rnn.data import CharVocab

CONFIG, VOCAB, MODEL = "config.json", "vocab.json", "model.keras"
LAST, STATE = "checkpoint/last.keras", "checkpoint/state.json"


def default_run_name(config: Any) -> str:
    short = {"language_model": "lm", "binary_addition": "add"}[config.kind]
    return f"{short}-{config.cell}-{time.strftime('%Y%m%d-%H%M%S')}"


def new_run_dir(logdir: str | Path, run_name: str | None, config: Any) -> Path:
    """Where a new run will live; an error if a run is there already (never overwritten)."""
    run_dir = Path(logdir) / (run_name or default_run_name(config))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(
            f"{run_dir} already holds a run. Continue it with --resume, or choose another "
            "--run-name."
        )
    return run_dir


def create(run_dir: Path, config: Any) -> Path:
    """Make the run directory from `new_run_dir`, holding `config.json`."""
    (run_dir / "checkpoint").mkdir(parents=True, exist_ok=True)
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
    """Where a run stands: epochs completed, the best validation loss, and whether it ended."""

    epoch: int = 0
    best_val_loss: float | None = None
    finished: bool = False


def read_state(run_dir: str | Path) -> State:
    path = Path(run_dir) / STATE
    if not path.is_file():
        return State()
    try:
        return State(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:
        raise ValueError(f"Cannot use {path}: {error}.") from None


def write_state(run_dir: str | Path, state: State) -> None:
    write_text_atomically(Path(run_dir) / STATE, json.dumps(state.__dict__) + "\n")
