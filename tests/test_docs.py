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
