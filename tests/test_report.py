"""The timeline report (cidag-report), from real runs' records.

What the report draws is checked in the figure the HTML file holds (plotly's data and
layout).
"""

from __future__ import annotations

import json
import re
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core import report
from pytest_cidag.core.report import Run, load_record, timeline
from tests.conftest import JobWriter
from tests.test_record import jobs_by_id, record_of

CIDAG_REPORT = Path(sysconfig.get_path("scripts")) / "cidag-report"
#: The report's size may grow with plotly.js, but stays "a few MB at most" (issue 15).
MAX_BYTES = 6_000_000


def figure_of(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The plotly data and layout of a report, as its HTML file holds them."""
    page = path.read_text()
    assert not re.search(r"<script[^>]*\bsrc=|<link\b", page), "a report loads nothing: it opens offline"
    assert "plotly.js v" in page  # plotly.js itself is inlined
    assert path.stat().st_size < MAX_BYTES
    call = page.index('Plotly.newPlot(                        "cidag-timeline",') + len("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    _, at = decoder.raw_decode(page, re.compile(r"\s*").match(page, call).end())  # type: ignore[union-attr]
    data, at = decoder.raw_decode(page, re.compile(r"\s*,\s*").match(page, at).end())  # type: ignore[union-attr]
    layout, _ = decoder.raw_decode(page, re.compile(r"\s*,\s*").match(page, at).end())  # type: ignore[union-attr]
    return data, layout


def bars_of(data: list[dict[str, Any]], yaxis: str = "y2") -> dict[str, tuple[str, float, float]]:
    """job id -> (outcome, start, duration) of the outcome bars on one panel's job axis."""
    out = {}
    for trace in data:
        if trace["type"] == "bar" and trace["yaxis"] == yaxis and trace["name"] in report.COLOURS:
            for job, base, width in zip(trace["y"], trace["base"], trace["x"], strict=True):
                assert job not in out, f"{job} has two bars"
                out[job] = (trace["name"], base, width)
    return out


def marks_of(data: list[dict[str, Any]], yaxis: str = "y2") -> dict[str, tuple[str, str, float]]:
    """job id -> (outcome, symbol, time) of the marks on one panel's job axis."""
    out = {}
    for trace in data:
        if trace["type"] == "scatter" and trace["yaxis"] == yaxis and trace.get("mode") == "markers":
            for job, symbol, at in zip(trace["y"], trace["marker"]["symbol"], trace["x"], strict=True):
                out[job] = (trace["name"], symbol, at)
    return out


def critical_of(data: list[dict[str, Any]], yaxis: str = "y2") -> list[str]:
    return [job for t in data if t["name"] == "critical path" and t["yaxis"] == yaxis for job in t["y"]]


def cidag_report(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    assert CIDAG_REPORT.is_file(), f"{CIDAG_REPORT}: the console script is not installed"
    return subprocess.run(
        [str(CIDAG_REPORT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_cidag_report_stacks_two_runs_on_one_axis(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "sleep 0.1")
    job("test", "sleep 0.1", needs='["build"]')
    pytester.runpytest("--cidag-run-dir", "before").assert_outcomes(passed=2)
    job("build", "sleep 0.6")
    job("lint", "true", needs='["build"]')  # only in the second run
    pytester.runpytest("--cidag-run-dir", "after").assert_outcomes(passed=3)
    before, after = record_of(pytester.path / "before"), record_of(pytester.path / "after")

    proc = cidag_report("before", "after/run.json", "-o", "cmp.html", "--gates", "build", cwd=pytester.path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "cidag-report: wrote cmp.html\n", "")
    data, layout = figure_of(pytester.path / "cmp.html")
    # one row order for both panels: the first run's jobs by start, then the new one
    assert layout["yaxis2"]["categoryarray"] == layout["yaxis4"]["categoryarray"] == ["build", "test", "lint"]
    assert set(bars_of(data, "y2")) == {"build", "test"}
    assert set(bars_of(data, "y4")) == {"build", "test", "lint"}
    # time since each run's start, on one axis wide enough for the longer run
    for record, axis in ((before, "y2"), (after, "y4")):
        build = jobs_by_id(record)["build"]
        assert bars_of(data, axis)["build"][1] == pytest.approx(build["start"] - record["start"], abs=1e-6)
    assert layout["xaxis"]["matches"] == "x2"  # shared: zoom one, zoom both
    assert layout["xaxis"]["range"][1] >= after["end"] - after["start"]
    titles = [a["text"] for a in layout["annotations"] if a.get("yref") == "paper"]
    assert titles[0].startswith("<b>before</b>") and titles[1].startswith("<b>after</b>")
    gates = {shape["xref"]: shape["x0"] for shape in layout["shapes"]}
    assert gates == {
        "x": pytest.approx(jobs_by_id(before)["build"]["end"] - before["start"], abs=1e-6),
        "x2": pytest.approx(jobs_by_id(after)["build"]["end"] - after["start"], abs=1e-6),
    }
    # one run, no -o: report.html in its run directory
    proc = cidag_report("after", cwd=pytester.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "cidag-report: wrote after/report.html\n"
    assert set(bars_of(figure_of(pytester.path / "after" / "report.html")[0])) == {"build", "test", "lint"}


# --- records cidag-report cannot read (docs/errors.md runs the command for the first ones) --------


def _record(directory: Path, data: Any) -> Path:
    (directory / "run").mkdir(parents=True)
    (directory / "run" / "run.json").write_text(json.dumps(data))
    return directory / "run"


def test_a_record_that_is_not_whole_names_what_is_missing(tmp_path: Path) -> None:
    good = {"format": "pytest-cidag run record", "version": 1, "name": "r", "start": 1.0, "end": 2.0, "jobs": []}
    assert load_record(_record(tmp_path / "good", good)).record == good
    with pytest.raises(report.ReportError, match=r"run/run.json is not a whole run record: 'jobs' is missing$"):
        load_record(_record(tmp_path / "no-jobs", {k: v for k, v in good.items() if k != "jobs"}))
    job: dict[str, Any] = {
        "id": "a",
        "nodeid": "a.sh::a",
        "outcome": "passed",
        "start": "soon",
        "end": 2.0,
        "needs": [],
    }
    with pytest.raises(report.ReportError, match=r"not a whole run record: job 0: 'start' is \"soon\"$"):
        load_record(_record(tmp_path / "bad-job", {**good, "jobs": [job]}))
    with pytest.raises(report.ReportError, match=r"not a whole run record: CPU sample 1: 'busy' is missing$"):
        load_record(_record(tmp_path / "bad-cpu", {**good, "cpu": [{"t": 1, "busy": 2, "iowait": 0}, {"t": 2}]}))
    with pytest.raises(report.ReportError, match=r"not a whole run record: job 0: not an object$"):
        load_record(_record(tmp_path / "bad-jobs", {**good, "jobs": ["a"]}))


def test_a_json_file_of_something_else_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text('{"traceEvents": []}')
    with pytest.raises(report.ReportError, match=r'trace\.json is not a run record: it has no "format"'):
        load_record(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(report.ReportError, match=r"trace\.json is not a run record: not UTF-8 text"):
        load_record(path)


# --- what is drawn, from records made here (the pure part) --------------------------------------


def _job(name: str, start: float | None, end: float | None, **more: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": name,
        "nodeid": f"cijobs/{name}.sh::{name}",
        "worker": "gw0" if start is not None else None,
        "queued": None,
        "start": start,
        "end": end,
        "outcome": "passed",
        "reason": None,
        "exit_code": 0 if start is not None else None,
        "signal": None,
        "timeout": None,
        "needs": [],
        "log": f"{name}.log" if start is not None else None,
        "on_critical_path": False,
    }
    return {**job, **more}


def _run(name: str, start: float, end: float, jobs: list[dict[str, Any]]) -> Run:
    record = {"format": "pytest-cidag run record", "version": 1, "name": name, "start": start, "end": end}
    return Run({**record, "jobs": jobs, "cpu": None, "git": None, "workers": 2}, Path("/runs") / name)


def test_rows_follow_the_first_run_then_later_runs_then_jobs_that_never_ran() -> None:
    first = _run("a", 100, 110, [_job("late", 105, 106), _job("early", 101, 102), _job("gone", 103, 104)])
    second = _run(
        "b",
        500,
        520,
        [
            _job("early", 509, 510),  # later here, but the first run orders it
            _job("new", 501, 502),
            _job(
                "waits", None, None, outcome="cancelled", reason="not started: stopping", needs=["cijobs/new.sh::new"]
            ),
            _job("late", 502, 503),
        ],
    )
    tl = timeline([first, second])
    assert tl.rows == ("early", "gone", "late", "new", "waits")
    assert [b.job for b in tl.panels[1].bars] == ["early", "late", "new", "waits"]
    waits = tl.panels[1].bars[-1]
    # never started: an x where it was decided (the end of its need)
    assert (waits.start, waits.mark, waits.at, waits.bar) == (None, "x", 2.0, False)
    assert "not started: stopping" in waits.hover and "did not run" in waits.hover


def test_a_cancelled_job_with_no_needs_that_ran_is_marked_at_the_runs_end() -> None:
    tl = timeline([_run("a", 0, 7, [_job("x", None, None, outcome="cancelled", reason="not started")])])
    assert tl.panels[0].bars[0].at == 7


def test_hover_text_says_what_the_record_says() -> None:
    job = _job("slow", 101.25, 102.5, outcome="timeout", exit_code=None, signal="SIGTERM", timeout=1.25)
    job["queued"] = 101.0
    job["on_critical_path"] = True
    bar = timeline([_run("a", 100.0, 103.0, [job])]).panels[0].bars[0]
    assert bar.hover.split("<br>") == [
        "<b>slow</b>: timeout, on the critical path",
        "worker gw0",
        "queued +1.000 s",
        f"start +1.250 s ({report.clock(101.25)})",
        f"end +2.500 s ({report.clock(102.5)})",
        "duration 1.250 s",
        "signal SIGTERM",
        "timeout 1.25 s",
        "log /runs/a/slow.log",
    ]
    assert bar.critical and bar.bar and bar.mark is None


def test_a_job_id_is_escaped_in_the_hover_text() -> None:
    bar = timeline([_run("a", 0, 1, [_job("<b>&", 0.1, 0.2)])]).panels[0].bars[0]
    assert bar.hover.startswith("<b>&lt;b&gt;&amp;</b>: passed")


def test_a_cache_hit_too_short_to_see_gets_a_mark() -> None:
    tl = timeline([_run("a", 0, 30, [_job("hit", 1.0, 1.001, outcome="cached"), _job("long", 1.0, 29.0)])])
    hit, long = tl.panels[0].bars
    assert (hit.bar, hit.mark, hit.at) == (True, "diamond", 1.0)
    assert (long.bar, long.mark) == (True, None)


def test_gates_take_a_matrix_jobs_last_leg_and_warn_about_unknown_names() -> None:
    run = _run("a", 0, 10, [_job("t[1]", 1, 4), _job("t[2]", 1, 6), _job("b", 0, 1), _job("x", None, None)])
    tl = timeline([run], gates=["b", "t", "x", "nope"])
    assert tl.panels[0].gates == (("b", 1.0), ("t", 6.0))
    assert tl.warnings == (
        "gate 'x': no job of run a by that name ran",
        "gate 'nope': no job of run a by that name ran",
    )


def test_clock_is_local_time_to_the_millisecond() -> None:
    t = 1_700_000_000.0075
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.008", report.clock(t))
    assert report.clock(1_700_000_000.9996) == report.clock(1_700_000_001)  # rounds into the next second
