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
from tests.test_catalogue import entry


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
    proc, pids_file = _start(pytester, "0.5", 3, *(["-n", "2"] if xdist else []))
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


#: A job that takes its TERM (writing when it came) and goes on until it is KILLed.
STUBBORN = """
trap 'date +%s.%N > "$CIDAG_RUN_DIR/term-$CIDAG_JOB"; echo "got TERM"' TERM
echo $$ >> "$CIDAG_RUN_DIR/pids"
echo "running"
while true; do sleep 0.05; done
"""


def _start_stubborn(pytester: pytest.Pytester, job: JobWriter, grace: str) -> tuple[subprocess.Popen[bytes], Path]:
    for name in ("one", "two"):
        job(name, STUBBORN)
    return _start(pytester, grace, 2, "-n", "2")


def _start(pytester: pytest.Pytester, grace: str, pids: int, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """pytest in the background, once its jobs have written ``pids`` pids."""
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", grace, *args],
        stdin=subprocess.DEVNULL,
    )
    pids_file = pytester.path / "run" / "pids"
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and len(pids_file.read_text().split()) == pids):
        assert time.monotonic() < deadline, "the jobs never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, pids_file


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_controller_alone_stops_jobs_with_the_kill_grace(
    pytester: pytest.Pytester, job: JobWriter, sig: signal.Signals
) -> None:
    """A CI cancel signals pytest's pid, not the workers: the jobs still get their TERM at
    once, then their kill grace, as at -n 0 (xdist alone lets each job run until execnet
    interrupts its worker after 5 s, and then cuts the grace short)."""
    grace = 1.0
    proc, pids_file = _start_stubborn(pytester, job, str(grace))
    sent = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert b"Traceback" not in out
    assert [pid for pid in read_pids(pids_file) if alive(pid)] == []
    reason = "interrupted" if sig == signal.SIGINT else "terminated by SIGTERM"
    for name in ("one", "two"):
        log = (pytester.path / "run" / f"{name}.log").read_text()
        assert log.startswith("running\n")  # (bash may say "Terminated" for its sleep)
        assert "got TERM\n" in log
        assert log.endswith(f"\n[cidag] job killed: {reason}\n")
        termed = float((pytester.path / "run" / f"term-{name}").read_text())
        # Execnet's own fallback cannot signal a worker before 5 s: the TERM came from us.
        assert termed - sent < 5
        # ... and it had its grace before the KILL: the trailer, written once the tree is
        # gone, is no earlier than a grace after the TERM (a lower bound: load cannot break it).
        killed = (pytester.path / "run" / f"{name}.log").stat().st_mtime
        assert killed - termed >= grace * 0.9


def test_second_interrupt_at_n2_ends_at_once_and_kills_every_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    """With a long kill grace the first Ctrl-C would wait for it; a second one ends the
    run at once, every job's tree killed, exit code 2 and no traceback."""
    proc, pids_file = _start_stubborn(pytester, job, "600")
    proc.send_signal(signal.SIGINT)
    terms = [pytester.path / "run" / f"term-{name}" for name in ("one", "two")]
    deadline = time.monotonic() + 60
    while not all(t.exists() for t in terms):  # the first Ctrl-C reached the jobs
        assert time.monotonic() < deadline, "the jobs never got their TERM"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # far less than the 600 s grace
    text = out.decode() + err.decode()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    assert entry("A second Ctrl-C under xdist").expected[0] in text.splitlines()
    assert [pid for pid in read_pids(pids_file) if alive(pid)] == []
