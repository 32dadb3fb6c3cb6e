"""The `unfold-rnn` command's parser and commands (also `python -m unfold_rnn`).

    unfold-rnn train-lm        train a character-level language model
    unfold-rnn train-addition  train the network that learns to add binary numbers
    unfold-rnn sample RUN_DIR  write text from a trained language model to stdout
    unfold-rnn evaluate RUN_DIR --text PATH   loss of a language model on a text
    unfold-rnn inspect RUN_DIR  what the units do: coloured text, gate saturation, carry
    unfold-rnn export RUN_DIR --out DIR   a SavedModel for TF Serving, a LiteRT step model
    unfold-rnn export RUN_DIR --web DIR   a static web page that runs the model (docs/web.md)

Arguments are parsed into the configuration dataclasses, then the API does the work. Every
message for the person at the terminal is produced here; a bad argument or input ends the
command with one line on stderr and a non-zero exit status. Before a command runs, the XLA
settings of `unfold_rnn.xla_settings` go into XLA_FLAGS (each unless the user set that flag).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NoReturn

import tensorflow as tf

from unfold_rnn import runs, xla_settings
from unfold_rnn._version import __version__
from unfold_rnn.config import AdditionConfig, LanguageModelConfig
from unfold_rnn.data import read_text
from unfold_rnn.distribute import make_strategy
from unfold_rnn.evaluation import STREAMS, describe, stream_loss, usable_streams, window_loss
from unfold_rnn.exporting import export
from unfold_rnn.inspect_run import inspect_run
from unfold_rnn.models import CELLS
from unfold_rnn.sampling import Sampler, SamplingOptions
from unfold_rnn.training import train_binary_addition, train_language_model
from unfold_rnn.web import export_web


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not argparse's usage block: what was wrong and where to read more."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shown(default: Any) -> str:
    return "no limit" if default is None else str(default)


def build_parser() -> argparse.ArgumentParser:
    """The command line: every command and option, as `--help` shows them."""
    lm, add = LanguageModelConfig(), AdditionConfig()
    parser = _Parser(
        prog="unfold-rnn",
        description="Recurrent networks unfolded over time: train, watch, sample.",
    )
    parser.add_argument("--version", action="version", version=f"unfold_rnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--checkpoint-every",
            type=int,
            help="training steps between checkpoints (default: 0, at each epoch's end only); "
            "Ctrl-C and SIGTERM always save before stopping",
        )
        p.add_argument("--logdir", default="logs", help="where runs are kept (default: logs)")
        p.add_argument("--run-name", help="the run's directory name (default: kind-cell-time)")
        p.add_argument(
            "--resume",
            action="store_true",
            help="continue the run --run-name (default: the latest unfinished run in --logdir) "
            "from its last checkpoint; options given must equal the run's own",
        )
        p.add_argument(
            "--strategy",
            default="default",
            choices=["default", "mirrored", "multi-worker"],
            help="tf.distribute: one device, all GPUs of this machine, or the machines of "
            "TF_CONFIG; --batch-size stays the global batch (default: default)",
        )

    train_lm = commands.add_parser(
        "train-lm",
        help="train a character-level language model",
        description="Train a character-level language model; watch it with "
        "`tensorboard --logdir logs`, then `unfold-rnn sample RUN_DIR`.",
    )
    train_lm.add_argument("--text", help="a UTF-8 text file (default: the built-in corpus)")
    train_lm.add_argument("--cell", choices=list(CELLS), help=f"the cell (default: {lm.cell})")
    for flag, value, kind, text in [
        ("--units", lm.units, int, "state size of each recurrent layer"),
        ("--layers", lm.layers, int, "recurrent layers stacked"),
        ("--embedding-dim", lm.embedding_dim, int, "size of each character's embedding"),
        ("--seq-len", lm.seq_len, int, "characters per training window"),
        ("--batch-size", lm.batch_size, int, "windows per batch"),
        ("--epochs", lm.epochs, int, "epochs to train"),
        ("--steps-per-epoch", lm.steps_per_epoch, int, "training batches per epoch"),
        ("--time-budget", lm.time_budget, float, "stop after this many seconds of training"),
        ("--lr", lm.lr, float, "Adam's learning rate"),
        ("--dropout", lm.dropout, float, "dropout between layers, in [0, 1)"),
        ("--val-fraction", lm.val_fraction, float, "the text's end kept for validation"),
        ("--seed", lm.seed, int, "seed for the data order and initial weights"),
    ]:
        train_lm.add_argument(flag, type=kind, help=f"{text} (default: {_shown(value)})")
    run_options(train_lm)

    train_add = commands.add_parser(
        "train-addition",
        help="train a network to add binary numbers",
        description="Train on n-bit sums, then test on 8, 16, 32 and 64 bits.",
    )
    train_add.add_argument("--cell", choices=list(CELLS), help=f"the cell (default: {add.cell})")
    for flag, value, kind, text in [
        ("--units", add.units, int, "state size"),
        ("--bits", add.bits, int, "width of the training sums"),
        ("--epochs", add.epochs, int, "epochs at most (training stops once confident)"),
        ("--time-budget", add.time_budget, float, "stop after this many seconds of training"),
        ("--seed", add.seed, int, "seed for the problems and initial weights"),
    ]:
        train_add.add_argument(flag, type=kind, help=f"{text} (default: {_shown(value)})")
    run_options(train_add)

    sample = commands.add_parser(
        "sample",
        help="write text from a trained language model",
        description="Write generated text to stdout, and nothing else.",
    )
    sample.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm run directory")
    sample.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
    sample.add_argument("--length", type=int, default=500, help="characters to generate")
    sample.add_argument("--temperature", type=float, default=1.0, help="> 0 (default: 1.0)")
    sample.add_argument("--top-k", type=int, help="draw only among the k most likely")
    sample.add_argument("--top-p", type=float, help="draw only from this much probability mass")
    sample.add_argument("--greedy", action="store_true", help="always the most likely character")
    sample.add_argument("--seed", type=int, help="makes the text reproducible")
    sample.add_argument(
        "--num-samples", type=int, default=1, help="samples, with a line '---' between them"
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="a language model's loss on a text",
        description="Print the loss in nats/char, bits/char and the perplexity on a text, "
        "read two ways: in windows of the training length, each from zero states (as "
        "training's validation loss), and as streams, the states carried from window to window "
        "(as a language model's loss on a text is usually reported).",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm run directory")
    evaluate.add_argument("--text", required=True, help="a UTF-8 text file")
    evaluate.add_argument(
        "--streams",
        type=int,
        default=STREAMS,
        help=f"parts of the text read side by side as streams (default: {STREAMS})",
    )

    inspect = commands.add_parser(
        "inspect",
        help="see what a trained run's units do",
        description="Find the units that track simple properties of a text (quotes, "
        "brackets, line position, indentation, newlines) or the carry bit, show them and a "
        "chosen unit as coloured text, and plot how often each gate saturates. Files go to "
        "RUN_DIR/inspect (or --out), pictures also to the run's TensorBoard.",
    )
    inspect.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm or train-addition run")
    inspect.add_argument("--text", help="a UTF-8 text (default: from the validation text)")
    inspect.add_argument("--chars", type=int, default=1500, help="characters of it to read")
    inspect.add_argument("--layer", type=int, default=0, help="the chosen unit's layer, from 0")
    inspect.add_argument("--unit", type=int, help="the unit to show besides those found")
    inspect.add_argument("--state", default="h", help="h, or an LSTM's cell state c")
    inspect.add_argument("--out", help="where the files go (default: RUN_DIR/inspect)")

    export = commands.add_parser(
        "export",
        help="a SavedModel and a LiteRT step model, or a static web page",
        description="With --out, write the run's model as a SavedModel in OUT/VERSION (OUT is "
        "then a TF Serving model base path) with the signatures serving_default, step and "
        "generate, and its step as OUT/step.tflite; a binary-addition run gets serving_default "
        "only (docs/export.md). With --web, write a static web page that runs the model in "
        "plain JavaScript, from file:// or any server (docs/web.md). None of it needs "
        "unfold_rnn to run.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm or train-addition run")
    export.add_argument("--out", help="the model base path to write the SavedModel into")
    export.add_argument("--version", type=int, default=1, help="its directory (default: 1)")
    export.add_argument("--web", help="the folder to write the web page into")
    export.add_argument(
        "--web-dtype",
        choices=("float32", "float16"),
        default="float32",
        help="the page's weights; float16 halves their size (default: float32)",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the version, or the web folder, if it exists",
    )
    return parser


SAMPLE_SEPARATOR = "\n---\n"  # between samples: generated text may hold blank lines itself


def _given(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The configuration's options given on the command line (each --flag-name is field
    flag_name); the parser leaves the others None."""
    names = {field.name for field in dataclasses.fields(config_class)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2  # progress bars on a terminal, a line per epoch else


def _check_resume_options(args: argparse.Namespace, config_class: type) -> None:
    """With `--resume`, find the run (--run-name, else the latest unfinished one in
    --logdir) and accept options equal to its saved configuration; any that differ are an
    error naming both values. (--checkpoint-every changes no result: it may differ.)"""
    if args.run_name is None:
        latest = runs.latest_unfinished(args.logdir, config_class.kind)
        if latest is None:
            raise ValueError(
                f"--resume: {args.logdir} holds no unfinished run of this kind; name one "
                "with --run-name, or start a new run without --resume."
            )
        args.run_name = latest.name
        print(f"Resuming {latest}.", file=sys.stderr)
    _, saved, _ = runs.run_to_resume(args.logdir, args.run_name, config_class.kind)
    differ = [
        f"--{name.replace('_', '-')} (saved {getattr(saved, name)}, given {value})"
        for name, value in _given(args, config_class).items()
        if name != "checkpoint_every" and not _same_option(name, getattr(saved, name), value)
    ]
    if differ:
        raise ValueError(
            f"--resume continues {args.run_name} as it was configured, and these options "
            f"differ from it: {', '.join(differ)}. Give the saved values or leave them out; "
            "or start a new run (another --run-name) without --resume."
        )


def _same_option(name: str, saved: Any, given: Any) -> bool:
    if name == "text" and saved is not None:  # one file, however the path is written
        return Path(saved).resolve() == Path(given).resolve()
    return saved == given


def _train(args: argparse.Namespace, config_class: type, train: Any) -> Any:
    if args.resume:
        _check_resume_options(args, config_class)
    config = config_class(**_given(args, config_class))
    strategy = args.strategy  # made by `_set_up_devices`
    return train(config, args.logdir, args.run_name, args.resume, _verbosity(), strategy=strategy)


def _train_lm(args: argparse.Namespace) -> int:
    result = _train(args, LanguageModelConfig, train_language_model)
    if result.best_val_loss is not None:
        nats = result.best_val_loss
        print(
            f"Best validation loss: {nats:.4f} nats/char, {nats / math.log(2):.4f} bits/char, "
            f"perplexity {math.exp(nats):.2f}."
        )
    return _report_run(args, result, f"unfold-rnn sample {result.run_dir}")


def _train_addition(args: argparse.Namespace) -> int:
    result = _train(args, AdditionConfig, train_binary_addition)
    for bits, report in result.report.items():
        print(f"{bits}-bit sums: {report['sum_accuracy']:.1%} of 1,000 right, e.g.")
        for a, b, predicted, truth in report["examples"]:
            mark = "✓" if predicted == truth else f"✗ (true sum {truth})"
            print(f"    {a} + {b} = {predicted} {mark}")
    return _report_run(args, result, None)


def _report_run(args: argparse.Namespace, result: Any, how_to_sample: str | None) -> int:
    """Where the run is and what to do next. The exit status: 128 + the signal's number for
    a run a signal stopped (saved, resumable), 1 for one that diverged, else 0."""
    print(f"Run: {result.run_dir} ({result.epochs} epochs, {result.step} steps).")
    print(f"Watch it: tensorboard --logdir {result.run_dir.parent}")
    if result.signal_number is not None:
        run = f"--logdir {result.run_dir.parent} --run-name {result.run_dir.name}"
        print(
            f"unfold-rnn {args.command}: {result.stopped}. Continue it: "
            f"unfold-rnn {args.command} {run} --resume",
            file=sys.stderr,
        )
        return 128 + result.signal_number
    if result.stopped is not None:
        print(f"unfold-rnn {args.command}: {result.stopped}; try a lower --lr.", file=sys.stderr)
        return 1
    if how_to_sample:
        print(f"Sample from it: {how_to_sample}")
    return 0


def _sample(args: argparse.Namespace) -> None:
    runs.read_config(args.run_dir, "language_model")
    vocab = runs.read_vocab(args.run_dir)
    SamplingOptions(args.temperature, args.top_k, args.top_p, args.greedy).check(len(vocab))
    vocab.encode(args.prime)  # unknown characters fail before the model loads
    model = runs.load_model(Path(args.run_dir) / runs.MODEL)
    samples = Sampler(model, vocab).generate(
        args.prime,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        greedy=args.greedy,
        seed=args.seed,
        num_samples=args.num_samples,
    )
    sys.stdout.write(SAMPLE_SEPARATOR.join(args.prime + sample for sample in samples) + "\n")


def _evaluate(args: argparse.Namespace) -> None:
    if args.streams < 1:
        raise ValueError(f"--streams must be at least 1; got {args.streams}.")
    config = runs.read_config(args.run_dir, "language_model")
    vocab = runs.read_vocab(args.run_dir)
    text = read_text(args.text)
    ids = vocab.encode(text, unknown="skip")
    if len(ids) < len(text):
        print(
            f"Skipped {len(text) - len(ids):,} characters the model does not know.",
            file=sys.stderr,
        )
    model = runs.load_model(Path(args.run_dir) / runs.MODEL)
    windows = window_loss(model, ids, config.seq_len, config.batch_size)
    streams = usable_streams(args.streams, len(ids))
    print(
        f"{describe(windows)}: {len(ids):,} characters in {config.seq_len}-character windows, "
        "each read from zero states (as training's validation loss)"
    )
    print(
        f"{describe(stream_loss(model, ids, streams))}: the same read as {streams} "
        f"stream{'s' if streams > 1 else ''}, states carried from window to window"
    )


def _inspect(args: argparse.Namespace) -> None:
    found = inspect_run(
        args.run_dir, args.text, args.layer, args.unit, args.state, args.chars, args.out
    )
    print("Units that track each property best (Pearson's r):")
    for name, units in found.found.items():
        none = "(none: it does not vary in this text; try --text)"
        best = ", ".join(str(unit) for unit in units) or none
        print(f"  {name:14} {best}")
    if found.chosen is not None and found.chosen_r:
        chosen = found.chosen
        print(f"The chosen unit, {chosen.layer_name} {chosen.state}[{chosen.index}]:")
        print("  " + ", ".join(f"{k} r = {v:+.2f}" for k, v in found.chosen_r.items()))
    if found.gates:
        print("Gates, mean fraction of time left- / right-saturated:")
        for name, (left, right) in found.gates.items():
            print(f"  {name:20} {left:.2f} / {right:.2f}")
    print("Wrote " + ", ".join(str(path) for path in found.files))


def _export(args: argparse.Namespace) -> None:
    if args.out is None and args.web is None:
        raise ValueError(
            "Say where to export: --out DIR for a SavedModel, --web DIR for a web page."
        )
    if args.version < 1:
        raise ValueError(f"--version must be at least 1; got {args.version}.")
    if args.web is not None:
        _export_web(args)
    if args.out is not None:
        _export_saved_model(args)


def _export_web(args: argparse.Namespace) -> None:
    site = export_web(args.run_dir, args.web, args.web_dtype, args.overwrite)
    print(f"Web page: {site.site / 'index.html'} (weights.js: {site.weights_bytes:,} bytes)")
    if site.units:
        print("Units offered: " + ", ".join(unit["label"] for unit in site.units))
    print("Open it in a browser, or publish the folder on any static server (docs/web.md).")


def _export_saved_model(args: argparse.Namespace) -> None:
    exported = export(args.run_dir, args.out, args.version, args.overwrite)
    print(f"SavedModel: {exported.saved_model}")
    if exported.tflite is not None:
        print(f"LiteRT step model: {exported.tflite}")
        order = ", ".join(
            f"{slot.layer}.{slot.state} [{slot.offset}:{slot.offset + slot.size}]"
            for slot in exported.state_layout
        )
        print(f"State width: {exported.state_width}: {order}")
    out = Path(args.out).resolve()
    print(
        "Serve it: docker run -p 8501:8501 "
        f"--mount type=bind,source={out},target=/models/{out.name} "
        f"-e MODEL_NAME={out.name} tensorflow/serving"
    )


COMMANDS = {
    "train-lm": _train_lm,
    "train-addition": _train_addition,
    "sample": _sample,
    "evaluate": _evaluate,
    "inspect": _inspect,
    "export": _export,
}


def _set_up_devices(args: argparse.Namespace) -> None:
    """TensorFlow's devices, before the command runs: for training, within the strategy that
    --strategy names (which replaces the name in `args`; multi-worker training must set its
    cluster up before any device)."""
    if hasattr(args, "strategy"):
        args.strategy = make_strategy(args.strategy)
    else:
        tf.config.list_logical_devices()


def main(
    argv: Sequence[str] | None = None,
    quiet: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> int:
    """The command line; returns the exit status. TensorFlow sets its devices up within
    `quiet()`: the `unfold-rnn` command (`unfold_rnn_command.main`) passes one that keeps
    TensorFlow's notes off stderr."""

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # Before anything is compiled: XLA reads XLA_FLAGS once (see unfold_rnn/xla_settings.py).
    xla_settings.apply_training_settings()
    try:
        with quiet():
            _set_up_devices(args)
        return COMMANDS[args.command](args) or 0
    except (ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"unfold-rnn {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        saved = " (the run keeps its last checkpoint; --resume continues it)"
        print(
            f"unfold-rnn {args.command}: interrupted{saved if 'resume' in args else ''}",
            file=sys.stderr,
        )
        return 130
