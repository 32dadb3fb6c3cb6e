"""The documentation as a reader meets it: every relative link leads somewhere, and every
`unfold-rnn` command README.md shows is one the command line takes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from unfold_rnn import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
SUBCOMMANDS = ["train-lm", "train-addition", "sample", "evaluate", "inspect", "export"]
COMMAND = re.compile(r"unfold-rnn(?: [^`#\n|]*)?")  # up to a code span's end, a comment, a cell


def _relative_links(page: Path) -> list[str]:
    return [
        link
        for link in LINK.findall(page.read_text(encoding="utf-8"))
        if not re.match(r"[a-z]+:", link) and not link.startswith("#")
    ]


def _readme_commands() -> list[str]:
    """Every `unfold-rnn ...` in README.md, in code blocks and code spans, prose left out."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    parts = [part.replace("\\|", "|") for part in [*blocks, *spans]]  # a table's escaped |
    return [command.strip() for part in parts for command in COMMAND.findall(part)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert page.is_file()
    missing = [
        link for link in _relative_links(page) if not (page.parent / link.split("#")[0]).exists()
    ]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"


def _options(command: str, capsys) -> str:
    """`unfold-rnn COMMAND --help` as the command line prints it."""
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([command, "--help"])
    return capsys.readouterr().out


def test_every_command_in_the_readme_parses(capsys):
    """A whole command (no `[...]` or `...`) parses as it stands; a synopsis names only
    subcommands and options that exist."""
    commands = _readme_commands()
    assert any(c.startswith("unfold-rnn train-lm") for c in commands)
    for command in commands:
        words = shlex.split(command.replace("<", "").replace(">", ""))[1:]
        if not words or words[0].startswith("--"):
            continue  # `unfold-rnn`, `unfold-rnn --help`
        assert words[0] in SUBCOMMANDS, command
        if "[" in command or "..." in command or "--help" in words:
            help_text = _options(words[0], capsys)
            for flag in re.findall(r"--[a-z-]+", command):
                assert re.search(rf"(?<![\w-]){flag}\b", help_text), (flag, command)
        else:
            cli.build_parser().parse_args(words)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_docs_cli_names_every_option(command, capsys):
    """docs/cli.md is the reference: each option a command's --help lists is there."""
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"unfold-rnn {command}" in reference
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", _options(command, capsys))) - {"--help"}
    assert options, command
    assert not [o for o in sorted(options) if f"`{o}" not in reference], command


def _own_cell_class() -> type:
    """The cell of docs/design.md's "A cell of your own", run as the page shows it."""
    page = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = page.split("### A cell of your own", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert len(code.splitlines()) <= 32  # "in 30 lines", its two imports aside
    namespace: dict = {}
    exec(compile(code, "docs/design.md", "exec"), namespace)
    return namespace["IndRNNCell"]


def test_the_cell_of_your_own_in_the_design_page_runs_in_unfold():
    """Against a plain numpy loop of its equation, masked and read backwards; and it trains."""
    import keras
    import numpy as np

    import unfold_rnn

    rng = np.random.default_rng(7)
    layer = unfold_rnn.Unfold(
        _own_cell_class()(5), return_sequences=True, return_state=True, go_backwards=True
    )
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = rng.random((3, 6)) > 0.3
    layer(x)
    kernel, u, bias = (rng.normal(size=w.shape).astype("float32") for w in layer.get_weights())
    layer.set_weights([kernel, u, bias])
    outputs, final = layer(x, mask=mask)

    h = np.zeros((3, 5), "float32")
    expected = np.zeros((3, 6, 5), "float32")
    for t in reversed(range(6)):  # go_backwards: outputs in the order read
        step = np.maximum(0.0, x[:, t] @ kernel + u * h + bias)
        h = np.where(mask[:, t, None], step, h)
        expected[:, 5 - t] = h
    seen = np.cumsum(mask[:, ::-1], axis=1) > 0  # zeros before the first kept step
    np.testing.assert_allclose(outputs, np.where(seen[..., None], expected, 0.0), atol=1e-5)
    np.testing.assert_allclose(final, h, atol=1e-5)

    model = keras.Sequential([keras.Input((None, 4)), unfold_rnn.Unfold(_own_cell_class()(8))])
    model.add(keras.layers.Dense(1))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    y = x.sum(axis=(1, 2))[:, None]
    losses = model.fit(x, y, epochs=20, verbose=0).history["loss"]
    assert losses[-1] < losses[0] / 2
