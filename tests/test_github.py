"""Inside GitHub Actions: the step summary, the annotations and the log groups, read back as
GitHub would read them (workflow commands unescaped, the summary rendered as CommonMark with
tables, the timeline parsed by a strict copy of Mermaid's gantt lexer and, where it is
installed, by Mermaid itself)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from pytest_cidag.core import github

# --- reading workflow commands back ---------------------------------------------------------

_UNESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}


def unescape(text: str) -> str:
    """GitHub's reading of an escaped value: each escape at once, left to right."""
    return re.sub(r"%(?:25|0D|0A|3A|2C)", lambda m: _UNESCAPES[m[0]], text)


@dataclass
class Command:
    name: str
    properties: dict[str, str]
    message: str


COMMAND_RE = re.compile(r"::(?P<name>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<message>.*)")


def read_commands(lines: list[str], name: str) -> list[Command]:
    out = []
    for line in lines:
        m = COMMAND_RE.fullmatch(line)
        if m is None or m["name"] != name:
            continue
        props = {}
        for pair in (m["props"] or "").split(","):
            if pair:
                key, _, value = pair.partition("=")
                props[key] = unescape(value)
        out.append(Command(m["name"], props, unescape(m["message"])))
    return out


# --- reading the summary back ---------------------------------------------------------------


@dataclass
class Page:
    """What a reader sees of a rendered summary."""

    tables: list[list[list[str]]] = field(default_factory=list)  # rows of cell texts, header row first
    details: list[tuple[str, list[str]]] = field(default_factory=list)  # (summary text, code blocks inside)
    code: list[tuple[str, str]] = field(default_factory=list)  # (language, text) of every code block (<pre>)
    text: str = ""  # all visible text


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.cell: list[str] | None = None
        self.summary: list[str] | None = None
        self.code: list[str] | None = None
        self.language = ""
        self.in_details = False
        self.in_pre = False
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.page.tables.append([])
        elif tag == "tr":
            self.page.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "details":
            self.in_details = True
            self.page.details.append(("", []))
        elif tag == "summary":
            self.summary = []
        elif tag == "pre":
            self.in_pre = True
        elif tag == "code" and self.in_pre:
            classes = dict(attrs).get("class") or ""
            self.language = classes.removeprefix("language-")
            self.code = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.page.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "summary" and self.summary is not None:
            self.page.details[-1] = ("".join(self.summary), self.page.details[-1][1])
            self.summary = None
        elif tag == "details":
            self.in_details = False
        elif tag == "pre":
            self.in_pre = False
        elif tag == "code" and self.code is not None:
            text = "".join(self.code)
            self.page.code.append((self.language, text))
            if self.in_details:
                self.page.details[-1][1].append(text)
            self.code = None

    def handle_data(self, data: str) -> None:
        for part in (self.cell, self.summary, self.code, self.texts):
            if part is not None:
                part.append(data)


def read_summary(markdown: str) -> Page:
    """The summary rendered as GitHub renders Markdown (CommonMark, tables, raw HTML)."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    reader = _Reader()
    reader.feed(html)
    reader.page.text = "".join(reader.texts)
    return reader.page


def job_rows(page: Page) -> dict[str, list[str]]:
    """The jobs' table by job id: [outcome, duration, worker, cached, reason]."""
    [table] = [t for t in page.tables if t and t[0][:2] == ["job", "outcome"]]
    assert table[0] == ["job", "outcome", "duration", "worker", "cached", "reason"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert len(rows) == len(table) - 1  # one row per job
    return rows


# --- reading the timeline back --------------------------------------------------------------

#: Mermaid's gantt lexer (its jison grammar, mermaid 11), in its order: the first rule that
#: matches at a point wins. Only the rules that can start a line of the chart.
GANTT_LEXER = [
    ("directive", r"%%\{"),
    ("acc", r"accTitle\s*:\s*|accDescr\s*:\s*|accDescr\s*\{\s*"),
    ("comment", r"%%(?!\{)*[^\n]*|[^\}]%%*[^\n]*|%%*[^\n]*"),
    ("space", r"\s+"),
    ("comment", r"%[^\n]*"),
    ("href", r"href[\s]+[\"]"),
    ("call", r"call[\s]+"),
    ("click", r"click[\s]+"),
    ("gantt", r"gantt\b"),
    ("dateFormat", r"dateFormat\s[^#\n;]+"),
    ("inclusiveEndDates", r"inclusiveEndDates\b"),
    ("topAxis", r"topAxis\b"),
    ("axisFormat", r"axisFormat\s[^#\n;]+"),
    ("tickInterval", r"tickInterval\s[^#\n;]+"),
    ("includes", r"includes\s[^#\n;]+"),
    ("excludes", r"excludes\s[^#\n;]+"),
    ("todayMarker", r"todayMarker\s[^\n;]+"),
    ("weekday", r"weekday\s+\w+\b|weekend\s+\w+\b"),
    ("date", r"\d\d\d\d-\d\d-\d\d\b"),
    ("title", r"title\s[^\n]+"),
    ("accDescription", r"accDescription\s[^#\n;]+"),
    ("section", r"section\s[^\n]+"),
    ("taskTxt", r"[^:\n]+"),
    ("taskData", r":[^#\n;]+"),
]
TASK_DATA = re.compile(r":(?:(?P<tag>crit|done|active), )?(?P<start>\d+), (?P<end>\d+)")


def _token(line: str) -> tuple[str, str]:
    for kind, pattern in GANTT_LEXER:
        m = re.match(pattern, line, flags=re.I)
        if m:
            return kind, m[0]
    raise AssertionError(f"no token at {line!r}")


@dataclass
class Task:
    section: str
    name: str
    start: int
    end: int
    tag: str | None


def read_gantt(chart: str) -> tuple[dict[str, str], list[Task]]:
    """The chart's settings and tasks, each line read as Mermaid's lexer reads it; a line it
    would read otherwise than meant (a name taken for a keyword or cut short) fails."""
    lines = chart.rstrip("\n").split("\n")
    assert lines[0] == "gantt"
    settings: dict[str, str] = {}
    tasks: list[Task] = []
    section = ""
    for line in lines[1:]:
        assert line.startswith("    ") and "\r" not in line, line
        body = line.strip()
        kind, text = _token(body)
        if kind in ("title", "dateFormat", "axisFormat", "todayMarker"):
            assert text == body, line
            settings[kind] = body.split(" ", 1)[1]
        elif kind == "section":
            assert text == body
            section = body.split(" ", 1)[1]
        else:
            assert kind == "taskTxt", f"{line!r} read as {kind}"
            rest = body[len(text) :]
            kind, data = _token(rest)
            assert kind == "taskData" and data == rest, f"{line!r}: task data {rest!r} read as {kind} {data!r}"
            m = TASK_DATA.fullmatch(data)
            assert m, data
            assert text.endswith(" ")
            tasks.append(Task(section, text.strip(), int(m["start"]), int(m["end"]), m["tag"]))
    return settings, tasks


MERMAID = Path(__file__).parent / "mermaid"
MERMAID_MISSING = not (shutil.which("node") and (MERMAID / "node_modules" / "mermaid").is_dir())


def mermaid_read(chart: str) -> dict[str, Any]:
    """The chart as Mermaid's own parser reads it (tests/mermaid/check.mjs, under node)."""
    if MERMAID_MISSING:
        pytest.skip("Mermaid's parser is not installed: npm install --prefix tests/mermaid (.ci/run does)")
    out = subprocess.run(
        ["node", str(MERMAID / "check.mjs")], input=chart, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def check_chart(chart: str, record: dict[str, Any]) -> list[Task]:
    """The timeline shows every job that ran, on its worker's lane, at its times."""
    settings, tasks = read_gantt(chart)
    assert settings["dateFormat"] == "x"
    assert settings["todayMarker"] == "off"
    ran = {j["id"]: j for j in record["jobs"] if j["start"] is not None and j["outcome"] != "blocked"}
    assert sorted(t.name for t in tasks) == sorted(ran)
    for task in tasks:
        job = ran[task.name]
        assert task.section == job["worker"]
        assert abs(task.start - (job["start"] - record["start"]) * 1000) <= 1
        assert task.end > task.start
        assert task.tag == {"failed": "crit", "timeout": "crit", "error": "crit", "cached": "done"}.get(job["outcome"])
    return tasks


def fenced_blocks(markdown: str, language: str) -> list[str]:
    return [text for lang, text in read_summary(markdown).code if lang == language]


# --- size -----------------------------------------------------------------------------------


def _synthetic(jobs: int, failed_every: int, tail_lines: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    record: dict[str, Any] = {"start": 1000.0, "end": 1000.0 + jobs / 10, "workers": 4, "interrupted": None, "jobs": []}
    tails = {}
    for i in range(jobs):
        failed = i % failed_every == 0
        record["jobs"].append(
            {
                "id": f"job-{i}",
                "nodeid": f"cijobs/job-{i}.sh::job-{i}",
                "worker": f"gw{i % 4}",
                "start": 1000.0 + i / 10,
                "end": 1000.0 + i / 10 + 0.4,
                "outcome": "failed" if failed else "passed",
                "reason": "exit code 1" if failed else None,
                "needs": [f"cijobs/job-{i - 4}.sh::job-{i - 4}"] if i >= 4 else [],
                "log": f"job-{i}.log",
                "on_critical_path": False,
            }
        )
        if failed:
            tails[f"cijobs/job-{i}.sh::job-{i}"] = [f"{i} {'y' * 250}"] * tail_lines
    return record, tails


def test_twenty_thousand_jobs_stay_under_the_limit() -> None:
    record, tails = _synthetic(20_000, failed_every=7, tail_lines=15)
    text = github.step_summary(record, tails, record_file="run/run.json", run_dir="run")
    assert len(text.encode()) <= github.SUMMARY_LIMIT
    page = read_summary(text)
    rows = job_rows(page)
    failed = sum(1 for j in record["jobs"] if j["outcome"] == "failed")
    assert list(rows.values())[failed - 1][0] == "❌ failed"  # every failure's row is there
    m = re.search(r"(\d+) more rows are left out", page.text)
    assert m and len(rows) + int(m[1]) == 20_000
    [chart] = fenced_blocks(text, "mermaid")
    assert len(chart) <= github.MERMAID_MAX_TEXT
    _, tasks = read_gantt(chart)
    assert len(tasks) == github.GANTT_MAX_TASKS
    assert f"The timeline leaves out {20_000 - github.GANTT_MAX_TASKS} of the jobs that ran" in page.text
    assert all(t.tag == "crit" for t in tasks)  # more failures than bars: the bars are failures


def test_no_room_at_all_writes_nothing() -> None:
    record, tails = _synthetic(10, failed_every=2, tail_lines=3)
    assert github.step_summary(record, tails, room=20) == ""
    short = github.step_summary(record, tails, room=600, record_file="run/run.json")
    assert read_summary(short).text.strip() == (
        "pytest-cidag: 5 failed, 5 passed (10 jobs)\nThe step summary is full; see the run record run/run.json."
    )
    assert len(short.encode()) <= 600


# --- the pure parts -------------------------------------------------------------------------

ID_CHARS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._+-[]", min_size=0, max_size=12)
KEYWORDS = st.sampled_from(
    ["gantt", "title", "section", "dateFormat", "axisFormat", "click", "call", "href", "includes", "excludes",
     "todayMarker", "weekday", "weekend", "topAxis", "inclusiveEndDates", "tickInterval", "accTitle", "accDescr",
     "2024-01-31", "%%", "%", "x%", "#", ";", ":", "after", "done", "crit"]
)  # fmt: skip


@given(st.lists(st.tuples(KEYWORDS | st.just(""), ID_CHARS, st.sampled_from(["", " ", "-", " x:y%z;#"])), max_size=8))
def test_any_name_reads_back_as_one_task(parts: list[tuple[str, str, str]]) -> None:
    names = [f"{a}{b}{c}" or "x" for a, b, c in parts] or ["x"]
    record = {
        "start": 0.0,
        "end": 20.0,
        "jobs": [
            {"id": name, "worker": "gw0", "start": i, "end": i + 1, "outcome": "passed", "on_critical_path": False}
            for i, name in enumerate(names)
        ],
    }
    chart, _ = github.gantt(record)
    _, tasks = read_gantt(chart)
    assert [t.name for t in tasks] == [github.gantt_name(name) for name in names]
    for name, task in zip(names, tasks, strict=True):
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+\-\[\]]*", name) and not task.name.startswith("job "):
            assert task.name == name  # a job id that is no keyword is shown as it is


def test_mermaid_reads_the_names_as_meant() -> None:
    names = ["gantt-x", "title", "Section.2", "click", "call", "2024-01-31-nightly", "build[3.12]", "a%b", "x:y"]
    record = {
        "start": 0.0,
        "end": 20.0,
        "jobs": [
            {"id": name, "worker": "gw0", "start": i, "end": i + 1.5, "outcome": o, "on_critical_path": False}
            for i, (name, o) in enumerate(zip(names, ["passed", "failed", "cached", "cancelled"] * 3, strict=False))
        ],
    }
    chart, _ = github.gantt(record)
    read = mermaid_read(chart)
    assert read["type"] == "gantt" and read["dateFormat"] == "x" and read["todayMarker"] == "off"
    assert [(t["name"].strip(), t["start"], t["end"], t["tags"]) for t in read["tasks"]] == [
        (t.name, t.start, t.end, [t.tag] if t.tag else []) for t in read_gantt(chart)[1]
    ]
    assert [t["name"].strip() for t in read["tasks"]][:3] == ["job gantt-x", "job title", "job Section.2"]


@given(st.text())
def test_workflow_command_escapes_read_back(text: str) -> None:
    line = github.command("error", text, {"file": text, "title": text})
    assert "\n" not in line and "\r" not in line
    [cmd] = read_commands([line], "error")
    assert cmd.message == text
    assert cmd.properties == {"file": text, "title": text}


@given(st.text())
def test_table_cells_read_back_as_the_text(text: str) -> None:
    shown = " ".join(text.split())
    shown = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", shown).strip()
    page = read_summary(github.TABLE_HEAD + f"| x | {github.md_text(text)} |  |  |  |  |\n")
    [table] = page.tables
    assert table[1][1] == shown.replace("\x00", "\ufffd").strip()


def test_annotations_are_bounded() -> None:
    record, tails = _synthetic(1, failed_every=1, tail_lines=100)
    tails = {k: ["z" * 5000] * 100 for k in tails}
    [line] = github.error_commands(record, {}, tails)
    [cmd] = read_commands([line], "error")
    assert len(cmd.message) <= github.ANNOTATION_MAX
    assert cmd.message.startswith("exit code 1\n[... cut ...]\n")
    assert "file" not in cmd.properties  # no location known: on the run, not a file


def test_the_fence_outgrows_the_output(tmp_path: Path) -> None:
    lines = ["````", "``` not the end", "end"]
    block = github.fenced(lines)
    [(_, text)] = read_summary(block).code
    assert text.splitlines() == lines
