"""This project's own lint jobs, run by pytest-cidag itself: main stays lint-clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ruff_and_mypy_jobs_pass(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("CIDAG_JOB")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "cijobs",
            "-m",
            "lint",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--cidag-run-dir",
            str(tmp_path / "run"),
            "-q",
            "-rA",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "2 passed" in proc.stdout
