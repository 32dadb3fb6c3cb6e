"""The package itself: what importing it does, and its public names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import unfold_rnn

# Run in a fresh interpreter: once TensorFlow and Keras have loaded (both open descriptors of
# their own), sys.argv answers nothing and the descriptor calls fail, so a package import that
# read the one or touched the other would end with a traceback.
_IMPORT_WITHOUT_SIDE_EFFECTS = """
import os, sys
import keras, tensorflow

class Untouchable(list):
    def __getitem__(self, i): raise AssertionError("sys.argv was read")
    def __len__(self): raise AssertionError("sys.argv was read")
    def __iter__(self): raise AssertionError("sys.argv was read")

def refuse(*args): raise AssertionError("a file descriptor was touched")

sys.argv = Untouchable()
os.dup = os.dup2 = os.close = os.open = refuse
import unfold_rnn
for name in ("LSTM", "GRU", "VanillaRNN", "MinGRU", "MinLSTM", "Unfold", "LSTMCell", "GRUCell",
             "VanillaCell", "MinGRUCell", "MinLSTMCell", "OnePassLSTMCell", "BitsPerCharacter",
             "Perplexity", "WholeSequenceAccuracy", "InitialStateNoise"):
    print(keras.saving.get_registered_object(f"unfold_rnn>{name}") is getattr(unfold_rnn, name))
"""


@pytest.mark.slow
def test_importing_the_package_registers_every_class_and_has_no_other_side_effect():
    """As every Keras extension: after `import unfold_rnn`, Keras knows each serializable
    class by the name a saved model gives it."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_SIDE_EFFECTS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"] * 16


def test_every_public_name_is_there():
    for name in unfold_rnn.__all__:
        assert getattr(unfold_rnn, name) is not None
    assert "LSTM" in dir(unfold_rnn)


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports, anywhere in it; `from unfold_rnn import X`
    is module X when X is one, else the package's `__init__` ("_")."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "unfold_rnn":
            names = [f"unfold_rnn.{a.name if a.name in modules else '_'}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("unfold_rnn.")}
        found |= {ENTRY.stem} & set(names)
    return found - {path.stem}


def test_no_module_imports_one_that_imports_it_back():
    """Directly or through others, the package's `__init__` and the command's entry module
    included."""
    graph = {path.stem: _imports(path) for path in [*PACKAGE.glob("*.py"), ENTRY]}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for module in graph.get(start, ()):
            if module == goal or (module not in seen and reaches(module, goal, seen | {module})):
                return True
        return False

    graph["_"] = graph.pop("__init__")
    cycles = [m for m in graph if m != "_" and reaches(m, m, {m})]
    assert cycles == []


# -- the code reads in one sitting ------------------------------------------------------------

PACKAGE = Path(unfold_rnn.__file__).parent
ENTRY = PACKAGE.parent / "unfold_rnn_command.py"  # the command's, outside the package


def _functions() -> list[tuple[str, ast.FunctionDef, int]]:
    """Every function under unfold_rnn/, with its lines of code (docstring left out)."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    body = body[1:]  # the docstring
                lines = (body[-1].end_lineno - body[0].lineno + 1) if body else 0
                found.append((f"{path.name}:{node.name}", node, lines))
    return found


def test_no_function_is_longer_than_a_screen():
    too_long = [
        (name, lines)
        for name, _, lines in _functions()
        if lines > 60 and name != "cli.py:build_parser"  # the argparse table
    ]
    assert too_long == []
    lengths = {name: lines for name, _, lines in _functions()}
    assert lengths["layers.py:call"] <= 50
    unfold = next(n for name, n, _ in _functions() if name == "scan.py:unfold")
    assert unfold.end_lineno - unfold.lineno + 1 <= 60  # the reference, docstring and all


def test_private_helpers_have_short_docstrings():
    long_docs = [
        name
        for name, node, _ in _functions()
        if name.split(":")[1].startswith("_")
        and len((ast.get_docstring(node) or "").splitlines()) > 25
    ]
    assert long_docs == []


def test_no_measurement_in_the_code():
    """Figures belong in docs/performance.md and docs/experiments.md, not in the code."""
    pattern = re.compile(r" ms\b|MB|MiB|tokens/s|x faster")
    hits = [
        f"{path.name}:{i}"
        for path in sorted(PACKAGE.glob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
