"""A reaper: a small process that outlives the one running jobs, and ends their trees if it dies.

Pure: no pytest import.

No code runs in a process killed by SIGKILL (``kill -9``, the OOM killer, a CI runner's
cancel), so the process that starts jobs (pytest at ``-n 0``, each xdist worker) cannot
clean up after itself. Before its first job it starts a reaper: ``python -S`` in a session
of its own, so a signal to pytest's process group does not reach it, whose standard input
is a pipe with one writer: that process. Through the pipe the reaper learns each running
job's process group and log; the jobs also carry the reaper's tag in their environment.

When the pipe reaches its end without a goodbye, the writer died: the reaper kills every
process of the jobs that were running, with the search the runner uses at a job's end
(the job's process group, or the tag, which ``setsid`` and ``nohup`` children keep), TERM
then KILL after the grace, and ends each of those logs with a line saying why. A goodbye
(the run ended normally) or a job that ended makes it forget them; it then exits without
looking at any process.

What it cannot reach: a process that left the job's process group and dropped the tag
from its environment (``setsid env -i ...``), one started by a daemon outside the job
(``docker run`` asks dockerd), and anything at all if the reaper itself is killed. Without
/proc (not Linux) only the process groups are killed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from pytest_cidag.core import runner
from pytest_cidag.core.reaper_process import BYE

#: The tag's prefix: ``CIDAG_RTAG_<token>=1`` in every job's environment.
TAG_PREFIX = "CIDAG_RTAG_"
#: What it runs: the package's parent directory goes first on the path (``-S`` skips
#: site-packages, so start-up reads no .pth files). The process side is a module of its own
#: that imports next to nothing until it has to kill: up in ~10 ms, not the ~40 ms the
#: runner's imports take.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from pytest_cidag.core.reaper_process import main; main(sys.argv[2:])"
)


class Reaper:
    """The side of the process that runs jobs. Started by the first :meth:`job_started`'s
    caller through :meth:`start`; every method is safe to call from any thread, and none
    raises if the reaper is gone (it was killed: nothing to be done)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.variable = TAG_PREFIX + runner.new_token()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: Why the reaper could not be started (the jobs then run without one), else None.
        self.failed: str | None = None

    def start(self) -> None:
        """Start the reaper process, once (before a job is started, so none runs unwatched).

        If it cannot be started, the jobs still run (unwatched) and :attr:`failed` says why.
        """
        with self._lock:
            if self._proc is not None or self._closed or self.failed is not None:
                return
            package_parent = str(Path(__file__).resolve().parents[2])
            try:
                self._proc = self._spawn(package_parent)
            except OSError as exc:
                self.failed = f"{sys.executable or 'python'}: {exc}"

    def _spawn(self, package_parent: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, package_parent, self.variable, repr(self.grace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # never hold pytest's own output pipe open
            stderr=subprocess.DEVNULL,
            env={},  # no job's tag: ending a job must not end the reaper of a nested run
            start_new_session=True,  # out of reach of signals to pytest's process group
            close_fds=True,
        )

    def job_started(self, pgid: int, log_path: Path) -> None:
        self._send(b"+ %d %s\n" % (pgid, os.fsencode(log_path).hex().encode()))

    def job_ended(self, pgid: int) -> None:
        self._send(b"- %d\n" % pgid)

    def close(self) -> None:
        """The run ended (every job's tree is gone): say goodbye and let the reaper exit."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(BYE + b"\n")
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # it exits at once: only start-up can take a moment

    def _send(self, line: bytes) -> None:
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            assert proc.stdin is not None
            with contextlib.suppress(OSError):  # the reaper was killed
                proc.stdin.write(line)
                proc.stdin.flush()
