"""The live status while jobs run: a status line on a terminal, "still running" lines in a log.

Started by :meth:`pytest_cidag.session.JobsPlugin.claim_run_dir`, so only in the process
that schedules the jobs (the xdist controller, or the only process) of a run that has jobs,
and imported only then. It learns what runs from ``pytest_runtest_logstart`` and the
reports, which that process sees for every job on every worker: a job runs from its
logstart (at ``-n N``, the moment its worker began it, not when it was sent there) until
its teardown report. The worker is the one the scheduler last sent it to.

A thread draws: pytest's main thread waits on a job at ``-n 0`` and on xdist's events at
``-n N``. Everything written to the terminal takes turns through one
:class:`~pytest_cidag.core.live.LiveTerminal`: pytest's terminal writer (every write, see
:func:`pytest_cidag.internals.around_terminal_writes`), a job's ``-s`` output
(:data:`~pytest_cidag.keys.LIVE_KEY`) and this thread. The text and the escape sequences
are :mod:`pytest_cidag.core.live`'s.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_cidag import internals
from pytest_cidag.core.live import Counts, LiveTerminal, Marks, Running, status_line, still_running_line
from pytest_cidag.core.settings import Settings
from pytest_cidag.core.status import Status
from pytest_cidag.keys import LIVE_KEY, OUTCOMES_KEY, RUN_KEY

#: A status line is drawn once a job has run this long (seconds): a run of quick jobs
#: never flashes one.
SHOW_AFTER = 1.0
#: Seconds between two redraws of the status line (its clocks tick in whole seconds).
REDRAW = 1.0
#: After another writer wrote, the status line comes back once it has been quiet this long.
SETTLE = 0.05


def start_live(config: pytest.Config, settings: Settings) -> LiveStatus | None:
    """Start the live status, unless there is nowhere to show it or it must be quiet: no
    terminal reporter (``-p no:terminal``), ``-q``, ``--collect-only``."""
    if config.get_verbosity() < 0 or config.getoption("collectonly"):
        return None
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return None
    live = LiveStatus(config, settings)
    config.pluginmanager.register(live, "cidag-live")
    live.start()
    return live


class LiveStatus:
    """Which jobs run since when, what the run's other jobs came to, and the thread that
    shows it.

    Attributes:
        terminal: the terminal every writer shares.
        fd: a duplicate of the terminal's descriptor that this thread writes to (pytest's
            capture of a test's output moves descriptor 1, not this one), or None where
            pytest's stream has none (it is then written to directly).
        running: node id -> the job running under it (main thread writes, the thread reads,
            both under ``lock``).
        done, blocked: node ids of jobs that ended, and that were skipped as blocked.
        marks: when each running job is next due for a "still running" line (plain mode).
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        stream = internals.terminal_stream(config)
        self.fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            self.fd = os.dup(stream.fileno())
        encoding = getattr(stream, "encoding", None) or "utf-8"
        out: Callable[[str], None]
        if self.fd is not None:
            fd = self.fd

            def out(text: str) -> None:
                data = text.encode(encoding, "replace")
                while data:
                    data = data[os.write(fd, data) :]

            tty = os.isatty(fd)
        else:

            def out(text: str) -> None:
                stream.write(text)
                stream.flush()

            tty = stream.isatty()
        writer = config.get_terminal_writer()
        self.terminal = LiveTerminal(
            out, tty=tty and os.environ.get("TERM") != "dumb", column=lambda: writer.width_of_current_line
        )
        self.lock = threading.Lock()
        self.running: dict[str, Running] = {}
        self.done: set[str] = set()
        self.blocked: set[str] = set()
        self.jobs: int | None = None  # how many jobs the run has, once its graph is known
        self.marks = Marks(settings.live_interval)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self._undo_writes: Callable[[], None] | None = None

    def start(self) -> None:
        self._undo_writes = internals.around_terminal_writes(self.config, self._pytest_writes)
        self.config.stash[LIVE_KEY] = self.terminal
        self.thread = threading.Thread(target=self._loop, name="cidag-live", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop the thread and take the status line off the screen (idempotent)."""
        if self.thread is not None:
            self.stopping.set()
            self.terminal.changed.set()
            self.thread.join(timeout=5)
            self.thread = None
            self.terminal.hide()
        if self._undo_writes is not None:
            self._undo_writes()
            self._undo_writes = None
        if LIVE_KEY in self.config.stash:
            del self.config.stash[LIVE_KEY]
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    @contextlib.contextmanager
    def _pytest_writes(self, text: str) -> Iterator[None]:
        with self.terminal.other():
            yield
            self.terminal.wrote(text, pytest_writer=True)

    # --- what runs -----------------------------------------------------------------------

    def _label(self, nodeid: str) -> str | None:
        graph = self.config.stash[RUN_KEY].graph
        node = graph.nodes.get(nodeid) if graph is not None else None
        return node.label if node is not None and node.is_job else None

    def _count_jobs(self) -> int:
        if self.jobs is None:
            run = self.config.stash[RUN_KEY]
            graph = run.graph
            assert graph is not None  # a job has started
            self.jobs = sum(1 for key in run.run_keys if key in graph.nodes and graph.nodes[key].is_job)
        return self.jobs

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        label = self._label(nodeid)
        if label is None:
            return
        self._count_jobs()
        if self.config.stash[OUTCOMES_KEY].status(nodeid) == Status.BLOCKED:
            return  # a worker reports it skipped (-n N): it does not run
        controller = self.config.pluginmanager.get_plugin("cidag-controller")
        worker = "main" if controller is None else controller.dispatched_to.get(nodeid, "?")
        with self.lock:
            self.running[nodeid] = Running(nodeid, label, worker, time.monotonic())

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # the teardown report ends a job's protocol; xdist reports a crashed worker's job
        # with when="???" and nothing after
        if str(report.when) not in ("setup", "call"):
            self._ended(report.nodeid)

    @pytest.hookimpl
    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._ended(nodeid)

    def _ended(self, nodeid: str) -> None:
        if self._label(nodeid) is None:
            return
        blocked = self.config.stash[OUTCOMES_KEY].status(nodeid) == Status.BLOCKED
        with self.lock:
            self.running.pop(nodeid, None)
            self.marks.forget(nodeid)
            (self.blocked if blocked else self.done).add(nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        # tryfirst: before the terminal reporter's summary, and the run's other lines
        self.stop()

    @pytest.hookimpl
    def pytest_unconfigure(self) -> None:
        self.stop()  # a session that never finished (an internal error)

    # --- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        terminal = self.terminal
        # plain lines need only be on time to about a second (half an interval when shorter)
        period = REDRAW if terminal.tty else min(REDRAW, self.settings.live_interval / 2)
        while not self.stopping.is_set():
            if terminal.tty:
                if terminal.changed.wait(REDRAW):
                    self.stopping.wait(SETTLE)  # let a burst of pytest's writes end
                    terminal.changed.clear()
            else:
                self.stopping.wait(period)
            if self.stopping.is_set():
                return
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """Draw the status line (or take it away), or write a "still running" line."""
        with self.lock:
            running = list(self.running.values())
            jobs = self.jobs or 0
            counts = Counts(
                done=len(self.done),
                waiting=max(0, jobs - len(self.done) - len(self.blocked) - len(running)),
                blocked=len(self.blocked),
            )
            due = [] if self.terminal.tty else self.marks.due(running, now)
        if not self.terminal.tty:
            if due:
                self.terminal.say(still_running_line(due))
        elif running and now - min(r.since for r in running) >= SHOW_AFTER:
            self.terminal.show(status_line(running, counts, now, self._width()))
        else:
            self.terminal.hide()

    def _width(self) -> int:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                return os.get_terminal_size(self.fd).columns
        return int(self.config.get_terminal_writer().fullwidth)
