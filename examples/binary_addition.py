"""Teach a recurrent network to add binary numbers, then test it on numbers 8x longer.

The network reads two numbers one bit pair at a time, least significant bit first, and
writes the sum's bits as it goes, as in the classic tutorials. Each output bit depends on
the bits just read and on the carry from the step before, so the network must learn to carry.
It only ever sees 8-bit sums; if it has learned the rule, it adds 64-bit numbers too.

    python examples/binary_addition.py [vanilla|gru|lstm]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from unfold_rnn import build_binary_addition_model
from unfold_rnn.data import addition_problems, bits_to_ints

cell = sys.argv[1] if len(sys.argv) > 1 else "lstm"  # "vanilla", "gru" or "lstm"
units = 16  # size of the recurrent state
train_bits = 8  # width of every training sum
problems_per_epoch = 2048  # fresh random problems each epoch
batch_size = 32
max_seconds = 60  # training time allowed
confident = 0.005  # stop once every held-out bit is this close to its target
seed = 0

keras.utils.set_random_seed(seed)
rng = np.random.default_rng(seed)
model = build_binary_addition_model(cell, units=units)
check_x, check_y = addition_problems(1000, train_bits, seed=rng)  # held out, 8 bits

start = time.perf_counter()
for epoch in range(1, 10_000):
    train_x, train_y = addition_problems(problems_per_epoch, train_bits, seed=rng)
    loss = model.fit(train_x, train_y, batch_size=batch_size, verbose=0).history["loss"][-1]
    error = np.abs(model.predict(check_x, verbose=0) - check_y).max()
    print(f"epoch {epoch:3d}  loss {loss:.4f}  least confident held-out bit off by {error:.3f}")
    if error < confident or time.perf_counter() - start > max_seconds:
        break
print(f"trained {cell} for {time.perf_counter() - start:.0f} s on {train_bits}-bit sums\n")

for bits in (8, 16, 32, 64):
    x, y = addition_problems(1000, bits, seed=rng)
    a, b = bits_to_ints(x[..., 0]), bits_to_ints(x[..., 1])
    predicted, truth = bits_to_ints(model.predict(x, verbose=0)), bits_to_ints(y)
    print(f"{bits}-bit sums: {np.mean(predicted == truth):.1%} of 1,000 right, for example")
    for i in range(3):
        mark = "✓" if predicted[i] == truth[i] else f"✗ (true sum {truth[i]})"
        print(f"    {a[i]} + {b[i]} = {predicted[i]} {mark}")
