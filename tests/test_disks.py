"""Disks and run directories: read-only, unwritable or full disks, and concurrent runs.

Read-only and full filesystems are real ones: a tmpfs or a bind mount, made for the test
and unmounted after it (the test is skipped where mounting is not permitted). An unwritable
directory is tested unprivileged: as root, in a process without the capabilities that let
root ignore permission bits. The messages checked here are the docs/errors.md entries that
the catalogue cannot run (they need a mount).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import JobWriter
from tests.helpers import alive, read_pids
from tests.test_catalogue import entry

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


XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])


# --- a run directory that cannot be written ----------------------------------------------------


@XDIST
def test_read_only_run_dir_is_one_usage_error(
    pytester: pytest.Pytester, job: JobWriter, mount: Mount, xdist: list[str]
) -> None:
    job("build", "touch ran")
    mount(pytester.path / "ro", "-t", "tmpfs", "-o", "ro", "tmpfs")
    result = pytester.runpytest_subprocess("--cidag-run-dir", "ro/run", *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = result.outlines + result.errlines
    expected = "ERROR: cidag: cannot write the run directory ro/run (from --cidag-run-dir): Read-only file system"
    assert lines.count(expected) == 1, "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)
    assert not (pytester.path / "ran").exists()


@XDIST
def test_read_only_rootdir_is_one_usage_error(
    pytester: pytest.Pytester, job: JobWriter, mount: Mount, xdist: list[str]
) -> None:
    """The default run directory, under a read-only rootdir (a read-only bind mount of it)."""
    root = pytester.path / "project"  # pytester's own files stay writable
    job("build", "touch ran", directory="project/cijobs")
    (root / "pytest.ini").write_text("[pytest]\n")
    mount(root, "--bind", str(root))
    subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True)
    result = pytester.runpytest_subprocess("project/cijobs", "-p", "no:cacheprovider", *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = result.outlines + result.errlines
    wanted = "ERROR: cidag: cannot write the run directory *.cidag/runs/* (the default): Read-only file system"
    result.stderr.fnmatch_lines([wanted])
    assert sum(line.startswith("ERROR: cidag:") for line in lines) == 1, "\n".join(lines)
    assert not (root / "ran").exists()


def run_unprivileged(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a process that permission bits apply to. As root: without the capabilities
    that override them (root's own files keep their owner's bits)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv to drop the capabilities that ignore permission bits")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    return pytester.run(*command)


@XDIST
def test_unwritable_run_dir_is_one_usage_error(pytester: pytest.Pytester, job: JobWriter, xdist: list[str]) -> None:
    job("build", "touch ran")
    locked = pytester.path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_unprivileged(pytester, "--cidag-run-dir", "locked/run", *xdist)
    finally:
        locked.chmod(0o755)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = result.outlines + result.errlines
    expected = "ERROR: cidag: cannot write the run directory locked/run (from --cidag-run-dir): Permission denied"
    assert lines.count(expected) == 1, "\n".join(lines)
    assert not (pytester.path / "ran").exists()


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


# --- concurrent runs and pruning -------------------------------------------------------------


def spawn(pytester: pytest.Pytester, *args: str) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "--cidag-kill-grace", "0.3", *args],
        stdin=subprocess.DEVNULL,
    )
    return proc


def wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, "the job never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


WAITER = 'echo $$ > "$CIDAG_RUN_DIR/pid"\necho started; touch started\nuntil [ -e go ]; do sleep 0.05; done\necho done'


@XDIST
def test_a_run_in_progress_is_never_pruned(pytester: pytest.Pytester, job: JobWriter, xdist: list[str]) -> None:
    pytester.makeini("[pytest]\ncidag_keep_runs = 1\n")
    job("waiter", WAITER)
    job("quick", "echo quick")
    first = spawn(pytester, "-k", "waiter", *xdist)
    try:
        wait_for(pytester.path / "started", first)
        runs = pytester.path / ".cidag" / "runs"
        [first_run] = [p for p in runs.iterdir() if p.name[0].isdigit()]
        pytester.runpytest("-k", "quick", *xdist).assert_outcomes(passed=1)  # keeps 1: its own
        assert first_run.is_dir()
    finally:  # whatever failed, the waiter ends: no process outlives the test
        (pytester.path / "go").touch()
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out.decode()
    assert (first_run / "waiter.log").read_text() == "started\ndone\n"


def test_a_killed_runs_directory_is_pruned(pytester: pytest.Pytester, job: JobWriter) -> None:
    """Its lock went with the process: the kernel released it."""
    pytester.makeini("[pytest]\ncidag_keep_runs = 1\n")
    job("waiter", WAITER)
    job("quick", "echo quick")
    killed = spawn(pytester, "-k", "waiter")
    wait_for(pytester.path / "started", killed)
    runs = pytester.path / ".cidag" / "runs"
    [killed_run] = [p for p in runs.iterdir() if p.name[0].isdigit()]
    killed.kill()
    killed.wait()
    for pid in read_pids(killed_run / "pid"):  # the job outlived pytest (SIGKILL): end it here
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    pytester.runpytest("-k", "quick").assert_outcomes(passed=1)
    assert not killed_run.exists()


@XDIST
def test_old_runs_are_pruned_outside_every_jobs_timing(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str]
) -> None:
    """No job waits for the pruning, nor has it counted in its duration: while jobs run the
    old runs are all there; once the run is over, only the newest are left."""
    pytester.makeini("[pytest]\ncidag_keep_runs = 2\n")
    runs = pytester.path / ".cidag" / "runs"
    old = [f"2020010{i}-000000-1" for i in range(5)]
    for name in old:
        (runs / name).mkdir(parents=True)
        (runs / name / "a.log").write_text("old\n")
    job("first", "ls .cidag/runs > first-saw")
    job("last", "ls .cidag/runs > last-saw", needs='["first"]')
    pytester.runpytest(*xdist).assert_outcomes(passed=2)
    for seen in ("first-saw", "last-saw"):
        assert set(old) <= set((pytester.path / seen).read_text().split())
    kept = sorted(p.name for p in runs.iterdir() if p.name[0].isdigit())
    assert kept == [old[-1], (runs / "latest").resolve().name]
