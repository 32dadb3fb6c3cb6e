"""The XLA setting of the `unfold-rnn` command: what it adds to XLA_FLAGS, what it leaves."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from unfold_rnn import cli, xla_settings

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
VERIFIED = "2.21.0"


def test_adds_the_flag_when_xla_flags_is_unset():
    environ: dict[str, str] = {}
    assert xla_settings.apply_training_settings(environ, VERIFIED) == [FLAG]
    assert environ == {"XLA_FLAGS": FLAG}


def test_keeps_the_users_other_flags_and_is_idempotent():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x  --xla_cpu_use_onednn=true"}
    xla_settings.apply_training_settings(environ, VERIFIED)
    expected = f"--xla_dump_to=/tmp/x --xla_cpu_use_onednn=true {FLAG}"
    assert environ["XLA_FLAGS"] == expected
    assert xla_settings.apply_training_settings(environ, VERIFIED) == []
    assert environ["XLA_FLAGS"] == expected


@pytest.mark.parametrize(
    "users",
    [
        "--xla_cpu_enable_concurrency_optimized_scheduler=true",
        "--xla_cpu_enable_concurrency_optimized_scheduler",
        "xla_cpu_enable_concurrency_optimized_scheduler=false --xla_dump_to=/tmp/x",
    ],
)
def test_never_overrides_the_users_setting_of_the_flag(users):
    environ = {"XLA_FLAGS": users}
    assert xla_settings.apply_training_settings(environ, VERIFIED) == []
    assert environ == {"XLA_FLAGS": users}


@pytest.mark.parametrize("version", ["2.16.1", "2.22.0", "3.0.0", "2.21", "nightly"])
def test_adds_nothing_with_a_tensorflow_it_was_not_checked_with(version):
    environ: dict[str, str] = {}
    if version == "2.21":  # a bare major.minor is still 2.21
        assert xla_settings.apply_training_settings(environ, version) == [FLAG]
        return
    assert xla_settings.apply_training_settings(environ, version) == []
    assert environ == {}


def _compile_with(xla_flags: str) -> subprocess.CompletedProcess:
    """Compile and run a small XLA function in a fresh process with these XLA_FLAGS."""
    code = (
        "import tensorflow as tf\n"
        "f = tf.function(lambda x: tf.tanh(x @ x), jit_compile=True)\n"
        "print(float(tf.reduce_sum(f(tf.ones((4, 4))))))\n"
    )
    env = {**os.environ, "XLA_FLAGS": xla_flags, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_installed_xla_knows_the_flag():
    """XLA stops the process on a flag it does not know: the flag must be known wherever it
    is applied. (An unknown flag, the control, does stop it.)"""
    environ: dict[str, str] = {}
    if not xla_settings.apply_training_settings(environ):
        pytest.skip("the installed TensorFlow is not one the setting is applied with")
    done = _compile_with(environ["XLA_FLAGS"])
    assert done.returncode == 0, done.stderr[-2000:]
    total = float(done.stdout.strip().splitlines()[-1])
    assert total == pytest.approx(16 * math.tanh(4))  # every entry of x @ x is 4
    unknown = _compile_with("--xla_cpu_no_such_flag_for_the_test=false")
    assert unknown.returncode != 0 and "Unknown flag" in unknown.stderr


def test_the_command_applies_it_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert cli.main(["sample", str(tmp_path / "no_such_run")]) != 0
    expected = xla_settings.apply_training_settings({})
    assert os.environ.get("XLA_FLAGS", "").split() == expected
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_concurrency_optimized_scheduler=true")
    cli.main(["sample", str(tmp_path / "no_such_run")])
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"
