"""Measure, then rewrite the tables of docs/performance.md and README.md from the results.

    python benchmarks/report.py --text tinyshakespeare.txt   # every table (about two hours)
    python benchmarks/report.py --only speed memory          # some of them
    python benchmarks/report.py --render                     # rewrite them, measuring nothing

Each measurement runs one benchmark command and saves its output, headed by the command,
the commit, the CPU, the versions and the date, as benchmarks/results/<table>.txt. The
tables in the Markdown pages sit between `<!-- table:NAME -->` and `<!-- end -->` and are
made from those files only, so a page never shows a figure its file does not hold.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = [ROOT / "docs" / "performance.md", ROOT / "README.md"]

SPEED = "speed.py --systems ours ours+xla keras torch --configs base --rounds 3 --batches 12"
COMMANDS = {
    "speed": SPEED,
    "memory": "speed.py --memory-only --systems ours ours+xla keras",
    "generation": "speed.py --tables generation --systems ours keras torch --configs base "
    "--rounds 3",
    # The web page in headless Chromium, against the Sampler in Python.
    "web": "web_generation.py --rounds 3",
    # Our LSTM and Keras's, 20 minutes each on a text (--text); also writes .csv and .svg.
    "quality": "lm_quality.py {text} --minutes 20 --eval-steps 200 --seed 0 "
    "--systems unfold_rnn.LSTM keras.layers.LSTM torch.nn.LSTM --out benchmarks/results",
    # Where a training step's time goes, pass by pass, beside PyTorch's.
    "profile": "pass_profile.py --repeats 20",
    # minGRU and minLSTM against the sequence length, and against our LSTM in the race.
    "lengths": "parallel_scan.py --rounds 3 --svg benchmarks/results/parallel_scan.svg",
    "min_quality": "lm_quality.py {text} --minutes 20 --eval-steps 200 --seed 0 "
    "--systems unfold_rnn.MinGRU unfold_rnn.LSTM --out benchmarks/results --name min_quality",
    "minlstm_quality": "lm_quality.py {text} --minutes 20 --eval-steps 200 --seed 0 "
    "--systems unfold_rnn.MinLSTM --out benchmarks/results --name minlstm_quality",
}
NEEDS_TEXT = ("quality", "min_quality", "minlstm_quality")
# The results file of a table, where it is not the table's own name.
FILES = {"quality": "lm_quality", "lengths": "parallel_scan", "first_step": "speed"}


def cpu_name() -> str:
    """The CPU's model name and family, from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = re.search(r"model name\s*:\s*(.*)", info)
    family = re.search(r"cpu family\s*:\s*(\d+)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    vector = "AVX-512" if flags and "avx512f" in flags.group(1).split() else "AVX2"
    name = model.group(1).strip() if model else "unknown CPU"
    return f"{name}, family {family.group(1) if family else '?'}, {vector}"


def header(command: str) -> str:
    import keras
    import tensorflow as tf

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    today = datetime.date.today().isoformat()
    return (
        f"# python benchmarks/{command}\n"
        f"# commit {commit}; {cpu_name()}; TF {tf.__version__}, Keras {keras.__version__}; "
        f"{today}\n"
    )


def measure(table: str, text: str | None) -> None:
    command = COMMANDS[table].format(text=text)
    # The header names the text by its file name: a path of this machine means nothing elsewhere.
    shown = COMMANDS[table].format(text=Path(text).name if text else text)
    print(f"measuring {table}: python benchmarks/{command}", flush=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / command.split()[0]), *command.split()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{table} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    (RESULTS / f"{FILES.get(table, table)}.txt").write_text(header(shown) + done.stdout)


def read_rows(table: str) -> tuple[list[str], list[str], list[list[str]]]:
    """A results file's header lines, and its table: column names and rows of cells."""
    lines = (RESULTS / f"{table}.txt").read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("config "))
    columns = lines[start].split()
    table = lines[start + 1 : lines.index("", start) if "" in lines[start:] else None]
    rows = [line.split() for line in table if line.split()[:1] == ["base"]]
    return head, columns, rows


def ratio_table(table: str, pairs: list[tuple[str, str]], unit: str) -> str:
    """One row a cell: each pair's ratio, then the first column's absolute figure."""
    head, columns, rows = read_rows(table)
    names = {"ours": "ours", "ours+xla": "ours+xla", "keras": "Keras", "torch": "PyTorch"}
    titles = [f"{names[a]} : {names[b]}" for a, b in pairs]
    lines = ["| cell | " + " | ".join(titles) + f" | ours, {unit} |"]
    lines.append("|---" * (len(pairs) + 2) + "|")
    for row in rows:
        value = dict(zip(columns, row, strict=False))
        ratios = [value.get(f"{a}/{b}", "n/a") for a, b in pairs]
        lines.append(f"| {row[1]} | " + " | ".join(ratios) + f" | {value['ours']} |")
    made = f"`python benchmarks/report.py --only {table}`, which runs `{head[0]}`"
    return "\n".join([*lines, "", f"Measured: {head[1]}. Made by {made}."])


def memory_table() -> str:
    """Ours against Keras at 1,000 steps: the step's tensors, and resident memory."""
    lines = (RESULTS / "memory.txt").read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    out = [
        "| cell | plain `fit` : Keras, tensors | XLA step : Keras, tensors "
        "| plain `fit` : Keras, resident | XLA step : Keras, resident |",
        "|---|---|---|---|---|",
    ]
    found: dict[str, dict[str, list[str]]] = {}
    for line in lines:
        words = line.split()
        if len(words) > 2 and words[1] in ("tensors", "resident"):
            found.setdefault(words[0], {})[words[1]] = [w for w in words if w.endswith("x")][-2:]
    for cell, kinds in found.items():
        out.append(f"| {cell} | " + " | ".join([*kinds["tensors"], *kinds["resident"]]) + " |")
    made = "`python benchmarks/report.py --only memory`, which runs `" + head[0] + "`"
    return "\n".join([*out, "", f"Measured: {head[1]}. Made by {made}."])


def quality_table(table: str) -> str:
    """The validation loss read as streams, for each system, at equal training time."""
    text = (RESULTS / f"{FILES.get(table, table)}.txt").read_text()
    head = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    streams = text[text.index("streams, states carried") :].splitlines()[1:]
    systems = streams[0].split()[1:]
    owners = {"keras.layers.": "Keras's", "torch.nn.": "PyTorch's", "unfold_rnn.": "our"}
    names = [
        next(f"{who} {s.removeprefix(pre)}" for pre, who in owners.items() if s.startswith(pre))
        for s in systems
    ]
    out = ["| minutes | " + " | ".join(f"{n}, nats/char" for n in names) + " |"]
    out.append("|---" * (len(names) + 1) + "|")
    for line in streams[1:]:
        words = line.split()
        if words and words[0] in ("tokens/s", "params"):
            out.append(f"| {words[0]} | " + " | ".join(words[1:]) + " |")
        elif words and re.match(r"[\d.]+$|best$", words[0]):
            losses = [w for w in words[1:] if not w.startswith("(")]
            out.append(f"| {words[0]} | " + " | ".join(losses) + " |")
    made = f"`python benchmarks/report.py --only {table} --text T`, which runs `{head[0]}`"
    return "\n".join([*out, "", f"Measured: {head[1]}. Made by {made}."])


def lengths_table() -> str:
    """Tokens/s of every column at every length, and the ratios."""
    lines = (RESULTS / "parallel_scan.txt").read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["steps"])
    columns = lines[start].split()
    out = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    out += ["| " + " | ".join(line.split()) + " |" for line in lines[start + 1 :] if line.strip()]
    made = f"`python benchmarks/report.py --only lengths`, which runs `{head[0]}`"
    return "\n".join([*out, "", f"Measured: {head[1]}. Made by {made}."])


def first_step_table() -> str:
    """Seconds to the first step of a fresh `fit`, from the speed run, ours beside Keras's."""
    lines = (RESULTS / "speed.txt").read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("time to the first step"))
    seconds: dict[str, dict[str, float]] = {}
    for line in lines[start + 1 :]:
        words = line.split()
        if len(words) == 4 and words[0] == "base":
            seconds.setdefault(words[1], {})[words[2]] = float(words[3])
    out = ["| cell | ours, s | ours+xla, s | Keras, s | ours - Keras, s |", "|---|---|---|---|---|"]
    for cell, of in seconds.items():
        out.append(
            f"| {cell} | {of['ours']:.2f} | {of['ours+xla']:.2f} | {of['keras']:.2f} "
            f"| {of['ours'] - of['keras']:+.2f} |"
        )
    made = f"`python benchmarks/report.py --only speed`, which runs `{head[0]}`"
    return "\n".join([*out, "", f"Measured: {head[1]}. Made by {made}."])


def web_table() -> str:
    head, columns, rows = read_rows("web")
    titles = ["page, chars/s", "js, chars/s", "python, chars/s", "page : python", "load, s"]
    lines = ["| cell | " + " | ".join(titles) + " | weights, MB |"]
    lines.append("|---" * 7 + "|")
    for row in rows:
        value = dict(zip(columns, row, strict=False))
        figures = [
            value[c] for c in ("page", "js", "python", "page/python", "load_s", "weights_MB")
        ]
        lines.append(f"| {row[1]} | " + " | ".join(figures) + " |")
    made = f"`python benchmarks/report.py --only web`, which runs `{head[0]}`"
    return "\n".join([*lines, "", f"Measured: {head[1]}. Made by {made}."])


def profile_table() -> str:
    """The profile as pass_profile.py prints it: Markdown already."""
    lines = (RESULTS / "profile.txt").read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("# ")]
    body = "\n".join(line for line in lines if not line.startswith("# ")).strip()
    made = f"`python benchmarks/report.py --only profile`, which runs `{head[0]}`"
    return f"{body}\n\nMeasured: {head[1]}. Made by {made}."


def render() -> None:
    tables = {
        "speed": lambda: ratio_table(
            "speed",
            [("ours", "keras"), ("ours", "torch"), ("ours+xla", "keras"), ("ours+xla", "torch")],
            "tokens/s",
        ),
        "first_step": first_step_table,
        "profile": profile_table,
        "generation": lambda: ratio_table(
            "generation", [("ours", "keras"), ("ours", "torch")], "chars/s"
        ),
        "web": web_table,
        "memory": memory_table,
        "quality": lambda: quality_table("quality"),
        "lengths": lengths_table,
        "min_quality": lambda: quality_table("min_quality"),
        "minlstm_quality": lambda: quality_table("minlstm_quality"),
    }
    for page in PAGES:
        text = page.read_text()
        for name, make in tables.items():
            pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- end -->)", re.S)
            source = RESULTS / f"{FILES.get(name, name)}.txt"
            if pattern.search(text) and source.is_file():
                table = make()
                text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
        page.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--text", help="the quality race's text, e.g. tinyshakespeare.txt")
    parser.add_argument("--render", action="store_true", help="measure nothing")
    args = parser.parse_args()
    racing = [t for t in args.only if t in NEEDS_TEXT]
    if racing and not args.render and not args.text:
        if args.only != list(COMMANDS):
            parser.error("the quality tables need --text PATH (e.g. tinyshakespeare.txt)")
        print("no --text: the quality tables are left as they are", flush=True)
        args.only = [t for t in args.only if t not in NEEDS_TEXT]
    if not args.render:
        for table in args.only:
            measure(table, args.text)
    render()


if __name__ == "__main__":
    main()
