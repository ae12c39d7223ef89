"""pytest itself is killed (a CI cancel, the OOM killer, ``kill -9``): no job process survives.

No code of a killed process runs, so these tests kill pytest for real with SIGKILL and check
that every process its jobs started (daemons that called ``setsid``, ``nohup`` children)
is gone soon after, and that each job's log says why it ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import JobWriter
from tests.helpers import PROC_MISSING, alive, read_pids

pytestmark = pytest.mark.skipif(PROC_MISSING, reason="the reaper finds a job's processes in /proc")

#: How long the tests wait for the kernel and the reaper: generous, since the box may be loaded.
#: Not a performance bound: the reaper acts at once; a grace of 0.5 s is given below.
PATIENCE = 60


def _write_jobs(job: JobWriter, parallel: bool) -> list[str]:
    """The issue's two jobs: a daemon-starting one and, when they can run at once, a plain one."""
    job(
        "daemon",
        """
        setsid sleep 6001 & echo $! >> "$CIDAG_RUN_DIR/pids"
        nohup sleep 6002 >/dev/null 2>&1 & echo $! >> "$CIDAG_RUN_DIR/pids"
        sleep 6003 & echo $! >> "$CIDAG_RUN_DIR/pids"
        echo $$ >> "$CIDAG_RUN_DIR/pids"
        echo started daemon
        wait
        """,
    )
    if not parallel:
        return ["daemon"]
    job("fg", 'echo $$ >> "$CIDAG_RUN_DIR/pids"\necho started fg\nexec sleep 6004')
    return ["daemon", "fg"]


def _start(pytester: pytest.Pytester, count: int, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", "0.5", *args],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=(pytester.path / "out.txt").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a CI runner's job is
    )
    pids_file = pytester.path / "run" / "pids"
    deadline = time.monotonic() + PATIENCE
    while not (pids_file.exists() and len(pids_file.read_text().split()) == count):
        if time.monotonic() > deadline or proc.poll() is not None:
            _kill_group(proc)
            out = (pytester.path / "out.txt").read_text()
            pytest.fail(f"the jobs never all started (pytest exit {proc.poll()}):\n{out}")
        time.sleep(0.05)
    return proc, pids_file


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _survivors(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + PATIENCE
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # do not leave them behind for the rest of the suite
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.parametrize(
    ("args", "whole_group"),
    [([], False), ([], True), (["-n", "2"], True), (["-n", "2"], False)],
    ids=["n0-pytest", "n0-group", "n2-group", "n2-controller"],
)
def test_sigkill_of_pytest_leaves_no_job_process(
    pytester: pytest.Pytester, job: JobWriter, args: list[str], whole_group: bool
) -> None:
    names = _write_jobs(job, parallel=bool(args))
    proc, pids_file = _start(pytester, 4 * names.count("daemon") + names.count("fg"), *args)
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and, at -n 2, its workers
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pids = read_pids(pids_file)
    assert _survivors(pids) == []
    if whole_group:  # (a controller killed alone leaves its workers to end the jobs)
        # The reaper writes the line once the job's processes are gone: wait for it.
        trailer = "[cidag] job killed: the pytest process running it died\n"
        for name in names:
            log_path = pytester.path / "run" / f"{name}.log"
            deadline = time.monotonic() + PATIENCE
            while not (log := log_path.read_text()).endswith(trailer) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert log == f"started {name}\n{trailer}"


def test_a_reaper_that_cannot_start_is_reported_and_the_jobs_still_run(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    job("ok", "echo fine")
    monkeypatch.setattr(sys, "executable", str(pytester.path / "no-such-python"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "cidag: could not start the reaper (*no-such-python: *No such file or directory*): "
            "had pytest been killed, its running jobs would have survived it"
        ]
    )
