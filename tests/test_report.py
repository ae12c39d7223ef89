"""The timeline report (--cidag-report, cidag-report), from real runs' records.

What the report draws is checked in the figure the HTML file holds (plotly's data and
layout); tests/test_report_browser.py checks what a browser shows of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core import report
from pytest_cidag.core.report import EXTRA, Run, load_record, timeline
from tests.conftest import JobWriter
from tests.test_catalogue import entry
from tests.test_record import jobs_by_id, record_of

CIDAG_REPORT = Path(sysconfig.get_path("scripts")) / "cidag-report"
XDIST = pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])
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


def dag(job: JobWriter) -> None:
    """build -> unit, docs -> package; lint; broken -> blocked; a skip."""
    job("build", "sleep 0.3")
    job("lint", "true")
    job("unit", "sleep 0.1", needs='["build"]')
    job("docs", "true", needs='["build"]')
    job("package", "echo packed", needs='["unit", "docs"]')
    job("broken", "echo boom; exit 3")
    job("after-broken", "true", needs='["broken"]')
    job("no-docker", "echo 'docker is not installed'; exit 77")


def cidag_report(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    assert CIDAG_REPORT.is_file(), f"{CIDAG_REPORT}: the console script is not installed"
    return subprocess.run(
        [str(CIDAG_REPORT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=env
    )


@XDIST
def test_a_report_is_built_at_the_end_of_a_real_run(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    dag(job)
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--cidag-report")
    result.assert_outcomes(passed=5, failed=1, skipped=2)
    # one line naming the report, right after the critical path's
    lines = [line for line in result.outlines if line.startswith("cidag: ")]
    assert lines[-2].startswith("cidag: critical path ")
    assert lines[-1] == "cidag: timeline report: run/report.html"
    record = record_of(pytester.path / "run")
    jobs = jobs_by_id(record)
    data, layout = figure_of(pytester.path / "run" / "report.html")
    bars = bars_of(data)
    ran = {k for k, j in jobs.items() if j["outcome"] != "blocked"}
    assert set(bars) == ran
    for name in ran:
        outcome, start, width = bars[name]
        assert outcome == jobs[name]["outcome"]
        assert start == pytest.approx(jobs[name]["start"] - record["start"], abs=1e-6)
        assert width == pytest.approx(jobs[name]["end"] - jobs[name]["start"], abs=1e-6)
    blocked = jobs["after-broken"]
    outcome, symbol, at = marks_of(data)["after-broken"]
    assert (outcome, symbol) == ("blocked", "x")
    assert at == pytest.approx(blocked["start"] - record["start"], abs=1e-6)
    critical = [nodeid.rsplit("::", 1)[1] for nodeid in record["critical_path"]]
    assert critical_of(data) == critical and critical[-1] == "package"
    # one row per job, ordered by start (the blocked job's start is its skip)
    rows = layout["yaxis2"]["categoryarray"]
    assert rows == sorted(jobs, key=lambda k: jobs[k]["start"])
    # hover: worker, exact times, exit code, log
    (build_trace,) = [t for t in data if t["type"] == "bar" and t["name"] == "passed"]
    hover = build_trace["hovertext"][build_trace["y"].index("build")]
    build = jobs["build"]
    assert f"worker {build['worker']}" in hover
    assert f"start +{build['start'] - record['start']:.3f} s ({report.clock(build['start'])})" in hover
    assert f"duration {build['end'] - build['start']:.3f} s" in hover
    assert "exit code 0" in hover
    assert f"log {pytester.path / 'run' / 'build.log'}" in hover
    # CPU busy and iowait, on the panel's other axis
    cpu = {t["name"]: t for t in data if t["name"].startswith("CPU")}
    assert set(cpu) == {"CPU busy %", "CPU iowait %"}
    assert len(cpu["CPU busy %"]["x"]) == len(record["cpu"]) > 0
    assert cpu["CPU busy %"]["yaxis"] == "y"


def test_report_file_and_gates_from_ini(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "sleep 0.2")
    job("test", "true", needs='["build"]', matrix='{ py = ["3.11", "3.12"] }')
    job("late", "true", needs='["test"]')
    pytester.makeini("[pytest]\ncidag_report = out/timeline.html\ncidag_report_gates = build, test, nothing\n")
    result = pytester.runpytest("--cidag-run-dir", "run")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "cidag: report: gate 'nothing': no job of run run by that name ran",
            "cidag: timeline report: out/timeline.html",
        ]
    )
    assert not (pytester.path / "run" / "report.html").exists()
    record = record_of(pytester.path / "run")
    jobs = jobs_by_id(record)
    _, layout = figure_of(pytester.path / "out" / "timeline.html")
    lines = sorted(shape["x0"] for shape in layout["shapes"])
    ends = [jobs["build"]["end"], max(jobs["test[3.11]"]["end"], jobs["test[3.12]"]["end"])]
    assert lines == pytest.approx([end - record["start"] for end in ends], abs=1e-6)
    labels = [a["text"] for a in layout["annotations"] if a["text"].endswith(" ended")]
    assert labels == ["build ended", "test ended"]
    # the command line's gates win over the ini's
    pytester.runpytest("--cidag-run-dir", "run2", "--cidag-report-gates", "late")
    _, layout = figure_of(pytester.path / "out" / "timeline.html")
    assert [a["text"] for a in layout["annotations"] if a["text"].endswith(" ended")] == ["late ended"]


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


@pytest.fixture
def no_plotly(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment where ``import plotly`` fails as it does where the extra is not
    installed: a package of that name first on PYTHONPATH that raises ModuleNotFoundError."""
    blocked = pytester.path / "blocked" / "plotly"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'plotly\'", name="plotly")\n')
    path = os.pathsep.join(p for p in (str(blocked.parent), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return {**os.environ, "PYTHONPATH": path}


def test_without_the_extra_the_report_says_how_to_get_it(
    pytester: pytest.Pytester, job: JobWriter, no_plotly: dict[str, str]
) -> None:
    job("build", "touch ran")
    documented = entry("The timeline report without plotly")
    result = pytester.runpytest_subprocess(*documented.args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    said = report.MISSING_EXTRA.format(error="No module named 'plotly'", extra=EXTRA)
    assert documented.expected == [f"ERROR: cidag: --cidag-report: {said}"]
    assert documented.expected[0] in result.errlines
    assert not (pytester.path / "ran").exists()  # failed before any job ran
    # a run without the report is not concerned
    pytester.runpytest_subprocess("--cidag-run-dir", "run").assert_outcomes(passed=1)
    # cidag-report says the same
    proc = cidag_report("run", cwd=pytester.path, env=no_plotly)
    assert proc.returncode == 1
    assert proc.stderr == f"cidag-report: {said}\n"
    assert not (pytester.path / "run" / "report.html").exists()


def test_a_run_that_asks_no_report_imports_no_plotly(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "true")
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            loaded = sorted(m for m in ("plotly", "pytest_cidag.core.report") if m in sys.modules)
            with open("loaded.txt", "w") as f:
                f.write(" ".join(loaded) or "none")
        """
    )
    pytester.runpytest_subprocess("--cidag-run-dir", "run").assert_outcomes(passed=1)
    assert (pytester.path / "loaded.txt").read_text() == "none"
    pytester.runpytest_subprocess("--cidag-run-dir", "run2", "--cidag-report").assert_outcomes(passed=1)
    assert (pytester.path / "loaded.txt").read_text() == "plotly pytest_cidag.core.report"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cidag-report", "cijobs"],
            "ERROR: cidag_report: 'cijobs' from --cidag-report is not an .html file name: *",
        ),
        (["-o", "cidag_report=yes"], "ERROR: cidag_report: 'yes' from ini cidag_report must be on, off or an *"),
    ],
)
def test_a_report_path_that_is_no_html_file_is_refused(
    pytester: pytest.Pytester, job: JobWriter, args: list[str], message: str
) -> None:
    job("build", "true")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert (pytester.path / "cijobs" / "build.sh").read_text() == "true\n"  # not written over


def test_a_report_that_cannot_be_written_is_said_and_the_run_keeps_its_outcome(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    job("build", "true")
    (pytester.path / "taken.html").mkdir()
    result = pytester.runpytest("--cidag-run-dir", "run", "--cidag-report=taken.html")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["cidag: the timeline report was not written to taken.html (Is a directory)"])
    assert not list(pytester.path.glob(".taken.html*"))  # no temporary file left


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
