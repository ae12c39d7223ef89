"""Disks and run directories: read-only, unwritable or full disks, and concurrent runs.

Read-only and full filesystems are real ones: a tmpfs or a bind mount, made for the test
and unmounted after it (the test is skipped where mounting is not permitted). An unwritable
directory is tested unprivileged: as root, in a process without the capabilities that let
root ignore permission bits. The messages checked here are the docs/errors.md entries that
the catalogue cannot run (they need a mount).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import JobWriter
from tests.test_catalogue import Entry, entries

Mount = Callable[..., Path]


@pytest.fixture
def mount() -> Iterator[Mount]:
    """``mount(target, *args)`` runs ``mount *args target``; skips the test where not permitted."""
    mounted: list[Path] = []

    def do(target: Path, *args: str) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no mount command")
        done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mounting is not permitted here: {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield do
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def fill(directory: Path) -> None:
    """Write into ``directory`` until its filesystem is full."""
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC


def entry(title: str) -> Entry:
    return next(e for e in entries() if e.title == title)


XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])


# --- a full disk --------------------------------------------------------------------------------


@XDIST
def test_full_disk_keeps_each_jobs_real_outcome_and_says_the_log_is_incomplete(
    pytester: pytest.Pytester, job: JobWriter, mount: Mount, xdist: list[str]
) -> None:
    disk = mount(pytester.path / "full-disk", "-t", "tmpfs", "-o", "size=256k", "tmpfs")
    (disk / "run").mkdir()
    fill(disk)
    job("lost", 'echo "this output is lost"\nexit 0')
    job("write-error", "set -e\necho hello")
    job("slow", "sleep 30", timeout="0.5")
    job("after", "true", needs='["lost"]')
    result = pytester.runpytest_subprocess(
        "--cidag-run-dir", "full-disk/run", "--cidag-kill-grace", "0.3", "-rA", *xdist
    )
    result.assert_outcomes(passed=2, failed=2)
    lines = result.outlines
    assert "PASSED cijobs/lost.sh::lost" in lines
    assert "PASSED cijobs/after.sh::after" in lines
    result.stdout.fnmatch_lines(["job 'write-error' failed: exit code 1"])
    result.stdout.fnmatch_lines(["job 'slow' failed: Timeout (>0.5s): the job's process tree was killed"])
    assert "could not start" not in result.stdout.str()
    warning = entry("A full disk").expected[0]
    for name in ("lost", "write-error", "slow"):
        result.stdout.fnmatch_lines([warning.replace("build", name)])
