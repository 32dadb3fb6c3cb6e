"""A run's configuration: typed dataclasses, saved as JSON in the run directory.

The command line only parses into these; the training functions take them as they are.
`config.json` also records which kind of run it was, the format of the run directory, and the
package version that wrote it, so `sample`, `evaluate` and `--resume` know what they are
looking at. Runs outlive versions: a version of the package reads every run whose format it
knows, whichever version wrote it, and refuses a newer format with the version to install.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from unfold_rnn import _checks
from unfold_rnn._version import __version__

# The run directory's format (docs/cli.md): raise it, and teach `from_json` to read the one
# before, whenever a run written now could not be read as the format says.
RUN_FORMAT = 1


@dataclass
class LanguageModelConfig:
    """`unfold-rnn train-lm`: a character-level language model."""

    kind: ClassVar[str] = "language_model"

    text: str | None = None  # a UTF-8 text file; None: the built-in corpus
    cell: str = "lstm"  # vanilla, gru, lstm, mingru or minlstm
    units: int = 256  # state size of each recurrent layer
    layers: int = 2  # recurrent layers stacked
    embedding_dim: int = 64  # size of each character's embedding
    seq_len: int = 100  # characters per training window
    batch_size: int = 64  # windows per batch
    epochs: int = 10  # epochs to train
    steps_per_epoch: int = 100  # training batches per epoch
    time_budget: float | None = None  # stop after this many seconds of training
    lr: float = 2e-3  # Adam's learning rate (gradients clipped to global norm 5)
    dropout: float = 0.0  # between layers
    val_fraction: float = 0.1  # the text's end kept for validation
    seed: int = 0  # data order and initial weights
    sample_every: int = 1  # epochs between text samples logged to TensorBoard
    checkpoint_every: int = 0  # training steps between checkpoints; 0: at epochs' ends only

    def check(self) -> None:
        for name in ("units", "layers", "embedding_dim", "seq_len", "batch_size", "epochs"):
            _checks.positive_int(name.replace("_", "-"), getattr(self, name))
        _checks.positive_int("steps-per-epoch", self.steps_per_epoch)
        _checks.positive_int("sample-every", self.sample_every)
        _check_common(self)
        _checks.rate("dropout", self.dropout)
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"`val-fraction` must be in (0, 1); got {self.val_fraction}.")


@dataclass
class AdditionConfig:
    """`unfold-rnn train-addition`: the network that learns to add binary numbers."""

    kind: ClassVar[str] = "binary_addition"

    cell: str = "lstm"  # vanilla, gru, lstm, mingru or minlstm
    units: int = 16  # state size
    bits: int = 8  # width of the training sums
    epochs: int = 100  # at most; stops once every held-out bit is confidently right
    problems_per_epoch: int = 2048  # fresh random problems each epoch
    batch_size: int = 32
    lr: float = 1e-2  # Adam's learning rate
    time_budget: float | None = 60.0  # stop after this many seconds of training
    seed: int = 0
    checkpoint_every: int = 0  # training steps between checkpoints; 0: at epochs' ends only

    def check(self) -> None:
        for name in ("units", "epochs", "problems_per_epoch", "batch_size"):
            _checks.positive_int(name.replace("_", "-"), getattr(self, name))
        if not 2 <= self.bits <= 64:
            raise ValueError(f"`bits` must be between 2 and 64; got {self.bits}.")
        _check_common(self)


def _check_common(config: Any) -> None:
    from unfold_rnn.models import CELLS

    if config.cell not in CELLS:
        raise ValueError(f"Unknown cell {config.cell!r}; choose one of {', '.join(CELLS)}.")
    if not config.lr > 0:
        raise ValueError(f"The learning rate must be > 0; got {config.lr}.")
    if config.time_budget is not None and not config.time_budget > 0:
        raise ValueError(f"The time budget must be > 0 seconds; got {config.time_budget}.")
    every = config.checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"`checkpoint-every` must be a whole number >= 0; got {every!r}.")


CONFIGS = {c.kind: c for c in (LanguageModelConfig, AdditionConfig)}


def to_json(config: LanguageModelConfig | AdditionConfig) -> str:
    record = {
        "kind": config.kind,
        "format": RUN_FORMAT,
        "version": __version__,  # which package wrote it, for people and for the refusal below
        **dataclasses.asdict(config),
    }
    return json.dumps(record, indent=2) + "\n"


def from_json(text: str) -> LanguageModelConfig | AdditionConfig:
    """The configuration in `text`, or a ValueError saying why it cannot be used."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"the configuration is not valid JSON ({error})") from None
    if not isinstance(record, dict) or record.get("kind") not in CONFIGS:
        raise ValueError("the configuration does not say which kind of run it belongs to")
    written_by = record.pop("version", None)
    run_format = record.pop("format", 1)  # unfold_rnn 0.2.0 wrote format 1 and did not say so
    if not isinstance(run_format, int) or run_format > RUN_FORMAT:
        raise ValueError(
            f"the run was written by unfold_rnn {written_by} in run format {run_format}, and "
            f"unfold_rnn {__version__} reads formats up to {RUN_FORMAT}; install unfold_rnn "
            f"{written_by} or later for it (pip install 'unfold_rnn>={written_by}')"
        )
    config_class = CONFIGS[record.pop("kind")]
    names = {field.name for field in dataclasses.fields(config_class)}
    unknown = set(record) - names
    if unknown:
        raise ValueError(f"the configuration has unknown fields: {', '.join(sorted(unknown))}")
    return config_class(**record)
