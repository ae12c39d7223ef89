"""The live status while jobs run: its text, and the terminal it shares, on an emulated screen (pyte)."""

from __future__ import annotations

import pyte

from pytest_cidag.core.live import (
    ERASE_SEQUENCE,
    Counts,
    LiveTerminal,
    Marks,
    Running,
    draw_sequence,
    status_line,
    still_running_line,
)

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
