"""This project's own lint jobs, run by pytest-cidag itself: main stays lint-clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def pytest_in_root(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m pytest cijobs ARGS`` in this project, outside any outer run's settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("CIDAG_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "cijobs", "-p", "no:randomly", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_ruff_and_mypy_jobs_pass(tmp_path: Path) -> None:
    proc = pytest_in_root(
        "-m", "lint", "-p", "no:cacheprovider", "--cidag-run-dir", str(tmp_path / "run"), "-q", "-rA", timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "2 passed" in proc.stdout


def collect(*args: str) -> list[str]:
    proc = pytest_in_root("--collect-only", "-q", *args, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_the_suite_runs_on_every_python_we_claim_and_prereleases_only_when_asked() -> None:
    claimed = [
        line.rsplit(":: ", 1)[1].strip('",')
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if "Programming Language :: Python :: 3." in line
    ]
    assert claimed == ["3.11", "3.12", "3.13"]
    default = collect()
    assert [f"cijobs/tests.sh::tests[{v}]" for v in claimed] == [i for i in default if "tests.sh" in i]
    assert not [i for i in default if "prerelease" in i]
    assert collect("-m", "prerelease") == ["cijobs/prerelease.sh::prerelease"]
