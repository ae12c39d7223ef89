"""Inside GitHub Actions: the step summary, the annotations and the log groups, read back as
GitHub would read them (workflow commands unescaped, the summary rendered as CommonMark with
tables, the timeline parsed by a strict copy of Mermaid's gantt lexer and, where it is
installed, by Mermaid itself)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from pytest_cidag.core import github
from tests.conftest import JobWriter
from tests.test_catalogue import entry
from tests.test_record import XDIST, record_of

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


# --- a run inside GitHub Actions ------------------------------------------------------------

BROKEN = r"""
echo "compiling 50%: a, b"
printf '%s\n' 'a line with ``` fences | pipes <b>tags</b> &amp; @someone' "$(printf 'colour \033[31mred\033[0m')"
echo "last words"
exit 3
"""


def write_project(job: JobWriter) -> None:
    job("lint", "echo lint ok")
    job("broken", BROKEN, timeout="30")
    job("after", "true", needs='["broken"]')
    job("slow", "echo starting; sleep 30", timeout="0.5")
    job("no-docker", "echo 'docker is not installed'; exit 77")


@pytest.fixture
def in_actions(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GitHub Actions' variables, the repository one level above the rootdir; the summary
    file holds an earlier step command's text."""
    summary = pytester.path.parent / f"{pytester.path.name}-summary.md"
    summary.write_text("# Earlier\n\nwritten by an earlier command of this step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))
    return summary


@XDIST
def test_summary_and_annotations_read_back(pytester: pytest.Pytester, job: JobWriter, in_actions: Path, n: str) -> None:
    write_project(job)
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--cidag-kill-grace", "0.2")
    result.assert_outcomes(passed=1, failed=2, skipped=2)
    record = record_of(pytester.path / "run")
    text = in_actions.read_text()
    assert text.startswith("# Earlier\n\nwritten by an earlier command of this step\n\n###")
    page = read_summary(text)

    rows = job_rows(page)
    assert set(rows) == {"lint", "broken", "after", "slow", "no-docker"}
    assert [row[0] for row in rows.values()][:2] in (["❌ failed", "⏱️ timed out"], ["⏱️ timed out", "❌ failed"])
    assert rows["lint"][0] == "✅ passed"
    assert rows["broken"][0] == "❌ failed" and rows["broken"][4] == "exit code 3"
    assert rows["slow"][0] == "⏱️ timed out" and rows["slow"][4].startswith("Timeout (>0.5s)")
    assert rows["after"] == ["⛔ blocked", "", rows["after"][2], "", "upstream job 'broken' failed"]
    assert rows["no-docker"][0] == "⏭️ skipped" and rows["no-docker"][4] == "docker is not installed"
    for job_id, row in rows.items():
        recorded = next(j for j in record["jobs"] if j["id"] == job_id)
        assert row[2] == recorded["worker"]
        assert row[1].endswith(" s") or recorded["outcome"] == "blocked"
    assert "1 failed, 1 timeout, 1 blocked, 1 skipped, 1 passed (5 jobs)" in page.text

    details = dict(page.details)
    assert set(details) == {
        "broken failed: exit code 3",
        "slow timed out: Timeout (>0.5s): the job's process tree was killed",
    }
    [broken_lines] = details["broken failed: exit code 3"]
    assert broken_lines.splitlines() == [
        "compiling 50%: a, b",
        "a line with ``` fences | pipes <b>tags</b> &amp; @someone",
        "colour red",  # terminal colours dropped
        "last words",
    ]
    assert "starting" in details["slow timed out: Timeout (>0.5s): the job's process tree was killed"][0]

    [chart] = fenced_blocks(text, "mermaid")
    tasks = check_chart(chart, record)
    assert {t.section for t in tasks} == ({"main"} if n == "0" else {"gw0", "gw1"} & {t.section for t in tasks})
    if not MERMAID_MISSING:
        read = mermaid_read(chart)
        assert sorted((t["name"].strip(), t["section"], t["start"], t["end"]) for t in read["tasks"]) == sorted(
            (t.name, t.section, t.start, t.end) for t in tasks
        )

    errors = read_commands(result.outlines, "error")
    assert [e.properties["title"] for e in errors] == [
        f"{j['id']} {'failed' if j['outcome'] == 'failed' else 'timed out'}"
        for j in record["jobs"]
        if j["outcome"] in ("failed", "timeout")
    ]
    broken = next(e for e in errors if e.properties["title"] == "broken failed")
    assert broken.properties["file"] == f"{pytester.path.name}/cijobs/broken.sh"
    script = (pytester.path.parent / broken.properties["file"]).read_text().splitlines()
    assert script[int(broken.properties["line"]) - 1] == "# /// cidag"
    assert broken.message.splitlines() == [
        "exit code 3",
        "last 4 lines of output:",
        "compiling 50%: a, b",
        "a line with ``` fences | pipes <b>tags</b> &amp; @someone",
        "colour red",
        "last words",
    ]
    slow = next(e for e in errors if e.properties["title"] == "slow timed out")
    assert slow.properties["file"] == f"{pytester.path.name}/cijobs/slow.sh"
    assert slow.message.startswith("Timeout (>0.5s): the job's process tree was killed\n")


def test_a_second_run_appends_to_the_summary(pytester: pytest.Pytester, job: JobWriter, in_actions: Path) -> None:
    job("one", "echo one")
    pytester.runpytest().assert_outcomes(passed=1)
    first = in_actions.read_text()
    job("two", "exit 1")
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    both = in_actions.read_text()
    assert both.startswith(first + "\n")
    assert both.count("### pytest-cidag:") == 2
    assert [len(job_rows(read_summary(part))) for part in both.split("### pytest-cidag:")[1:]] == [1, 2]


def test_off_by_default_outside_actions_and_on_with_the_flag(
    pytester: pytest.Pytester, job: JobWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job("bad", "exit 1")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest()  # GITHUB_ACTIONS unset: a local run
    assert not summary.exists()
    assert not read_commands(result.outlines, "error")
    result = pytester.runpytest("--cidag-github")
    assert [e.properties["file"] for e in read_commands(result.outlines, "error")] == ["cijobs/bad.sh"]
    assert "| `bad` | ❌ failed |" in summary.read_text()


def test_annotations_without_the_terminal_plugin(pytester: pytest.Pytester, job: JobWriter, in_actions: Path) -> None:
    job("bad", "echo oops; exit 1")
    result = pytester.runpytest_subprocess("-p", "no:terminal")
    assert result.ret == 1
    [error] = read_commands(result.outlines, "error")
    assert error.message == "exit code 1\nlast line of output:\noops"


@pytest.mark.parametrize("how", [["--cidag-github=off"], ["-o", "cidag_github=off"]], ids=["option", "ini"])
def test_off_inside_actions(pytester: pytest.Pytester, job: JobWriter, in_actions: Path, how: list[str]) -> None:
    job("bad", "exit 1")
    before = in_actions.read_text()
    result = pytester.runpytest(*how)
    result.assert_outcomes(failed=1)
    assert in_actions.read_text() == before
    assert not any(line.startswith("::") for line in result.outlines)


def test_a_run_without_jobs_does_not_load_it(pytester: pytest.Pytester, in_actions: Path) -> None:
    before = in_actions.read_text()
    pytester.makepyfile(
        test_some="""
        import sys

        def test_a():
            assert not [m for m in sys.modules if m.startswith("pytest_cidag.") and m != "pytest_cidag.plugin"]

        def test_b():
            assert 0
        """
    )
    result = pytester.runpytest_subprocess("--cidag-github")
    result.assert_outcomes(passed=1, failed=1)
    assert in_actions.read_text() == before
    assert not any(line.startswith("::") for line in result.outlines)


def test_with_the_record_off_the_summary_says_so(pytester: pytest.Pytester, job: JobWriter, in_actions: Path) -> None:
    job("bad", "exit 1")
    result = pytester.runpytest("--cidag-record", "off", "--cidag-run-dir", "run")
    result.assert_outcomes(failed=1)
    assert not (pytester.path / "run" / "run.json").exists()
    assert "critical path" not in result.stdout.str()
    rows = job_rows(read_summary(in_actions.read_text()))
    assert rows["bad"][0] == "❌ failed"
    assert len(read_commands(result.outlines, "error")) == 1


def test_a_summary_that_cannot_be_written_is_said_and_fails_nothing(
    pytester: pytest.Pytester, job: JobWriter, in_actions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented = entry("A step summary that cannot be written")
    for path, body in documented.files.items():
        (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / path).write_text(body)
    (pytester.path / "summary-dir").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "summary-dir")
    result = pytester.runpytest_subprocess(*documented.args)
    assert result.ret == 0
    result.stdout.fnmatch_lines(documented.expected)


# --- interrupted runs -----------------------------------------------------------------------


def test_stopped_by_x_is_said(pytester: pytest.Pytester, job: JobWriter, in_actions: Path) -> None:
    job("fails", "exit 1")
    job("later", "true")
    pytester.runpytest("-x", "-p", "no:randomly").assert_outcomes(failed=1)
    page = read_summary(in_actions.read_text())
    assert "Stopped early (-x / --maxfail): stopping after 1 failure" in page.text
    rows = job_rows(page)
    assert rows["later"][0] == "🚫 cancelled"
    assert rows["later"][4].startswith("not started: stopping after 1 failure")


@pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])
def test_sigterm_is_said(pytester: pytest.Pytester, job: JobWriter, in_actions: Path, n: str) -> None:
    job("long", 'echo started > "$CIDAG_RUN_DIR/started"; sleep 60')
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", "0.2", "-n", n],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (pytester.path / "run" / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the job did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    page = read_summary(in_actions.read_text())
    assert "Interrupted: terminated by SIGTERM; 1 job cancelled" in page.text, page.text
    assert job_rows(page)["long"][0] == "🚫 cancelled"
    [chart] = fenced_blocks(in_actions.read_text(), "mermaid")
    assert [t.tag for t in read_gantt(chart)[1]] == ["active"]


# --- size -----------------------------------------------------------------------------------


def test_a_large_run_is_cut_to_what_the_summary_has_room_for(
    pytester: pytest.Pytester, job: JobWriter, in_actions: Path
) -> None:
    # A real run meets GitHub's limit: the step already wrote most of its 1 MiB.
    earlier = "x" * 1000 + "\n"
    in_actions.write_text(earlier * (github.SUMMARY_LIMIT // len(earlier) - 12))
    job(
        "many",
        'for i in $(seq 1 20); do printf "%0200d\\n" "$i"; done; exit 1',
        matrix="{ n = " + json.dumps([str(i) for i in range(60)]) + " }",
    )
    job("fine", "true", matrix="{ n = " + json.dumps([str(i) for i in range(150)]) + " }")
    result = pytester.runpytest("--cidag-run-dir", "run", "-p", "no:randomly")
    result.assert_outcomes(passed=150, failed=60)
    data = in_actions.read_bytes()
    assert len(data) <= github.SUMMARY_LIMIT
    added = data.decode()[len(earlier * (github.SUMMARY_LIMIT // len(earlier) - 12)) :]
    page = read_summary(added)
    rows = job_rows(page)
    # the failures come first and stay; what is left out is counted, and where it is, named
    assert all(row[0] == "❌ failed" for row in list(rows.values())[:60])
    m = re.search(
        r"(\d+) more rows are left out for lack of room \(the failures come first\); "
        r"the run record (\S+) has every job",
        page.text,
    )
    assert m, page.text[-2000:]
    assert len(rows) + int(m[1]) == 210
    assert m[2] == "run/run.json"
    shown = len(page.details)
    assert shown < 60
    assert (
        f"The output of {60 - shown} more failed jobs is left out for lack of room: see their logs in run." in page.text
    )
    assert "The timeline is left out for lack of room; the run record run/run.json has it." in page.text
    assert len(read_commands(result.outlines, "error")) == 60  # the log has room for every annotation


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


# --- log groups (-s) ------------------------------------------------------------------------


def _groups(lines: list[str]) -> dict[str, list[str]]:
    """Each group's lines, checking that groups open and close on lines of their own."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("::group::"):
            assert current is None, f"group opened inside a group: {line}"
            current = groups.setdefault(line.removeprefix("::group::"), [])
        elif line == "::endgroup::":
            assert current is not None
            current = None
        elif current is not None:
            assert "::group::" not in line and "::endgroup::" not in line, line
            current.append(line)
    assert current is None
    return groups


@pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])
def test_live_output_in_groups(
    pytester: pytest.Pytester, job: JobWriter, n: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    for name in ("a", "b", "c"):
        job(name, f'for i in 1 2 3; do echo "{name}-$i"; sleep 0.05; done')
    job("no-newline", "printf 'no line break at the end'")
    job("killed", "echo before; sleep 30", timeout="0.5")
    # a subprocess: -s hands the jobs the real stream
    result = pytester.runpytest_subprocess("-s", "-n", n, "--cidag-kill-grace", "0.2", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=1)
    groups = _groups(result.outlines)
    assert {k: v for k, v in groups.items() if k in "abc"} == {x: [f"{x}-1", f"{x}-2", f"{x}-3"] for x in "abc"}
    assert groups["no-newline"] == ["no line break at the end"]
    assert groups["killed"][0] == "before"


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


@XDIST
def test_retried_jobs_in_the_summary_and_annotations(
    pytester: pytest.Pytester, job: JobWriter, in_actions: Path, n: str
) -> None:
    """A pass after a failed attempt is a warning at the job's file; a job failing every
    attempt says so in its error; the table names the earlier attempts and their logs."""
    counter = pytester.path / "attempts"
    job("flaky", f'echo x >> {counter}; [ "$(wc -l < {counter})" -ge 2 ] || exit 4', retries="1")
    job("hopeless", "echo nope; exit 2", retries="1")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n)
    assert result.parseoutcomes() == {"failed": 1, "flaky": 1}

    [warning] = read_commands(result.outlines, "warning")
    assert warning.properties["title"] == "flaky flaky"
    assert warning.properties["file"] == f"{pytester.path.name}/cijobs/flaky.sh"
    assert warning.message == "passed on attempt 2 of 2: attempt 1 failed with exit code 4 (flaky@attempt1.log)"
    [error] = read_commands(result.outlines, "error")
    assert error.properties["title"] == "hopeless failed"
    assert error.message.splitlines()[:2] == [
        "exit code 2 (attempt 2 of 2)",
        "before attempt 2 of 2: attempt 1 failed with exit code 2 (hopeless@attempt1.log)",
    ]

    page = read_summary(in_actions.read_text())
    rows = job_rows(page)
    assert rows["flaky"][0] == "⚠️ flaky (passed)"
    assert rows["flaky"][4] == "passed on attempt 2 of 2: attempt 1 failed with exit code 4 (flaky@attempt1.log)"
    assert rows["hopeless"][0] == "❌ failed"
    assert "1 failed, 1 passed, 1 of them flaky (passed on a retry) (2 jobs)" in page.text
