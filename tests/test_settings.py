"""A misconfigured variable stops start-up with a message that names it."""

import os
import subprocess
import sys

import pytest

from .stack import ROOT


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_MAX_CONCURRENCY", "ten"),
        ("LLM_MAX_CONCURRENCY", "0"),
        ("LLM_TIMEOUT_S", "-1"),
        ("DEBUG", "maybe"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("LLM_BASE_URL", "ftp://example.com"),
        ("DATABASE_URL", "nonsense"),
    ],
)
def test_a_bad_value_names_its_variable(name, value, tmp_path):
    env = {**os.environ, name: value, "BATON_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert name in result.stderr


def test_good_defaults_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["BATON_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").exists()


def test_the_secret_key_and_var_are_private(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env["BATON_VAR_DIR"] = str(var)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (var / "secret_key").stat().st_mode & 0o777 == 0o600
    assert var.stat().st_mode & 0o777 == 0o700  # the SQLite files inside are the owner's too
    first = (var / "secret_key").read_text()
    subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, check=True)
    assert (var / "secret_key").read_text() == first  # generated once, then kept
