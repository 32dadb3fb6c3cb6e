"""Generation speed of the web page in headless Chromium, against the Sampler in Python.

For each cell, a 2 x 256 language model (65 characters, embedding 64, untrained weights: speed
does not depend on them) is exported with `export_web`, and timed three ways, each in a
process of its own, taking turns round after round:

    page    the page as a user runs it: Generate pressed, until it says it wrote them all
            (stepping in chunks between frames, and drawing every character)
    js      the page's model alone: `model.generate` in the same browser, nothing drawn
    python  `Sampler.generate` in a fresh Python process, as `unfold-rnn sample` runs it

plus the time from opening the page to its model being ready, and the weights' size.

    python benchmarks/web_generation.py [--cells lstm ...] [--length 2000] [--rounds 3]

Needs Debian's chromium and chromium-driver, and selenium (pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CELLS = ["vanilla", "gru", "lstm", "mingru", "minlstm"]
CHARS = [chr(c) for c in range(32, 97)]  # 65 characters, as tinyshakespeare's
PRIME = "A"

PAGE = """
const done = arguments[arguments.length - 1];
const $ = (id) => document.getElementById(id);
$("prime").value = arguments[0];
$("length").value = String(arguments[1]);
const status = $("status");
const start = performance.now();
new MutationObserver((_, observer) => {
  if (status.textContent.startsWith("Wrote")) {
    observer.disconnect();
    done(performance.now() - start);
  }
}).observe(status, { childList: true, characterData: true, subtree: true });
$("generate").click();
"""

MODEL = """
const model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
const start = performance.now();
let n = 0;
for (const c of model.generate(arguments[0], { length: arguments[1], seed: 1 })) n += 1;
return performance.now() - start;
"""


def make_run(root: Path, cell: str) -> Path:
    from unfold_rnn import CharVocab, build_language_model, runs
    from unfold_rnn.config import LanguageModelConfig

    vocab = CharVocab(CHARS)
    model = build_language_model(len(vocab), cell, units=256, num_layers=2, embedding_dim=64)
    run = root / f"run_{cell}"
    runs.create(run, LanguageModelConfig(cell=cell), vocab)
    runs.save_model(model, run / runs.MODEL)
    return run


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(600)
    return driver


def time_in_browser(site: Path, length: int) -> dict[str, float]:
    """One fresh Chromium: seconds to load the page, and chars/s of the page and its model."""
    driver = browser()
    try:
        start = time.perf_counter()
        driver.get((site / "index.html").as_uri())
        load = time.perf_counter() - start
        assert driver.find_element("id", "status").text == "Ready.", "the page did not load"
        driver.execute_script(MODEL, PRIME, 200)  # let V8 compile the hot loops first
        js = length / (driver.execute_script(MODEL, PRIME, length) / 1000)
        page = length / (driver.execute_async_script(PAGE, PRIME, length) / 1000)
        return {"load": load, "js": js, "page": page}
    finally:
        driver.quit()


def time_in_python(run: Path, length: int) -> float:
    """chars/s of the Sampler, in a fresh process (run with --python RUN)."""
    command = [sys.executable, __file__, "--python", str(run), "--length", str(length)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def python_child(run: Path, length: int) -> None:
    from unfold_rnn import runs
    from unfold_rnn.sampling import Sampler

    sampler = Sampler(runs.load_model(run / runs.MODEL), runs.read_vocab(run))
    sampler.generate(PRIME, 200, seed=0)  # compile the loop first
    start = time.perf_counter()
    sampler.generate(PRIME, length, seed=1)
    print(length / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=CELLS)
    parser.add_argument("--length", type=int, default=2000, help="characters per timed sample")
    parser.add_argument("--rounds", type=int, default=3, help="the systems take turns this often")
    parser.add_argument("--python", type=Path, help=argparse.SUPPRESS)  # the child's run
    args = parser.parse_args()
    if args.python:
        return python_child(args.python, args.length)

    from unfold_rnn import export_web

    measured: dict[str, dict[str, list[float]]] = {c: {} for c in args.cells}
    sizes = {}
    with tempfile.TemporaryDirectory() as scratch:
        sites = {}
        for cell in args.cells:
            run = make_run(Path(scratch), cell)
            sites[cell] = (run, export_web(run, Path(scratch) / f"site_{cell}"))
            sizes[cell] = sites[cell][1].weights_bytes
        for _ in range(args.rounds):
            for cell in args.cells:
                run, site = sites[cell]
                for name, value in time_in_browser(site.site, args.length).items():
                    measured[cell].setdefault(name, []).append(value)
                python = time_in_python(run, args.length)
                measured[cell].setdefault("python", []).append(python)
    print(
        f"single-stream generation in headless Chromium, 2 x 256, {args.length:,} characters a "
        f"sample, temperature 1; chars/s, median over {args.rounds} rounds"
    )
    columns = ["page", "js", "python", "page/python", "load_s", "weights_MB"]
    print(f"{'config':7} {'cell':8}" + "".join(f"{c:>12}" for c in columns))
    for cell in args.cells:
        median = {name: statistics.median(values) for name, values in measured[cell].items()}
        cells = [
            f"{median['page']:,.0f}",
            f"{median['js']:,.0f}",
            f"{median['python']:,.0f}",
            f"{median['page'] / median['python']:.2f}x",
            f"{median['load']:.2f}",
            f"{sizes[cell] / 1e6:.1f}",
        ]
        print(f"{'base':7} {cell:8}" + "".join(f"{c:>12}" for c in cells))
    print()
    print("rounds: " + json.dumps({c: measured[c] for c in args.cells}, separators=(",", ":")))


if __name__ == "__main__":
    main()
