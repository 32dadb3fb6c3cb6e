"""Generate text with the LiteRT step model that `unfold-rnn export` writes, as a phone app
would: one character in, its logits and the new states out, the states carried by the
caller. Needs only TensorFlow (or LiteRT's own `ai_edge_litert`), not unfold_rnn.

    unfold-rnn export logs/<run> --out exported
    python examples/litert_generate.py exported --prime "ROMEO:" --length 300

The vocabulary comes from the SavedModel's asset `chars.txt` (the character of id i is its
i-th); the width of the states from `unfold_rnn.json`.
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    import tensorflow as tf

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    Interpreter = tf.lite.Interpreter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("export_dir", help="the --out directory of `unfold-rnn export`")
parser.add_argument("--version", default="1", help="the SavedModel version holding the assets")
parser.add_argument("--prime", default="\n", help="text to start from")
parser.add_argument("--length", type=int, default=300, help="characters to generate")
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
if not args.prime:
    parser.error("the prime must have at least one character to start from")

export_dir = Path(args.export_dir)
chars = list((export_dir / args.version / "assets" / "chars.txt").read_text(encoding="utf-8"))
description = json.loads((export_dir / args.version / "unfold_rnn.json").read_text())
step = Interpreter(model_path=str(export_dir / "step.tflite")).get_signature_runner("step")
rng = np.random.default_rng(args.seed)

states = np.zeros((1, description["state_width"]), np.float32)  # zeros start a text
text = args.prime
for char in args.prime:  # read the prime: logits after its last character
    out = step(ids=np.array([chars.index(char)], np.int32), states=states)
    states = out["states"]
for _ in range(args.length):
    logits = out["logits"][0].astype(np.float64) / args.temperature
    probabilities = np.exp(logits - logits.max())
    char_id = rng.choice(len(chars), p=probabilities / probabilities.sum())
    text += chars[char_id]
    out = step(ids=np.array([char_id], np.int32), states=states)
    states = out["states"]
print(text)
