"""Train a character-level language model, then let it write.

With no argument it learns from the built-in corpus (the Python standard library's own
source, on every machine); give a path to learn from any UTF-8 text instead:

    python examples/char_lm.py [path/to/text.txt]

It trains for a few minutes, printing the validation loss in bits per character, then prints
text sampled at two temperatures.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from unfold_rnn import build_language_model
from unfold_rnn.callbacks import TimeBudget
from unfold_rnn.data import default_corpus, read_text, text_data
from unfold_rnn.sampling import Sampler

text_path = sys.argv[1] if len(sys.argv) > 1 else None  # None: the built-in corpus
cell = "lstm"  # "vanilla", "gru", "lstm", "mingru" or "minlstm"
units = 256  # state size of each recurrent layer
num_layers = 2  # recurrent layers stacked
embedding_dim = 64  # size of each character's embedding
seq_len = 100  # characters per training window (steps of backpropagation through time)
batch_size = 64  # windows per batch
learning_rate = 2e-3  # Adam, gradients clipped to a global norm of 5
minutes = 3.0  # training time
steps_per_report = 100  # training steps between validation reports
seed = 0

keras.utils.set_random_seed(seed)
text = read_text(text_path) if text_path else default_corpus(max_chars=1_000_000)
data = text_data(text, seq_len=seq_len, batch_size=batch_size, val_fraction=0.1, seed=seed)
print(f"{len(text):,} characters, {len(data.vocab)} distinct; training for {minutes:g} min")

model = build_language_model(
    len(data.vocab), cell, units, num_layers, embedding_dim, learning_rate=learning_rate
)
budget = TimeBudget(minutes * 60)
model.fit(
    data.train,
    steps_per_epoch=steps_per_report,
    epochs=10_000,  # the time budget stops it
    validation_data=data.validation.take(20),
    shuffle=False,
    callbacks=[budget],
    verbose=0,
)
for seconds, logs in budget.history:
    print(
        f"{seconds:6.0f} s   train {logs['bits_per_char']:.3f} bits/char"
        f"   validation {logs['val_bits_per_char']:.3f} bits/char"
    )

sampler = Sampler(model, data.vocab)
prime = text[:1] if text[:1] in data.vocab.chars else data.vocab.chars[0]
for temperature in (0.5, 1.0):
    sample = sampler.generate(prime, length=400, temperature=temperature, seed=seed)[0]
    print(f"\n--- sampled at temperature {temperature} ---\n{prime}{sample}")
