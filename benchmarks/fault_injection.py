"""Kill training runs at random moments, resume each time: how many end bit-identical?

The benchmark-length version of tests/test_training.py's fault-injection test, with its
harness: a small language-model run (4 epochs of 5 steps, a checkpoint every 2 steps) is
first run untouched, then, for each of `--runs` seeds, started and killed `--kills` times
(SIGKILL 3 times in 5, else SIGTERM or SIGINT), resumed with `--resume` after each, and
finished. Each kill aims at a random step: step 0 means a random moment of start-up, any
other step up to a second after the run has saved it. The final checkpoint (weights,
optimizer, random generators) is compared bit for bit with the untouched run's.

    python benchmarks/fault_injection.py [--runs 10] [--kills 3] [--text PATH]
"""

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_training import assert_bit_identical, run_with_kills, saved_numbers, timed_whole_run

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--runs", type=int, default=10)
parser.add_argument("--kills", type=int, default=3, help="kills per run")
parser.add_argument("--text", help="a UTF-8 text (default: a verse of Hamlet, repeated)")
args = parser.parse_args()

work = Path(tempfile.mkdtemp(prefix="fault_injection_"))
text = Path(args.text) if args.text else work / "text.txt"
if not args.text:
    from conftest import TEXT

    text.write_text(TEXT, encoding="utf-8")

first, end = timed_whole_run(work / "whole", text)
reference = saved_numbers(work / "whole" / "run")
print(f"untouched run: first checkpoint at {first:.1f} s, end at {end:.1f} s\n")

identical, kills = 0, collections.Counter()
print(f"{'run':>3}  {'processes':>9}  {'identical':>9}  kills: signal, when, exit, step saved")
for seed in range(args.runs):
    logdir = work / f"killed-{seed}"
    processes, log = run_with_kills(logdir, text, args.kills, seed, first)
    try:
        assert_bit_identical(reference, saved_numbers(logdir / "run"))
        same = True
    except AssertionError:
        same = False
    identical += same
    for entry in log:
        kills[entry.split()[0]] += 1
    print(f"{seed:>3}  {processes:>9}  {'yes' if same else 'NO':>9}  " + "; ".join(log))

print(f"\n{identical} of {args.runs} runs ended bit-identical to the untouched run")
print("kills sent: " + ", ".join(f"{n} {name}" for name, n in sorted(kills.items())))
