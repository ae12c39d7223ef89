"""The live status while jobs run: a status line on a terminal, "still running" lines in a log.

The terminal tests run pytest in a real pseudo-terminal (pexpect) and feed what it wrote to
a terminal emulator (pyte): the status line must have been drawn, and the final screen must
hold pytest's lines as pytest wrote them, with no status line left on it.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pexpect
import pyte
import pytest

from pytest_cidag.core.live import (
    ERASE_SEQUENCE,
    PREFIX,
    STILL_RUNNING,
    Counts,
    LiveTerminal,
    Marks,
    Running,
    draw_sequence,
    status_line,
    still_running_line,
)
from tests.conftest import JobWriter

# --- the text ----------------------------------------------------------------------------------


def test_the_status_line_names_each_running_job_with_its_worker_and_time_longest_first() -> None:
    running = [Running("k1", "lint", "gw1", since=97.2), Running("k2", "e2e", "gw0", since=25.0)]
    line = status_line(running, Counts(done=4, waiting=2, blocked=1), now=100.0, width=120)
    assert line == "cidag: running e2e (gw0, 75 s), lint (gw1, 2 s) | 4 done, 2 waiting, 1 blocked"


def test_a_narrow_terminal_counts_the_jobs_that_do_not_fit_and_keeps_the_counts() -> None:
    running = [Running(f"k{i}", f"job-{i}", f"gw{i}", since=float(i)) for i in range(5)]
    counts = Counts(done=1, waiting=0, blocked=0)
    line = status_line(running, counts, now=10.0, width=100)
    assert line == "cidag: running job-0 (gw0, 10 s), job-1 (gw1, 9 s), +3 more | 1 done, 0 waiting, 0 blocked"
    assert len(line) + len(", job-2 (gw2, 8 s)") > 99  # the next job would not have fitted
    tiny = status_line(running, counts, now=10.0, width=20)
    assert len(tiny) <= 19
    assert tiny.endswith("...")


def test_a_job_is_due_after_each_interval_once() -> None:
    marks = Marks(60)
    e2e, lint = Running("k1", "e2e", "gw0", since=0.0), Running("k2", "lint", "gw1", since=30.0)
    assert marks.due([e2e, lint], now=59.9) == []
    assert marks.due([e2e, lint], now=60.0) == [("e2e", 60)]
    assert marks.due([e2e, lint], now=61.0) == []
    assert marks.due([e2e, lint], now=90.5) == [("lint", 60)]
    # a late look names each job once, at the last interval it completed
    assert marks.due([e2e, lint], now=200.0) == [("e2e", 180), ("lint", 120)]
    marks.forget("k1")  # it ended: a job of that node id that starts again begins anew
    assert marks.due([Running("k1", "e2e", "gw0", since=190.0)], now=250.0) == [("e2e", 60)]


def test_several_jobs_due_at_once_share_one_line() -> None:
    assert still_running_line([("playwright-jupyter", 120.0)]) == "cidag: still running: playwright-jupyter, 120 s"
    assert still_running_line([("e2e", 120.0), ("lint", 60.0)]) == "cidag: still running: e2e, 120 s; lint, 60 s"


# --- the terminal, on an emulated screen --------------------------------------------------------


def emulated(rows: int = 5, columns: int = 40) -> tuple[pyte.Screen, list[str]]:
    """A screen, and a list whose appended text is what was written to it (as a pty does,
    "\\n" reaches the terminal as "\\r\\n")."""
    return pyte.Screen(columns, rows), []


def shown(screen: pyte.Screen, written: list[str]) -> list[str]:
    stream = pyte.Stream(screen)
    stream.feed("".join(written).replace("\n", "\r\n"))
    written.clear()
    return [row.rstrip() for row in screen.display]


class Stdout:
    """pytest's stdout as a job's ``-s`` output sees it: bytes, to the same terminal."""

    def __init__(self, written: list[str]) -> None:
        self.written = written

    def write(self, data: bytes, /) -> int:
        self.written.append(data.decode())
        return len(data)

    def flush(self) -> None:
        pass


def pytest_writes(terminal: LiveTerminal, written: list[str], text: str) -> None:
    """What pytest's terminal writer does with the live status on (internals.around_terminal_writes)."""
    with terminal.other():
        written.append(text)
        terminal.wrote(text, pytest_writer=True)


def test_the_status_line_is_drawn_under_an_unfinished_line_and_erased_before_pytest_writes() -> None:
    screen, written = emulated()
    terminal = LiveTerminal(written.append, tty=True)
    pytest_writes(terminal, written, "collected 2 items\n\ncijobs/a.sh ")
    terminal.show("cidag: running a (main, 2 s)")
    assert shown(screen, written)[:4] == ["collected 2 items", "", "cijobs/a.sh", "cidag: running a (main, 2 s)"]
    assert (screen.cursor.y, screen.cursor.x) == (2, len("cijobs/a.sh "))  # where pytest left it
    pytest_writes(terminal, written, ".")
    assert shown(screen, written)[2:4] == ["cijobs/a.sh .", ""]
    terminal.show("cidag: running b (main, 1 s)")
    pytest_writes(terminal, written, "\ncijobs/b.sh ")
    assert shown(screen, written)[2:5] == ["cijobs/a.sh .", "cijobs/b.sh", ""]
    assert not terminal.shown


def test_on_the_last_row_the_screen_scrolls_to_make_room_for_the_status_line() -> None:
    screen, written = emulated(rows=3)
    terminal = LiveTerminal(written.append, tty=True)
    pytest_writes(terminal, written, "one\ntwo\ncijobs/a.sh ")
    terminal.show("status")
    assert shown(screen, written) == ["two", "cijobs/a.sh", "status"]
    terminal.show("status, a second later")  # redrawn in place: nothing scrolls again
    assert shown(screen, written) == ["two", "cijobs/a.sh", "status, a second later"]
    pytest_writes(terminal, written, ".\n= 1 passed =\n")
    assert shown(screen, written) == ["cijobs/a.sh .", "= 1 passed =", ""]


def test_a_jobs_live_output_takes_turns_with_the_status_line() -> None:
    screen, written = emulated()
    terminal = LiveTerminal(written.append, tty=True)

    job = terminal.guard(Stdout(written))  # the job's -s output, to the same screen
    pytest_writes(terminal, written, "cijobs/a.sh ")
    job.write(b"building\n")
    terminal.show("cidag: running a (main, 1 s)")
    terminal.changed.clear()
    job.write(b"50 %")
    assert terminal.changed.is_set()  # the status thread draws it again soon
    assert shown(screen, written)[:3] == ["cijobs/a.sh building", "50 %", ""]
    terminal.show("cidag: running a (main, 2 s)")
    job.write(b" done\n")
    pytest_writes(terminal, written, ".")
    assert shown(screen, written)[:3] == ["cijobs/a.sh building", "50 % done", "."]


def test_plain_lines_break_pytests_line_and_pytest_goes_on_at_its_column() -> None:
    screen, written = emulated(rows=8, columns=60)
    column = 0
    terminal = LiveTerminal(written.append, tty=False, column=lambda: column)
    pytest_writes(terminal, written, "cijobs/a.sh ")
    column = len("cijobs/a.sh ")
    terminal.say("cidag: still running: a, 60 s")
    terminal.say("cidag: still running: a, 120 s")
    pytest_writes(terminal, written, ".")
    text = "".join(written)
    assert "\x1b" not in text  # a log gets plain lines, nothing else
    assert shown(screen, written)[:4] == [
        "cijobs/a.sh",
        "cidag: still running: a, 60 s",
        "cidag: still running: a, 120 s",
        "            .",
    ]


def test_a_plain_line_after_a_jobs_unfinished_output_starts_a_line_of_its_own() -> None:
    written: list[str] = []
    terminal = LiveTerminal(written.append, tty=False, column=lambda: 99)
    job = terminal.guard(Stdout(written))
    job.write(b"step 1\n")
    terminal.say("L1")
    job.write(b"progress")
    terminal.say("L2")
    assert "".join(written) == "step 1\nL1\nprogress\nL2\n"


def test_the_sequences_leave_the_cursor_where_it_was() -> None:
    screen = pyte.Screen(20, 4)
    stream = pyte.Stream(screen)
    stream.feed("abc")
    stream.feed(draw_sequence("x"))
    assert (screen.cursor.y, screen.cursor.x) == (0, 3)
    stream.feed(ERASE_SEQUENCE)
    assert (screen.cursor.y, screen.cursor.x) == (0, 3)
    assert [row.rstrip() for row in screen.display[:2]] == ["abc", ""]


# --- in a real pseudo-terminal ------------------------------------------------------------------

ROWS, COLUMNS = 60, 120


def run_in_pty(pytester: pytest.Pytester, *args: str) -> tuple[bytes, list[str]]:
    """Run pytest in a pseudo-terminal; what it wrote, and the screen it left."""
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    child: pexpect.spawn[bytes] = pexpect.spawn(
        sys.executable,
        ["-m", "pytest", "-p", "no:randomly", "--cidag-run-dir", "run", *args],
        cwd=str(pytester.path),
        env=env,
        dimensions=(ROWS, COLUMNS),
        timeout=60,
    )
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(child.read_nonblocking(65536, timeout=60))
        except pexpect.EOF:
            break
    child.close()
    assert child.exitstatus == 0, b"".join(chunks).decode(errors="replace")
    raw = b"".join(chunks)
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(raw)
    return raw, [row.rstrip() for row in screen.display if row.strip()]


def assert_no_status_left(screen: list[str]) -> None:
    """No status line on the final screen, nor a piece of one."""
    assert not any(PREFIX in row or " waiting, " in row for row in screen), screen


def two_jobs(job: JobWriter) -> None:
    job("quick", "echo quick")
    job("slow", "echo started; sleep 3; echo finished")


def worker_of(pytester: pytest.Pytester, job_id: str) -> str:
    record = json.loads((pytester.path / "run" / "run.json").read_text())
    return str(next(j["worker"] for j in record["jobs"] if j["id"] == job_id))


def test_a_tty_at_n0_shows_the_running_job_and_leaves_pytests_lines_intact(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    two_jobs(job)
    raw, screen = run_in_pty(pytester)
    assert re.search(rb"cidag: running slow \(main, [12] s\) \| 1 done, 0 waiting, 0 blocked", raw), raw
    assert_no_status_left(screen)
    assert re.fullmatch(r"cijobs/quick\.sh \. +\[ 50%\]", screen[-5]), screen
    assert re.fullmatch(r"cijobs/slow\.sh \. +\[100%\]", screen[-4]), screen
    assert screen[-3].startswith("cidag: job logs in ")
    assert screen[-2].startswith("cidag: critical path ")
    assert re.fullmatch(r"=+ 2 passed in [\d.]+s =+", screen[-1]), screen


def test_a_tty_with_s_shows_the_jobs_output_and_the_status_line_in_turn(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    two_jobs(job)
    raw, screen = run_in_pty(pytester, "-s")
    assert re.search(rb"cidag: running slow \(main, [12] s\)", raw), raw
    assert_no_status_left(screen)
    at = screen.index("cijobs/quick.sh quick")
    assert screen[at : at + 4] == [
        "cijobs/quick.sh quick",
        ".",
        "cijobs/slow.sh started",
        "finished",
    ], screen
    assert screen[at + 4] == "."
    assert re.fullmatch(r"=+ 2 passed in [\d.]+s =+", screen[-1]), screen


def test_a_tty_at_n2_names_the_worker_that_runs_the_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    two_jobs(job)
    raw, screen = run_in_pty(pytester, "-n", "2")
    seen = re.findall(rb"cidag: running slow \((gw[01]), [123] s\)", raw)
    assert seen, raw
    assert {w.decode() for w in seen} == {worker_of(pytester, "slow")}
    assert_no_status_left(screen)
    # xdist's progress as it is without the live status: dots and percentages, then 100 %. (Its
    # timing decides where pytest breaks the line, and a job that ends before the second
    # worker has collected gets its dot on the line xdist then rewrites with "2 workers".)
    start = next(i for i, row in enumerate(screen) if row.startswith("2 workers ["))
    end = next(i for i, row in enumerate(screen) if row.startswith("cidag: job logs in "))
    progress = "".join(screen[start:end]).replace(" ", "")
    assert re.fullmatch(r"2workers\[\d+items\](\.|\[\d+%\])*\.\[100%\]", progress), screen
    assert re.fullmatch(r"=+ 2 passed in [\d.]+s =+", screen[-1]), screen


# --- in a log -----------------------------------------------------------------------------------


def test_a_log_gets_a_still_running_line_per_interval_and_pytests_line_goes_on(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    job("slow", "sleep 3")
    result = pytester.runpytest("-o", "cidag_live_interval=1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cijobs/slow.sh ", "cidag: still running: slow, 1 s"])
    lines = result.stdout.lines
    said = [line for line in lines if line.startswith(STILL_RUNNING)]
    assert all(re.fullmatch(r"cidag: still running: slow, [1-9] s", line) for line in said), said
    after = lines[lines.index(said[-1]) + 1]
    assert re.fullmatch(r" {15}\. +\[100%\]", after), lines  # at the column pytest's line had
    assert "\x1b" not in result.stdout.str()


def test_a_log_at_n2_names_the_jobs_running_on_each_worker(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("one", "sleep 3")
    job("two", "sleep 3")
    result = pytester.runpytest_subprocess("-n", "2", "-o", "cidag_live_interval=1")
    result.assert_outcomes(passed=2)
    said = " ".join(line for line in result.stdout.lines if line.startswith(STILL_RUNNING))
    assert "one, 1 s" in said
    assert "two, 1 s" in said


@pytest.mark.parametrize("quiet", [["-q"], ["--cidag-live", "off"], ["-o", "cidag_live=off"]])
def test_quiet_or_off_prints_no_still_running_line(pytester: pytest.Pytester, job: JobWriter, quiet: list[str]) -> None:
    job("slow", "sleep 2")
    result = pytester.runpytest("-o", "cidag_live_interval=1", *quiet)
    result.assert_outcomes(passed=1)
    assert "still running" not in result.stdout.str()


# --- when it starts -----------------------------------------------------------------------------

RECORDS_IT = """
import json

def pytest_sessionfinish(session):
    with open("live.json", "w") as f:
        json.dump(session.config.pluginmanager.has_plugin("cidag-live"), f)
"""


@pytest.mark.parametrize(
    ("args", "started"),
    [
        ([], True),
        (["-q"], False),
        (["-p", "no:terminal"], False),
        (["--collect-only"], False),
        (["--cidag-live", "off"], False),
    ],
)
def test_it_starts_only_where_it_may_show_something(
    pytester: pytest.Pytester, job: JobWriter, args: list[str], started: bool
) -> None:
    job("ok", "true")
    pytester.makeconftest(RECORDS_IT)
    result = pytester.runpytest(*args)
    assert result.ret == 0
    assert json.loads((pytester.path / "live.json").read_text()) is started


def test_a_run_without_jobs_does_not_load_it(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", "true")  # a job directory the run does not reach
    pytester.makepyfile(
        test_some="""
        import sys

        def test_a():
            assert not [m for m in sys.modules if m.startswith("pytest_cidag.") and "live" in m]
        """
    )
    result = pytester.runpytest_subprocess("test_some.py")
    result.assert_outcomes(passed=1)
