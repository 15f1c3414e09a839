"""The code passes the project's linter (ruff, configured in pyproject.toml), so CI checks style with the tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["distill", "subsets", "teachers", "students", "tests", "benchmarks", "scripts"]


def test_the_code_passes_ruff():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *CODE], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
