"""A client of an exported model, run by tests/test_exporting.py in a fresh Python process
with plain TensorFlow: importing unfold_rnn here fails, so nothing it exports can lean on it.

    python serving_client.py language_model EXPORT_DIR INPUTS.npz RESULTS.npz
    python serving_client.py adder SAVED_MODEL INPUTS.npz RESULTS.npz
    python serving_client.py keras SAVED_MODEL INPUTS.npz RESULTS.npz

INPUTS.npz holds what to feed; RESULTS.npz gets what came out.
"""

import contextlib
import io
import json
import sys
import warnings

sys.modules["unfold_rnn"] = None  # any `import unfold_rnn` now raises ImportError

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def language_model(export_dir: str, inputs: dict) -> dict:
    loaded = tf.saved_model.load(f"{export_dir}/1")
    ids = inputs["ids"]  # (B, T)
    whole = loaded.signatures["serving_default"](ids=tf.constant(ids))["logits"].numpy()

    with open(f"{export_dir}/1/unfold_rnn.json", encoding="utf-8") as description:
        width = json.load(description)["state_width"]
    states = tf.zeros((ids.shape[0], width))
    stepped = []
    for t in range(ids.shape[1]):
        out = loaded.signatures["step"](ids=tf.constant(ids[:, t]), states=states)
        stepped.append(out["logits"].numpy())
        states = out["states"]

    generated = loaded.signatures["generate"](
        prime=tf.constant(str(inputs["prime"])),
        length=tf.constant(int(inputs["length"])),
        temperature=tf.constant(float(inputs["temperature"])),
        seed=tf.constant(int(inputs["seed"])),
    )["text"].numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice of ai_edge_litert
        runner = tf.lite.Interpreter(f"{export_dir}/step.tflite").get_signature_runner("step")
    lite_states, lite = np.zeros((1, width), np.float32), []
    for t in range(ids.shape[1]):
        out = runner(ids=ids[:1, t], states=lite_states)
        lite.append(out["logits"])
        lite_states = out["states"]
    analysis = io.StringIO()
    with contextlib.redirect_stdout(analysis):
        tf.lite.experimental.Analyzer.analyze(model_path=f"{export_dir}/step.tflite")

    return {
        "whole": whole,
        "stepped": np.stack(stepped, axis=1),  # (B, T, V)
        "text": np.array(generated.decode("utf-8")),
        "lite": np.concatenate(lite)[None],  # (1, T, V)
        "lite_inputs": np.array(
            json.dumps({k: d["shape"].tolist() for k, d in runner.get_input_details().items()})
        ),
        "analysis": np.array(analysis.getvalue()),
        "session": _in_a_session(f"{export_dir}/1", {"ids": ids}, "logits"),
    }


def _in_a_session(path: str, feed: dict, output: str) -> np.ndarray:
    """serving_default run the way TF Serving's C++ loader runs it: a graph in a session,
    the variables restored by the SavedModel's own restore op."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        names = {signature.inputs[key].name: value for key, value in feed.items()}
        return session.run(signature.outputs[output].name, names)


def adder(path: str, inputs: dict) -> dict:
    out = tf.saved_model.load(path).signatures["serving_default"](bits=tf.constant(inputs["bits"]))
    return {
        "sum_bits": out["sum_bits"].numpy(),
        "probabilities": out["probabilities"].numpy(),
        "session": _in_a_session(path, {"bits": inputs["bits"]}, "sum_bits"),
    }


def keras(path: str, inputs: dict) -> dict:
    loaded = tf.saved_model.load(path)
    return {"served": loaded.serve(tf.constant(inputs["x"])).numpy()}


if __name__ == "__main__":
    kind, path, inputs_file, results_file = sys.argv[1:]
    inputs = dict(np.load(inputs_file))
    results = {"language_model": language_model, "adder": adder, "keras": keras}[kind](path, inputs)
    np.savez(results_file, **results)
