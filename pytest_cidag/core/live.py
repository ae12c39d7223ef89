"""The live status of a run: what the terminal shows while jobs run. Pure: no pytest import.

On a terminal, one status line under pytest's output, redrawn in place: which jobs run, on
which worker, for how long, and how many are done, waiting and blocked. Elsewhere (a CI
log), a plain line each time a job has run for another interval ("still running: e2e,
120 s"), and nothing else. Here are the lines' text, the escape sequences that draw and
erase the status line, and :class:`LiveTerminal`, through which every writer of the
terminal takes its turn (pytest's terminal writer, a job's ``-s`` output, the status
thread). The pytest side is :mod:`pytest_cidag.live`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_cidag.core.runner import Sink

#: How the status line starts (a test looks for it on the screen).
PREFIX = "cidag: running "
#: How a "still running" line starts.
STILL_RUNNING = "cidag: still running: "

# The status line is drawn on the row under the cursor, which is left where it was: pytest's
# current line may be unfinished ("cijobs/build.sh " while that job runs), so nothing may
# move it. IND (ESC D) and RI (ESC M) move down and up one row keeping the column; IND
# scrolls at the bottom row, so DOWN_UP makes sure a row exists under the cursor first.
# DECSC/DECRC (ESC 7, ESC 8) save and restore the cursor.
_SAVE, _RESTORE, _DOWN, _UP, _CLEAR_ROW = "\x1b7", "\x1b8", "\x1bD", "\x1bM", "\r\x1b[2K"


def draw_sequence(text: str) -> str:
    """Writes ``text`` on the row under the cursor (made if the cursor is on the last row);
    the cursor stays where it was."""
    return f"{_DOWN}{_UP}{_SAVE}{_DOWN}{_CLEAR_ROW}{text}{_RESTORE}"


#: Clears the row under the cursor (where :func:`draw_sequence` drew); the cursor stays.
ERASE_SEQUENCE = f"{_SAVE}{_DOWN}{_CLEAR_ROW}{_RESTORE}"


@dataclass(frozen=True)
class Running:
    """A job that runs now."""

    key: str  # its node id
    label: str  # its id, as the terminal shows it
    worker: str  # the xdist worker ("gw0"), or "main" in a run without workers
    since: float  # when it started (a monotonic clock's seconds)


@dataclass(frozen=True)
class Counts:
    """The run's jobs that are not running: ended (any outcome but blocked), not started
    yet, and skipped because something they need did not pass."""

    done: int = 0
    waiting: int = 0
    blocked: int = 0


def seconds(value: float) -> str:
    """``12 s``: whole seconds, as a person reads a running clock."""
    return f"{int(max(0.0, value))} s"


def status_line(running: Sequence[Running], counts: Counts, now: float, width: int) -> str:
    """``cidag: running e2e (gw0, 75 s), lint (gw1, 3 s) | 4 done, 2 waiting, 0 blocked``,
    the longest-running first, at most ``width - 1`` characters (a line as wide as the
    terminal would wrap on some terminals): jobs that do not fit are counted ("+2 more"),
    the counts stay."""
    tail = f" | {counts.done} done, {counts.waiting} waiting, {counts.blocked} blocked"
    jobs = [f"{r.label} ({r.worker}, {seconds(now - r.since)})" for r in sorted(running, key=lambda r: r.since)]
    limit = max(1, width - 1)
    line = PREFIX + "nothing" + tail
    for shown in range(len(jobs), -1, -1):
        names = jobs[:shown] + ([f"+{len(jobs) - shown} more"] if shown < len(jobs) else [])
        line = PREFIX + ", ".join(names or ["nothing"]) + tail
        if len(line) <= limit:
            return line
    return line[: max(0, limit - 3)] + "..."


class Marks:
    """When each running job is due for a "still running" line: after it has run for one
    interval, and each interval after.

    Attributes:
        interval: the seconds between two lines about one job.
        reported: node id -> how many intervals of it have been reported.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.reported: dict[str, int] = {}

    def due(self, running: Sequence[Running], now: float) -> list[tuple[str, float]]:
        """The jobs that have run another interval since they were last named, each with
        the time it has run (a whole number of intervals), longest-running first. A job
        that crossed several marks since (a slow tick) is named once, at the last one."""
        due = []
        for job in sorted(running, key=lambda r: r.since):
            marks = int((now - job.since) // self.interval)
            if marks > self.reported.get(job.key, 0):
                self.reported[job.key] = marks
                due.append((job.label, marks * self.interval))
        return due

    def forget(self, key: str) -> None:
        self.reported.pop(key, None)


def still_running_line(due: Sequence[tuple[str, float]]) -> str:
    """``cidag: still running: e2e, 120 s; lint, 60 s``."""
    return STILL_RUNNING + "; ".join(f"{label}, {value:g} s" for label, value in due)


class LiveTerminal:
    """The terminal, shared by the status thread and every other writer.

    Every other writer writes inside :meth:`other`: the status line is erased first (on a
    terminal), and :attr:`changed` is set so the status thread draws it again soon.
    Writes through ``out`` are unbuffered and go straight to the terminal.

    Attributes:
        out: writes text to the terminal at once.
        tty: draw a status line (True), or write plain lines (False).
        column: where the other writer's current line ends (pytest's terminal writer's
            idea of it), for a plain line that has to break it.
        lock: held by a writer for the whole of its write.
        shown: the status line is on the screen.
        changed: another writer wrote since the status thread last looked.
        last: who wrote last: "pytest" (its writer's ``column`` says where its line ends),
            "job" (a job's ``-s`` output), "us" (a plain line, which ends its line).
        job_line_ended: the job's output ended its line.
        pad: plain mode: spaces to write before pytest's next output, so that it goes on
            at the column it thinks it is at (its progress "[ 50%]" stays aligned).
    """

    def __init__(self, out: Callable[[str], None], *, tty: bool, column: Callable[[], int] = lambda: 0) -> None:
        self.out = out
        self.tty = tty
        self.column = column
        self.lock = threading.RLock()
        self.shown = False
        self.changed = threading.Event()
        self.last = "pytest"
        self.job_line_ended = True
        self.pad = 0

    @contextlib.contextmanager
    def other(self, *, pytest_writer: bool = True) -> Iterator[None]:
        """Around another writer's write: the status line is off the screen meanwhile."""
        with self.lock:
            self._erase()
            if self.pad and pytest_writer:
                self.out(" " * self.pad)
            self.pad = 0
            try:
                yield
            finally:
                self.changed.set()

    def show(self, text: str) -> None:
        """Draw (or redraw) the status line (terminal mode)."""
        with self.lock:
            self.out(draw_sequence(text))
            self.shown = True

    def hide(self) -> None:
        """Take the status line off the screen, if it is on it."""
        with self.lock:
            self._erase()

    def _erase(self) -> None:
        if self.shown:
            self.out(ERASE_SEQUENCE)
            self.shown = False

    def say(self, line: str) -> None:
        """Write ``line`` as a line of its own (plain mode), breaking the current line if it
        is unfinished; pytest's writer goes on at its column after it."""
        with self.lock:
            if self.last == "pytest":
                self.pad = self.column()
                start = self.pad == 0
            else:  # after a job's output, pytest's idea of its column is wrong anyway
                start = self.last == "us" or self.job_line_ended
            self.out(("" if start else "\n") + line + "\n")
            self.last = "us"

    def wrote(self, text: str | bytes, *, pytest_writer: bool) -> None:
        """Note where another writer left the cursor (call within :meth:`other`)."""
        if pytest_writer:
            self.last = "pytest"
        elif text:
            self.last = "job"
            self.job_line_ended = text[-1:] in (b"\n", "\n")

    def guard(self, stream: Sink) -> Sink:
        """``stream`` (a job's ``-s`` output), written in turn with the status line."""
        return _Guarded(self, stream)


class _Guarded:
    """A job's ``-s`` output: each chunk written inside :meth:`LiveTerminal.other`."""

    def __init__(self, terminal: LiveTerminal, stream: Sink) -> None:
        self.terminal = terminal
        self.stream = stream

    def write(self, data: bytes, /) -> int:
        with self.terminal.other(pytest_writer=False):
            self.stream.write(data)
            self.stream.flush()
            self.terminal.wrote(data, pytest_writer=False)
        return len(data)

    def flush(self) -> None:
        pass  # every write is flushed before the status line may come back
