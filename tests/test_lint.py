"""The project's code passes its linter (ruff, as ruff.toml sets it: pyflakes, pycodestyle, import
order, no line over 120 characters), so CI fails on a lint error as on a failing test."""

import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_finds_nothing():
    found = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stdout + found.stderr
