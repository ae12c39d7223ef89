"""The timeline report: one self-contained HTML file drawn from one or more run records
(``run.json``), and the ``cidag-report`` command. No pytest import.

What is drawn is decided here from the records' dicts (:func:`timeline`: rows, bars, hover
texts, CPU samples, gate lines), so it is testable without plotly or a browser; only
:func:`figure` draws, with plotly, which is the optional extra ``pytest-cidag[report]`` and
is imported only then. :func:`require_plotly` says how to get it when it is missing.
The record's format: docs/run-record.md.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cidag.core.critpath import NOT_RUN
from pytest_cidag.core.record import FORMAT_VERSION, RECORD_NAME

#: The file a report is written to in a run directory.
REPORT_NAME = "report.html"
#: Where ``cidag-report`` writes a report of several runs when not told (the current directory).
COMPARE_NAME = "cidag-report.html"
EXTRA = "pytest-cidag[report]"
#: Said by ``--cidag-report`` and ``cidag-report`` when plotly cannot be imported.
MISSING_EXTRA = "the timeline report needs plotly, which is not installed ({error}): pip install '{extra}'"
RECORD_FORMAT = "pytest-cidag run record"

#: A colour per outcome (Okabe and Ito's palette, told apart by colour-blind readers too).
COLOURS: Mapping[str, str] = {
    "passed": "#009E73",
    "failed": "#D55E00",
    "error": "#CC79A7",
    "timeout": "#E69F00",
    "skipped": "#999999",
    "blocked": "#BBBBBB",
    "cancelled": "#8C6D31",
    "cached": "#56B4E9",
}
#: The outline of a bar on the critical path.
CRITICAL = "#000000"
#: The CPU overlay: (name, fill, line) of busy and iowait.
CPU_BUSY = ("CPU busy %", "rgba(0, 114, 178, 0.12)", "rgba(0, 114, 178, 0.6)")
CPU_IOWAIT = ("CPU iowait %", "rgba(213, 94, 0, 0.30)", "rgba(213, 94, 0, 0.8)")
#: Pixels per job row, and around each run's panel.
ROW_PX = 22
PANEL_PX = 70
#: A bar shorter than this share of the time axis gets a mark, so that it can be seen.
SHORT = 1 / 300
#: Rows' worth of room above each panel's first row, for the labels of the gate lines.
GATE_BAND = 1.2


class ReportError(Exception):
    """A report that cannot be drawn: a record that cannot be read (the message names the
    file), or plotly missing (:class:`MissingExtra`)."""


class MissingExtra(ReportError):
    """plotly cannot be imported: the message says how to install it."""


def require_plotly() -> None:
    """Raise :class:`MissingExtra` unless plotly can be imported (plotly's top-level import
    is light: its figure classes load when first used)."""
    try:
        import plotly  # type: ignore[import-untyped]  # noqa: F401  # no stubs; only imported here
    except ImportError as exc:
        raise MissingExtra(MISSING_EXTRA.format(error=exc, extra=EXTRA)) from None


def parse_gates(text: str) -> tuple[str, ...]:
    """``"build-js, build-wheel"`` -> ``("build-js", "build-wheel")``."""
    return tuple(gate.strip() for gate in text.split(",") if gate.strip())


# --- reading records ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A run record and the directory its logs are in (a job's ``log`` is relative to it)."""

    record: Mapping[str, Any]
    directory: Path


_NUMBER = (int, float)
#: What the report reads of a record and of each job and CPU sample, with the types each may have.
_TOP: Mapping[str, tuple[type, ...]] = {"name": (str,), "start": _NUMBER, "end": _NUMBER, "jobs": (list,)}
_JOB: Mapping[str, tuple[type, ...]] = {
    "id": (str,),
    "nodeid": (str,),
    "outcome": (str,),
    "start": (*_NUMBER, type(None)),
    "end": (*_NUMBER, type(None)),
    "needs": (list,),
}
_SAMPLE: Mapping[str, tuple[type, ...]] = {"t": _NUMBER, "busy": _NUMBER, "iowait": _NUMBER}


def record_file(path: Path) -> Path:
    """A run directory's ``run.json``, or ``path`` itself when it is not a directory."""
    return path / RECORD_NAME if path.is_dir() else path


def load_record(path: Path) -> Run:
    """The record of a run directory (or of a ``run.json``); :class:`ReportError` naming
    the file when it is missing, not JSON, or not a run record this version reads."""
    file = record_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path.is_dir():
            raise ReportError(
                f"{path} holds no {RECORD_NAME}: a run writes it when it ends, unless --cidag-record off "
                "(a run directory is .cidag/runs/<name>)"
            ) from None
        raise ReportError(f"{path}: no such run directory or {RECORD_NAME}") from None
    except OSError as exc:
        raise ReportError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{file} is not a run record: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{file} is not a run record: invalid JSON ({exc})") from None
    _check(data, file)
    return Run(data, file.parent.absolute())


def _check(data: Any, file: Path) -> None:
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise ReportError(f'{file} is not a run record: it has no "format": "{RECORD_FORMAT}"')
    if data.get("version") != FORMAT_VERSION:
        raise ReportError(
            f"{file} is a run record of version {data.get('version')!r}; this pytest-cidag reads version "
            f"{FORMAT_VERSION}"
        )
    problem = _wrong_fields(data, _TOP, "")
    for kind, items, fields in (("job", data.get("jobs"), _JOB), ("CPU sample", data.get("cpu"), _SAMPLE)):
        for n, item in enumerate(items if problem is None and isinstance(items, list) else ()):
            problem = (
                _wrong_fields(item, fields, f"{kind} {n}: ") if isinstance(item, dict) else f"{kind} {n}: not an object"
            )
            if problem:
                break
    if problem is None and data.get("cpu") is not None and not isinstance(data["cpu"], list):
        problem = f"'cpu' is {json.dumps(data['cpu'])[:40]}"
    if problem is not None:
        raise ReportError(f"{file} is not a whole run record: {problem}")


def _wrong_fields(data: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], where: str) -> str | None:
    for key, types in fields.items():
        if key not in data:
            return f"{where}{key!r} is missing"
        value = data[key]
        if not isinstance(value, types) or isinstance(value, bool):
            return f"{where}{key!r} is {json.dumps(value)[:40]}"
    return None


# --- what is drawn (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One job of one run; times are seconds since the run's start.

    A job that ran is drawn as a bar from ``start`` to ``end``. A job that did not run
    (blocked; not started) is drawn as an ``x`` mark at ``at``: when it was skipped, or, for
    one with no times, when it was decided (the end of the latest of its needs that ran; the
    run's end for one that the run's stop cancelled). A bar too short to see (a cache hit)
    gets a ``diamond`` mark at its start as well.
    """

    job: str
    outcome: str
    start: float | None
    end: float | None
    at: float
    critical: bool
    hover: str  # the hover text (plotly's HTML subset)
    mark: str | None = None  # "x", "diamond" or None

    @property
    def bar(self) -> bool:
        return self.start is not None and self.outcome not in NOT_RUN

    @property
    def duration(self) -> float:
        return max(0.0, (self.end or 0.0) - (self.start or 0.0))


@dataclass(frozen=True)
class Panel:
    """One run: its bars (in the timeline's row order), CPU samples and gate lines."""

    title: str
    wall: float  # the run's end, in seconds since its start
    bars: tuple[Bar, ...]
    cpu: tuple[tuple[float, float, float], ...]  # (seconds since start, busy %, iowait %)
    gates: tuple[tuple[str, float], ...]  # (gate, when its last job ended)


@dataclass(frozen=True)
class Timeline:
    """What a report shows: ``rows`` (job ids, top to bottom) shared by every run's panel,
    and ``warnings`` for gates that name no job of a run."""

    rows: tuple[str, ...]
    panels: tuple[Panel, ...]
    warnings: tuple[str, ...] = field(default=())


def timeline(runs: Sequence[Run], gates: Sequence[str] = ()) -> Timeline:
    """The rows, bars and lines of a report of ``runs`` (stacked in this order), with a
    vertical line in each run where each of ``gates`` ended (a job id, or a matrix job's
    name for the last of its legs)."""
    rows = _rows(runs)
    span = max([run.record["end"] - run.record["start"] for run in runs] + [0.0])
    panels = []
    warnings = []
    for run in runs:
        record = run.record
        origin = float(record["start"])
        wall = float(record["end"]) - origin
        jobs = {job["id"]: job for job in record["jobs"]}
        ends = {j["nodeid"]: j["end"] - origin for j in record["jobs"] if _ran(j)}
        bars = tuple(_bar(jobs[row], run, origin, span, ends) for row in rows if row in jobs)
        cpu = tuple((round(s["t"] - origin, 3), float(s["busy"]), float(s["iowait"])) for s in record.get("cpu") or ())
        found = []
        for gate in gates:
            legs = [j for j in record["jobs"] if j["id"] == gate or j["id"].startswith(f"{gate}[")]
            times = [j["end"] - origin for j in legs if _ran(j)]
            if times:
                found.append((gate, max(times)))
            else:
                warnings.append(f"gate {gate!r}: no job of run {record['name']} by that name ran")
        panels.append(Panel(_title(record, wall), wall, bars, cpu, tuple(found)))
    return Timeline(rows, tuple(panels), tuple(warnings))


def _timed(job: Mapping[str, Any]) -> bool:
    return job.get("start") is not None and job.get("end") is not None


def _ran(job: Mapping[str, Any]) -> bool:
    """It has times and ran (a blocked job's times are those of its skip)."""
    return _timed(job) and job.get("outcome") not in NOT_RUN


def _rows(runs: Sequence[Run]) -> tuple[str, ...]:
    """Job ids ordered by start: in the first run that ran them (a job of the first run
    comes before one only a later run has), then the jobs no run ran, in record order."""
    key: dict[str, tuple[int, float, int]] = {}
    never = len(runs)
    for n, run in enumerate(runs):
        origin = run.record["start"]
        for order, job in enumerate(run.record["jobs"]):
            mine = (n, job["start"] - origin, order) if _timed(job) else (never, math.inf, order)
            if job["id"] not in key or mine < key[job["id"]]:
                key[job["id"]] = mine
    return tuple(sorted(key, key=key.__getitem__))


def _bar(job: Mapping[str, Any], run: Run, origin: float, span: float, ends: Mapping[str, float]) -> Bar:
    hover = _hover(job, run, origin)
    critical = bool(job.get("on_critical_path"))
    if _timed(job):
        start, end = job["start"] - origin, job["end"] - origin
        mark = "x" if job["outcome"] in NOT_RUN else ("diamond" if end - start < span * SHORT else None)
        return Bar(job["id"], job["outcome"], start, end, start, critical, hover, mark)
    decided = [ends[need] for need in job.get("needs", ()) if need in ends]
    wall = run.record["end"] - origin
    at = max(decided) if decided else (wall if job["outcome"] == "cancelled" else 0.0)
    return Bar(job["id"], job["outcome"], None, None, at, critical, hover, "x")


def clock(t: float) -> str:
    """A time of day to the millisecond, in this machine's time zone: ``12:46:30.008``."""
    seconds, ms = divmod(round(t * 1000), 1000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ms:03d}"


def _hover(job: Mapping[str, Any], run: Run, origin: float) -> str:
    e = html.escape
    head = f"<b>{e(job['id'])}</b>: {e(job['outcome'])}"
    if job.get("on_critical_path"):
        head += ", on the critical path"
    lines = [head]
    if job.get("reason"):
        lines.append(e(job["reason"]))
    if job.get("worker"):
        lines.append(f"worker {e(job['worker'])}")
    if job.get("queued") is not None:
        lines.append(f"queued +{job['queued'] - origin:.3f} s")
    if _ran(job):
        lines.append(f"start +{job['start'] - origin:.3f} s ({clock(job['start'])})")
        lines.append(f"end +{job['end'] - origin:.3f} s ({clock(job['end'])})")
        lines.append(f"duration {job['end'] - job['start']:.3f} s")
    elif _timed(job):
        lines.append(f"did not run; skipped at +{job['start'] - origin:.3f} s ({clock(job['start'])})")
    else:
        lines.append("did not run")
    if job.get("exit_code") is not None:
        lines.append(f"exit code {job['exit_code']}")
    if job.get("signal"):
        lines.append(f"signal {e(job['signal'])}")
    if job.get("outcome") == "timeout" and job.get("timeout") is not None:
        lines.append(f"timeout {job['timeout']:g} s")
    if job.get("log"):
        lines.append(f"log {e(str(run.directory / job['log']))}")
    return "<br>".join(lines)


def _title(record: Mapping[str, Any], wall: float) -> str:
    parts = [f"<b>{html.escape(record['name'])}</b>"]
    git = record.get("git")
    if isinstance(git, dict) and git.get("commit"):
        branch = f" ({html.escape(str(git['branch']))})" if git.get("branch") else ""
        parts.append(f"{html.escape(str(git['commit'])[:10])}{branch}")
    workers = record.get("workers")
    if workers is not None:
        parts.append(f"-n {workers}")
    parts.append(f"{wall:.1f} s wall")
    path = [j for j in record["jobs"] if j.get("on_critical_path") and _ran(j)]
    if path:
        parts.append(f"critical path {sum(j['end'] - j['start'] for j in path):.1f} s")
    stop = record.get("interrupted")
    if isinstance(stop, dict):
        parts.append(f"interrupted: {html.escape(str(stop.get('reason')))}")
    elif record.get("exit_status") not in (None, 0):
        parts.append(f"exit status {record['exit_status']}")
    return " · ".join(parts)


# --- drawing (plotly) -------------------------------------------------------------------------


def figure(tl: Timeline) -> Any:
    """The plotly figure of a timeline: a panel per run, stacked on one time axis."""
    require_plotly()
    import plotly.graph_objects as go  # type: ignore[import-untyped]  # no stubs: figures are built as Any
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    n = len(tl.panels)
    rows = len(tl.rows)
    panel_px = round((rows + GATE_BAND) * ROW_PX) + PANEL_PX
    height = n * panel_px + 160
    fig = make_subplots(
        rows=n,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.3 / max(1, n - 1), PANEL_PX / height),
        subplot_titles=[p.title for p in tl.panels],
        # The CPU is drawn on each panel's first y axis and the jobs on the second, which
        # plotly draws on top: the bars stay above the CPU's shaded areas.
        specs=[[{"secondary_y": True}] for _ in tl.panels],
    )
    fig.update_annotations(x=0, xanchor="left", font={"size": 13})  # the panels' titles, on the left
    shown: set[str] = set()
    span = max([p.wall for p in tl.panels] + [1e-3])

    def legend(name: str) -> bool:
        first = name not in shown
        shown.add(name)
        return first

    for i, panel in enumerate(tl.panels, 1):
        if panel.cpu:
            t = [s[0] for s in panel.cpu]
            for (name, fill, line), values in (
                (CPU_BUSY, [s[1] for s in panel.cpu]),
                (CPU_IOWAIT, [s[2] for s in panel.cpu]),
            ):
                fig.add_trace(
                    go.Scatter(
                        x=t,
                        y=values,
                        name=name,
                        legendgroup=name,
                        showlegend=legend(name),
                        mode="lines",
                        line={"width": 0.5, "color": line},
                        fill="tozeroy",
                        fillcolor=fill,
                        hovertemplate=f"{name.replace('%', '')}%{{y:.0f}} %<extra></extra>",
                    ),
                    row=i,
                    col=1,
                    secondary_y=False,
                )
        for outcome, colour in COLOURS.items():
            bars = [b for b in panel.bars if b.outcome == outcome and b.bar]
            if bars:
                fig.add_trace(
                    go.Bar(
                        orientation="h",
                        y=[b.job for b in bars],
                        base=[b.start for b in bars],
                        x=[b.duration for b in bars],
                        name=outcome,
                        legendgroup=outcome,
                        showlegend=legend(outcome),
                        marker={"color": colour, "line": {"color": colour, "width": 0.5}},
                        hovertext=[b.hover for b in bars],
                        hovertemplate="%{hovertext}<extra></extra>",
                    ),
                    row=i,
                    col=1,
                    secondary_y=True,
                )
            marks = [b for b in panel.bars if b.outcome == outcome and b.mark]
            if marks:
                fig.add_trace(
                    go.Scatter(
                        x=[b.at for b in marks],
                        y=[b.job for b in marks],
                        mode="markers",
                        name=outcome,
                        legendgroup=outcome,
                        showlegend=legend(outcome),
                        marker={
                            "color": colour,
                            "size": 10,
                            "symbol": [b.mark for b in marks],
                            "line": {"width": 1, "color": "#333333"},
                        },
                        hovertext=[b.hover for b in marks],
                        hovertemplate="%{hovertext}<extra></extra>",
                    ),
                    row=i,
                    col=1,
                    secondary_y=True,
                )
        critical = [b for b in panel.bars if b.critical and b.bar]
        if critical:
            fig.add_trace(  # an outline over the bars of the critical path; hover goes to the bar below
                go.Bar(
                    orientation="h",
                    y=[b.job for b in critical],
                    base=[b.start for b in critical],
                    x=[b.duration for b in critical],
                    name="critical path",
                    legendgroup="critical path",
                    showlegend=legend("critical path"),
                    marker={"color": "rgba(0, 0, 0, 0)", "line": {"color": CRITICAL, "width": 3}},
                    hoverinfo="skip",
                ),
                row=i,
                col=1,
                secondary_y=True,
            )
        for k, (gate, at) in enumerate(sorted(panel.gates, key=lambda g: g[1])):
            fig.add_vline(x=at, row=i, col=1, line={"color": "#333333", "width": 1.5, "dash": "dash"})
            fig.add_annotation(  # in the band above the first row, staggered so that close gates stay legible
                x=at,
                y=1.0,
                xref=f"x{i if i > 1 else ''}",
                yref=f"y{2 * i} domain",
                yanchor="top",
                xanchor="left",
                yshift=-1 - 12 * (k % 2),
                showarrow=False,
                text=f"{html.escape(gate)} ended",
                font={"size": 10, "color": "#333333"},
                bgcolor="rgba(255, 255, 255, 0.85)",  # over the next gate's line, when close
            )
    fig.update_yaxes(
        secondary_y=True,
        side="left",
        type="category",
        categoryorder="array",
        categoryarray=list(tl.rows),
        range=[rows - 0.5, -0.5 - GATE_BAND],  # first row on top, below a band for the gates' labels
        showgrid=True,
        gridcolor="#EEEEEE",
        automargin=True,
    )
    fig.update_yaxes(
        secondary_y=False,
        side="right",
        range=[0, 100],
        showgrid=False,
        title={"text": "CPU %", "font": {"size": 11}},
        tickfont={"size": 9},
    )
    fig.update_xaxes(range=[0, span * 1.02], showgrid=True, gridcolor="#DDDDDD", zeroline=False, showticklabels=True)
    fig.update_xaxes(title_text="seconds since the run's start", row=n, col=1)
    title = "pytest-cidag timeline" + (f" of {n} runs" if n > 1 else "")
    fig.update_layout(
        # the title, then the legend below it on the left (the right is the mode bar's)
        title={
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "yref": "container",
            "y": 1 - 12 / height,
            "yanchor": "top",
        },
        barmode="overlay",
        bargap=0.25,
        height=height,
        hovermode="closest",
        hoverlabel={"align": "left"},
        legend={"orientation": "h", "yref": "container", "y": 1 - 44 / height, "yanchor": "top", "x": 0.0},
        margin={"l": 10, "r": 10, "t": 110, "b": 50},
        plot_bgcolor="#FFFFFF",
    )
    return fig


def render(runs: Sequence[Run], gates: Sequence[str] = ()) -> tuple[str, Timeline]:
    """The report's HTML (plotly.js inlined: it opens offline) and its timeline."""
    tl = timeline(runs, gates)
    fig = figure(tl)
    names = ", ".join(str(run.record["name"]) for run in runs)
    page = fig.to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id="cidag-timeline",
        config={"displaylogo": False, "responsive": True},
    )
    page = page.replace("<head>", f"<head><title>pytest-cidag timeline: {html.escape(names)}</title>", 1)
    return page, tl


def write_report(path: Path, runs: Sequence[Run], gates: Sequence[str] = ()) -> Timeline:
    """Write the report of ``runs`` to ``path`` (its directory made if need be, through a
    temporary file renamed over it); ``OSError`` when it cannot, :class:`MissingExtra`
    without plotly."""
    page, tl = render(runs, gates)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return tl


# --- the command ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``cidag-report RUN_DIR [RUN_DIR ...] [-o FILE] [--gates JOB,...]``."""
    parser = argparse.ArgumentParser(
        prog="cidag-report",
        description="Draw the timeline report of pytest-cidag runs: one self-contained HTML file. "
        "Several runs stack on one time axis (seconds since each run's start), rows in one order.",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help=f"a run directory (.cidag/runs/<name>) or its {RECORD_NAME}"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=f"the report to write (default: {REPORT_NAME} in the run directory; for several runs, "
        f"{COMPARE_NAME} in the current directory)",
    )
    parser.add_argument(
        "--gates", metavar="JOB[,JOB...]", default="", help="draw a vertical line where each of these jobs ended"
    )
    args = parser.parse_args(argv)
    try:
        runs = [load_record(Path(arg)) for arg in args.runs]
        require_plotly()
    except ReportError as exc:
        print(f"cidag-report: {exc}", file=sys.stderr)
        return 1
    if args.output:
        out = Path(args.output)
    elif len(runs) == 1:
        out = record_file(Path(args.runs[0])).parent / REPORT_NAME
    else:
        out = Path(COMPARE_NAME)
    try:
        tl = write_report(out, runs, parse_gates(args.gates))
    except OSError as exc:
        print(f"cidag-report: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for warning in tl.warnings:
        print(f"cidag-report: {warning}", file=sys.stderr)
    print(f"cidag-report: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
