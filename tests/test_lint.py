"""The code passes the project's lint (``[tool.ruff]`` in pyproject.toml) as CI runs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINTED = ("src", "tests", "benchmarks")


def _ruff() -> list[str] | None:
    """The ruff of this environment: the script next to the interpreter, else the installed module; None without."""
    script = Path(sys.executable).with_name("ruff")
    if script.exists():
        return [str(script)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return None


def test_ruff_finds_nothing_in_src_tests_and_benchmarks():
    ruff = _ruff()
    if ruff is None:
        pytest.skip(f"ruff is not installed in {sys.prefix} (pip install ruff, or the dev extra)")
    proc = subprocess.run([*ruff, "check", "--no-cache", *LINTED], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"ruff check {' '.join(LINTED)} found problems:\n{proc.stdout[-4000:]}{proc.stderr}"
