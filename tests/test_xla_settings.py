"""The XLA settings of the `unfold-rnn` command: what they add to XLA_FLAGS, what they leave."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from unfold_rnn import cli, xla_settings

SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
WIDTH = "--xla_cpu_prefer_vector_width=512"
FLAGS = [SCHEDULER, WIDTH]
VERIFIED = "2.21.0"


def test_the_flags_are_the_documented_ones():
    assert list(xla_settings.TRAINING_FLAGS) == FLAGS


def test_adds_the_flags_when_xla_flags_is_unset():
    environ: dict[str, str] = {}
    assert xla_settings.apply_training_settings(environ, VERIFIED, avx512=True) == FLAGS
    assert environ == {"XLA_FLAGS": f"{SCHEDULER} {WIDTH}"}


def test_keeps_the_users_other_flags_and_is_idempotent():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x  --xla_cpu_use_onednn=true"}
    xla_settings.apply_training_settings(environ, VERIFIED, avx512=True)
    expected = f"--xla_dump_to=/tmp/x --xla_cpu_use_onednn=true {SCHEDULER} {WIDTH}"
    assert environ["XLA_FLAGS"] == expected
    assert xla_settings.apply_training_settings(environ, VERIFIED, avx512=True) == []
    assert environ["XLA_FLAGS"] == expected


@pytest.mark.parametrize(
    ("users", "added"),
    [
        ("--xla_cpu_enable_concurrency_optimized_scheduler=true", [WIDTH]),
        ("--xla_cpu_enable_concurrency_optimized_scheduler", [WIDTH]),
        ("xla_cpu_enable_concurrency_optimized_scheduler=false --xla_dump_to=/tmp/x", [WIDTH]),
        ("--xla_cpu_prefer_vector_width=256", [SCHEDULER]),
        (
            "--xla_cpu_prefer_vector_width=128 "
            "--xla_cpu_enable_concurrency_optimized_scheduler=true",
            [],
        ),
    ],
)
def test_never_overrides_the_users_setting_of_a_flag(users, added):
    environ = {"XLA_FLAGS": users}
    assert xla_settings.apply_training_settings(environ, VERIFIED, avx512=True) == added
    assert environ == {"XLA_FLAGS": " ".join([*users.split(), *added])}


@pytest.mark.parametrize("version", ["2.16.1", "2.22.0", "3.0.0", "2.21", "nightly"])
def test_adds_nothing_with_a_tensorflow_it_was_not_checked_with(version):
    environ: dict[str, str] = {}
    if version == "2.21":  # a bare major.minor is still 2.21
        assert xla_settings.apply_training_settings(environ, version, avx512=True) == FLAGS
        return
    assert xla_settings.apply_training_settings(environ, version, avx512=True) == []
    assert environ == {}


def test_leaves_the_vector_width_to_xla_without_avx512():
    environ: dict[str, str] = {}
    assert xla_settings.apply_training_settings(environ, VERIFIED, avx512=False) == [SCHEDULER]
    assert environ == {"XLA_FLAGS": SCHEDULER}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 fma avx512f avx512dq avx512bw", True),
        ("fpu sse2 avx2 fma", False),
        ("fpu avx2 avx512_vnni avx512bw", False),  # no Foundation, no AVX-512 to speak of
    ],
)
def test_reads_avx512_from_the_cpus_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    assert xla_settings.has_avx512(str(cpuinfo)) is expected


def test_no_cpuinfo_means_no_avx512(tmp_path):
    assert xla_settings.has_avx512(str(tmp_path / "no_such_file")) is False


def _run_with(xla_flags: str, code: str) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh process with these XLA_FLAGS (XLA reads them once)."""
    env = {**os.environ, "XLA_FLAGS": xla_flags, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )


def _compile_with(xla_flags: str) -> subprocess.CompletedProcess:
    """Compile and run a small XLA function in a fresh process with these XLA_FLAGS."""
    code = (
        "import tensorflow as tf\n"
        "f = tf.function(lambda x: tf.tanh(x @ x), jit_compile=True)\n"
        "print(float(tf.reduce_sum(f(tf.ones((4, 4))))))\n"
    )
    return _run_with(xla_flags, code)


@pytest.mark.slow
def test_the_installed_xla_knows_the_flag():
    """XLA stops the process on a flag it does not know: the flag must be known wherever it
    is applied. (An unknown flag, the control, does stop it.)"""
    environ: dict[str, str] = {}
    if not xla_settings.apply_training_settings(environ, avx512=True):
        pytest.skip("the installed TensorFlow is not one the setting is applied with")
    done = _compile_with(environ["XLA_FLAGS"])
    assert done.returncode == 0, done.stderr[-2000:]
    total = float(done.stdout.strip().splitlines()[-1])
    assert total == pytest.approx(16 * math.tanh(4))  # every entry of x @ x is 4
    unknown = _compile_with("--xla_cpu_no_such_flag_for_the_test=false")
    assert unknown.returncode != 0 and "Unknown flag" in unknown.stderr


def test_the_command_applies_them_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert cli.main(["sample", str(tmp_path / "no_such_run")]) != 0
    expected = xla_settings.apply_training_settings({})
    assert os.environ.get("XLA_FLAGS", "").split() == expected
    users = (
        "--xla_cpu_enable_concurrency_optimized_scheduler=true --xla_cpu_prefer_vector_width=256"
    )
    monkeypatch.setenv("XLA_FLAGS", users)
    cli.main(["sample", str(tmp_path / "no_such_run")])
    assert os.environ["XLA_FLAGS"] == users


_TRAINING_STEP = """
import json
import numpy as np, tensorflow as tf, keras
import unfold_rnn
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=(8, 30, 5)).astype("float32"))
results = {}
for name in ("VanillaRNN", "GRU", "LSTM"):
    layer = getattr(unfold_rnn, name)(16, return_sequences=True)
    layer.build(x.shape)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.3, size=w.shape).astype("float32"))

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)))
        return [loss, *tape.gradient(loss, [x, *layer.trainable_weights])]

    results[name] = [np.asarray(t).ravel().tolist() for t in step(x)]
print(json.dumps(results))
"""


def _training_step_with(xla_flags: str) -> dict:
    """Loss and gradients of each layer's XLA-compiled step, in a fresh process."""
    done = _run_with(xla_flags, _TRAINING_STEP)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_flags_leave_the_numbers_as_they_are():
    """The command's flags change how XLA compiles, not what it computes: every layer's loss
    and gradients match XLA's defaults to within float rounding."""
    environ: dict[str, str] = {}
    if not xla_settings.apply_training_settings(environ):
        pytest.skip("the installed TensorFlow is not one the settings are applied with")
    with_flags = _training_step_with(environ["XLA_FLAGS"])
    defaults = _training_step_with("")
    for name, tensors in defaults.items():
        for ours, reference in zip(with_flags[name], tensors, strict=True):
            np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5, err_msg=name)
