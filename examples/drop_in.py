"""Swap unfold_rnn.LSTM into a Keras script in place of keras.layers.LSTM: same weights, same
numbers, and it trains in model.fit like the built-in.

The task needs memory: read a sequence of random numbers and report the first one, which the
network has to carry across every later step. No data to download.

    python examples/drop_in.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import unfold_rnn

seq_len = 20  # time steps the first value must be carried across
units = 32  # size of the LSTM's hidden and cell state
num_train = 2048  # training sequences
epochs = 15  # passes over the training set
seed = 0  # for the data and the weights

rng = np.random.default_rng(seed)
x = rng.uniform(-1, 1, size=(num_train, seq_len, 1)).astype("float32")  # (N, T, 1)
y = x[:, 0, :]  # (N, 1): the first value of each sequence


def build(recurrent_layer: keras.layers.Layer) -> keras.Model:
    return keras.Sequential([keras.Input((seq_len, 1)), recurrent_layer, keras.layers.Dense(1)])


keras.utils.set_random_seed(seed)
builtin = build(keras.layers.LSTM(units))
ours = build(unfold_rnn.LSTM(units))  # the only line that changes
ours.set_weights(builtin.get_weights())  # weights move both ways: same names, shapes, gates

gap = np.abs(ours.predict(x, verbose=0) - builtin.predict(x, verbose=0)).max()
print(f"same weights, largest difference in predictions: {gap:.1e}")

ours.compile(keras.optimizers.Adam(3e-3), "mse")
print(f"mean squared error before training: {ours.evaluate(x, y, verbose=0):.4f}")
ours.fit(x, y, epochs=epochs, batch_size=64, verbose=2)
print(f"mean squared error after training:  {ours.evaluate(x, y, verbose=0):.4f}")
print("(always answering 0 would score 0.3333, the variance of the targets)")
