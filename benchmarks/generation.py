"""Single-stream generation speed of a 2 x 256 LSTM language model, in characters per second.

Compares the Sampler (one step per character, carrying the states) with re-running the
model's scan over the whole text so far for every new character, the naive way, whose cost
grows with the length. Weights are untrained: speed does not depend on them.

    python benchmarks/generation.py [--length 2000] [--repeats 5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from unfold_rnn import CharVocab, build_language_model
from unfold_rnn.sampling import Sampler

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--length", type=int, default=2000, help="characters per timed sample")
parser.add_argument("--repeats", type=int, default=5, help="timed samples; the median is kept")
args = parser.parse_args()

vocab = CharVocab([chr(c) for c in range(32, 97)])  # 65 characters, as tinyshakespeare's
model = build_language_model(len(vocab), cell="lstm", units=256, num_layers=2, embedding_dim=64)
sampler = Sampler(model, vocab)
sampler.generate("A", length=50, seed=0)  # trace the step functions once


def chars_per_second(generate, length: int) -> float:
    times = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        generate(length, seed)
        times.append(time.perf_counter() - start)
    return length / statistics.median(times)


def naive(length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = list(vocab.encode("A"))
    for _ in range(length):
        logits = model(np.array([ids]), training=False)[0, -1].numpy()
        probs = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(vocab), p=probs / probs.sum())))


stepped = chars_per_second(lambda n, s: sampler.generate("A", n, seed=s), args.length)
greedy = chars_per_second(lambda n, s: sampler.generate("A", n, greedy=True), args.length)
nucleus = chars_per_second(
    lambda n, s: sampler.generate("A", n, temperature=0.8, top_k=20, top_p=0.95, seed=s),
    args.length,
)
naive_length = 200
rerun = chars_per_second(naive, naive_length)
print(f"{'method':40} {'chars/s':>10} {'ratio':>8}")
print(f"{'Sampler, temperature 1 (stepping cells)':40} {stepped:10,.0f} {stepped / rerun:7.1f}x")
print(f"{'Sampler, greedy':40} {greedy:10,.0f} {greedy / rerun:7.1f}x")
print(f"{'Sampler, T 0.8, top-k 20, top-p 0.95':40} {nucleus:10,.0f} {nucleus / rerun:7.1f}x")
print(f"{f're-run the scan on the prefix ({naive_length} chars)':40} {rerun:10,.0f} {1:7.1f}x")
