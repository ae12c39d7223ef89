"""Ctrl-C while a job runs: the job's tree ends and its log stays readable."""

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
from tests.helpers import alive, read_pids


@pytest.mark.parametrize("xdist", [False, True], ids=["no-xdist", "xdist"])
def test_ctrl_c_kills_the_running_job(pytester: pytest.Pytester, job: JobWriter, xdist: bool) -> None:
    job(
        "long",
        """
        echo "output before the interrupt"
        sleep 100 & echo $! >> "$CIDAG_RUN_DIR/pids"
        setsid sleep 100 & echo $! >> "$CIDAG_RUN_DIR/pids"
        echo $$ >> "$CIDAG_RUN_DIR/pids"
        sleep 100
        """,
    )
    args = ["-n", "2"] if xdist else []
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", "0.5", *args],
        stdin=subprocess.DEVNULL,
    )
    pids_file = pytester.path / "run" / "pids"
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and len(pids_file.read_text().split()) == 3):
        assert time.monotonic() < deadline, "the job never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    if xdist:
        # Ctrl-C in a terminal reaches the whole foreground process group: pytest and its workers.
        for pid in [proc.pid, *_children(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in out
    assert [pid for pid in read_pids(pids_file) if alive(pid)] == []
    log = (pytester.path / "run" / "long.log").read_text()
    assert log.startswith("output before the interrupt\n")
    assert log.endswith("[cidag] job killed: interrupted\n")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]
