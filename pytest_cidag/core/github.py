"""What a run shows inside GitHub Actions, from its run record. Pure: no pytest import.

- :func:`step_summary`: the Markdown appended to ``$GITHUB_STEP_SUMMARY``: a table of jobs,
  each failure's last lines in a collapsed ``<details>``, the timeline as a Mermaid
  ``gantt``; cut to fit GitHub's limit, with a note saying what was left out.
- :func:`error_commands`: one ``::error`` workflow command per failed, errored or timed-out job,
  pointing at its job file and the line of its metadata block.
- :func:`group_start` / :func:`group_end`: the ``::group::`` / ``::endgroup::`` lines around a
  job's output in the log.

Everything is built from the run record's dict (docs/run-record.md) plus what the record does
not hold: each job's file and line, and the last lines of its log. The pytest glue that
gathers those and writes the results is :mod:`pytest_cidag.github`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_cidag.core import critpath

#: GitHub's limit for one step's summary file (a larger file is not shown at all).
SUMMARY_LIMIT = 1024 * 1024
#: Mermaid refuses a diagram longer than this (its ``maxTextSize``, 50 000 by default).
MERMAID_MAX_TEXT = 50_000
#: Bars in the timeline: more are unreadable on a page, and slow to draw.
GANTT_MAX_TASKS = 400
#: Longest output line kept in the summary and in an annotation; the log keeps it whole.
MAX_LINE = 300
#: Longest annotation message (its reason and last lines), in characters.
ANNOTATION_MAX = 4000
#: At most this share of the summary's room goes to the failures' output, then at most this
#: share of what is left to the timeline; the rest is the table's.
FAILURES_SHARE = 0.5
TIMELINE_SHARE = 0.2

#: Outcomes that are a failure of the job itself: an annotation and a ``<details>`` each.
FAILED = ("failed", "error", "timeout")
#: The table's order: the failures first, then what did not run, then what passed.
ORDER = ("failed", "timeout", "error", "cancelled", "blocked", "skipped", "passed", "cached")
ICONS = {
    "passed": "✅",
    "cached": "✅",
    "failed": "❌",
    "error": "❌",
    "timeout": "⏱️",
    "skipped": "⏭️",
    "blocked": "⛔",
    "cancelled": "🚫",
}
#: The words for each outcome in the table and the titles.
WORDS = {"error": "errored", "timeout": "timed out", "cached": "passed"}

#: Terminal escape sequences (colours, cursor moves), dropped from output shown on a page.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


# --- workflow commands ----------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: the message's escapes, and ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: Mapping[str, str | int] | None = None) -> str:
    """One workflow command line (no newline): ``::name key=value,...::message``."""
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in (properties or {}).items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def group_start(title: str) -> str:
    """The line that opens a collapsed group in the log."""
    return command("group", title)


def group_end() -> str:
    return command("endgroup", "")


@dataclass(frozen=True)
class Location:
    """Where a job is in the repository: its file (relative to the repository's root, ``/``
    separated) and the line of its metadata block (1 without one)."""

    file: str
    line: int


def error_commands(
    record: Mapping[str, Any],
    locations: Mapping[str, Location],
    tails: Mapping[str, Sequence[str]],
) -> list[str]:
    """An ``::error`` command for each job that failed, errored or timed out, in run order.

    ``locations`` and ``tails`` are by node id; a job missing from ``locations`` is
    annotated without a file (GitHub shows it on the run, not on a file).
    """
    out = []
    for job in record["jobs"]:
        if job["outcome"] not in FAILED:
            continue
        lines = [job["reason"] or job["outcome"]]
        if retry_text(job):
            lines.append(retry_text(job))
        last = [clean_line(line) for line in tails.get(job["nodeid"], ())]
        if last:
            lines.append("last line of output:" if len(last) == 1 else f"last {len(last)} lines of output:")
            lines.extend(last)
        message = "\n".join(lines)
        if len(message) > ANNOTATION_MAX:
            # keep the reason and the last lines, which say the most
            keep = ANNOTATION_MAX - len(lines[0]) - 40
            message = f"{lines[0]}\n[... cut ...]\n{message[len(message) - keep :]}"
        properties: dict[str, str | int] = {}
        where = locations.get(job["nodeid"])
        if where is not None:
            properties.update(file=where.file, line=where.line)
        properties["title"] = f"{job['id']} {WORDS.get(job['outcome'], job['outcome'])}"
        out.append(command("error", message, properties))
    return out


def _attempt_text(attempt: Mapping[str, Any]) -> str:
    """``attempt 1 timed out (x@attempt1.log)``."""
    if attempt.get("signal") and attempt["outcome"] != "timeout":
        how = f"was killed by {attempt['signal']}"
    elif attempt["outcome"] == "failed" and attempt.get("exit_code") is not None:
        how = f"failed with exit code {attempt['exit_code']}"
    else:
        how = WORDS.get(attempt["outcome"], attempt["outcome"])
    return f"attempt {attempt['number']} {how} ({attempt['log']})"


def retry_text(job: Mapping[str, Any]) -> str:
    """What a retried job's attempts did, one clause each; "" for a job run once."""
    attempts = job.get("attempts") or []
    if len(attempts) < 2:
        return ""
    earlier = "; ".join(_attempt_text(a) for a in attempts[:-1])
    last = attempts[-1]
    if job.get("flaky"):
        return f"passed on attempt {last['number']} of {len(attempts)}: {earlier}"
    return f"before attempt {last['number']} of {len(attempts)}: {earlier}"


def warning_commands(record: Mapping[str, Any], locations: Mapping[str, Location]) -> list[str]:
    """A ``::warning`` command for each job that passed only after a retry (flaky), in run order."""
    out = []
    for job in record["jobs"]:
        if not job.get("flaky"):
            continue
        properties: dict[str, str | int] = {}
        where = locations.get(job["nodeid"])
        if where is not None:
            properties.update(file=where.file, line=where.line)
        properties["title"] = f"{job['id']} flaky"
        out.append(command("warning", retry_text(job), properties))
    return out


# --- Markdown -------------------------------------------------------------------------------


def clean_line(line: str) -> str:
    """An output line for a page: no terminal escapes or control characters, cut at
    ``MAX_LINE`` characters."""
    line = _CONTROL.sub("", _ANSI.sub("", line)).rstrip()
    if len(line) > MAX_LINE:
        line = f"{line[:MAX_LINE]} [line cut, {len(line)} characters]"
    return line


def md_text(text: str) -> str:
    """Plain text in Markdown (a table cell, a paragraph): every ASCII punctuation character
    backslash-escaped (CommonMark reads each back as itself, so no ``|``, ``*``, ``<``, ``@``,
    link or HTML can come of it), line breaks as spaces."""
    return _PUNCTUATION.sub(r"\\\1", _CONTROL.sub("", " ".join(text.split())))


def md_code(text: str) -> str:
    """``text`` as an inline code span, or as escaped text when a code span cannot hold it."""
    if "`" in text or "|" in text or not text.strip():
        return md_text(text)
    return f"`{text}`"


def html_text(text: str) -> str:
    """Text inside an HTML element (``<summary>``): ``&``, ``<``, ``>`` and ``"`` as entities."""
    text = _CONTROL.sub("", " ".join(text.split()))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def fenced(lines: Sequence[str], info: str = "text") -> str:
    """A fenced code block whose fence is longer than any run of backticks in ``lines``."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    body = "".join(line + "\n" for line in lines)
    return f"{fence}{info}\n{body}{fence}\n"


def ran(job: Mapping[str, Any]) -> bool:
    """The job has times and ran (a blocked job's times are those of its skip)."""
    return job.get("start") is not None and job.get("end") is not None and job["outcome"] not in critpath.NOT_RUN


def _duration(job: Mapping[str, Any]) -> float | None:
    if not ran(job):
        return None
    return float(job["end"] - job["start"])


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def outcome_text(outcome: str) -> str:
    return f"{ICONS.get(outcome, '')} {WORDS.get(outcome, outcome)}".strip()


def table_row(job: Mapping[str, Any]) -> str:
    duration = _duration(job)
    reason = "; ".join(part for part in (job["reason"] or "", retry_text(job)) if part)
    cells = [
        md_code(job["id"]),
        f"⚠️ flaky ({WORDS.get(job['outcome'], job['outcome'])})" if job.get("flaky") else outcome_text(job["outcome"]),
        _seconds(duration) if duration is not None else "",
        md_text(job["worker"] or ""),
        "yes" if job["outcome"] == "cached" else "",
        md_text(reason),
    ]
    return "| " + " | ".join(cells) + " |\n"


TABLE_HEAD = "| job | outcome | duration | worker | cached | reason |\n|---|---|---|---|---|---|\n"


def failure_details(job: Mapping[str, Any], tail: Sequence[str], log: str | None) -> str:
    """One failure: a collapsed ``<details>`` with the job's last lines in a code block;
    ``log`` is where its whole log is."""
    title = f"<code>{html_text(job['id'])}</code> {WORDS.get(job['outcome'], job['outcome'])}"
    if job.get("reason"):
        title += f": {html_text(job['reason'])}"
    lines = [clean_line(line) for line in tail]
    parts = [f"<details><summary>{title}</summary>\n\n"]
    if lines:
        parts.append(fenced(lines))
    else:
        parts.append("(no output)\n")
    if log:
        parts.append(f"\nFull log: {md_code(log)}\n")
    parts.append("\n</details>\n\n")
    return "".join(parts)


# --- the timeline ---------------------------------------------------------------------------

#: Words that start a line of a Mermaid gantt chart other than a task (its lexer matches them
#: case-insensitively before a task's name), and a date, which it also takes for a keyword.
_GANTT_KEYWORDS = re.compile(
    r"(?i)(?:(?:acctitle|accdescr|accdescription|href|call|click|gantt|dateformat|inclusiveenddates|topaxis"
    r"|axisformat|tickinterval|includes|excludes|todaymarker|weekday|weekend|title|section)(?![A-Za-z0-9_])"
    r"|\d{4}-\d\d-\d\d(?![A-Za-z0-9_]))"
)
#: Characters a gantt task's name cannot hold: ``:`` ends the name, ``%`` starts a comment,
#: ``#`` and ``;`` end a task's data; line breaks end the line.
_GANTT_UNSAFE = re.compile(r"[:%#;\r\n\x00-\x1f\x7f]")


def gantt_name(text: str) -> str:
    """``text`` as a gantt task's or section's name: the characters Mermaid's lexer would
    read otherwise replaced, and a name it would take for a keyword prefixed."""
    name = " ".join(_GANTT_UNSAFE.sub("_", text).split()) or "_"
    if _GANTT_KEYWORDS.match(name):
        name = f"job {name}"
    return name


#: The gantt tag of each outcome: red for a failure, grey for a hit, outlined for a cancel.
GANTT_TAGS = {"failed": "crit", "error": "crit", "timeout": "crit", "cached": "done", "cancelled": "active"}


def _worker_key(worker: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"gw(\d+)", worker)
    return (0, 0, worker) if worker == "main" else (1, int(m.group(1)), "") if m else (2, 0, worker)


def _timeline_jobs(jobs: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """The jobs the timeline shows (every job with times, up to ``GANTT_MAX_TASKS``: the
    critical path, the failures, then the longest), and how many with times it leaves out."""
    timed = [job for job in jobs if ran(job)]
    if len(timed) <= GANTT_MAX_TASKS:
        return timed, 0
    ranked = sorted(
        timed,
        key=lambda job: (not job.get("on_critical_path"), job["outcome"] not in FAILED, -(_duration(job) or 0)),
    )
    keep = {id(job) for job in ranked[:GANTT_MAX_TASKS]}
    return [job for job in timed if id(job) in keep], len(timed) - GANTT_MAX_TASKS


def gantt(record: Mapping[str, Any]) -> tuple[str, int]:
    """The run's timeline as a Mermaid gantt chart (without the code fence), one section per
    worker, times in milliseconds since the run's start and an axis in seconds (with
    milliseconds for a run under 10 s); and how
    many jobs with times it leaves out. Empty when no job has times."""
    shown, left_out = _timeline_jobs(record["jobs"])
    if not shown:
        return "", left_out
    origin = float(record["start"])
    lines = [
        "gantt",
        "    title Jobs over time (seconds since the run started)",
        "    dateFormat x",
        # seconds since the epoch, i.e. since the run started: no time zone shifts it
        f"    axisFormat {'%s' if record['end'] - origin >= 10 else '%s.%L'}",
        "    todayMarker off",
    ]
    by_worker: dict[str, list[Mapping[str, Any]]] = {}
    for job in shown:
        by_worker.setdefault(job["worker"] or "?", []).append(job)
    size = sum(len(line) + 1 for line in lines)
    for worker in sorted(by_worker, key=_worker_key):
        section = f"    section {gantt_name(worker)}"
        lines.append(section)
        size += len(section) + 1
        for job in sorted(by_worker[worker], key=lambda j: j["start"]):
            start = max(0, round((job["start"] - origin) * 1000))
            end = max(start + 1, round((job["end"] - origin) * 1000))  # a bar of no length is not drawn
            tag = GANTT_TAGS.get(job["outcome"])
            line = f"    {gantt_name(job['id'])} :{tag + ', ' if tag else ''}{start}, {end}"
            if size + len(line) + 1 > MERMAID_MAX_TEXT:
                left_out += 1
                continue
            lines.append(line)
            size += len(line) + 1
    return "\n".join(lines) + "\n", left_out


# --- the summary ----------------------------------------------------------------------------


def _counts(jobs: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["outcome"]] = counts.get(job["outcome"], 0) + 1
    parts = [f"{counts[o]} {o}" for o in ORDER if o in counts]
    flaky = sum(1 for job in jobs if job.get("flaky"))
    if flaky:
        parts.append(f"{flaky} of them flaky (passed on a retry)")
    return ", ".join(parts) + f" ({len(jobs)} job{'s' if len(jobs) != 1 else ''})"


def _stop_note(record: Mapping[str, Any]) -> str:
    stop = record.get("interrupted")
    if not stop:
        return ""
    what = {"signal": "Interrupted", "maxfail": "Stopped early (-x / --maxfail)"}.get(stop["by"], "Stopped")
    running = sum(1 for job in record["jobs"] if job["outcome"] == "cancelled")
    after = f"; {running} job{'s' if running != 1 else ''} cancelled" if running else ""
    return f"> **{md_text(what)}**: {md_text(stop['reason'])}{md_text(after)}\n\n"


def step_summary(
    record: Mapping[str, Any],
    tails: Mapping[str, Sequence[str]],
    *,
    room: int = SUMMARY_LIMIT,
    record_file: str | None = None,
    run_dir: str | None = None,
) -> str:
    """The Markdown for the step summary, at most ``room`` bytes (UTF-8), or ``""`` when
    not even its heading fits.

    ``tails``: the last lines of each failed job's log, by node id. ``record_file``: where
    the full record is (``run.json``), named in a note when something is left out; None
    when none was written. ``run_dir``: the run directory, as shown to the user.

    What it holds, most needed first, each part cut to the room left when it is too long, and
    every cut said in a note: the failures' output (at most ``FAILURES_SHARE`` of the room:
    the first failures, the first one with as many of its last lines as fit), the timeline
    (whole, if it takes at most ``TIMELINE_SHARE`` of what is left; its own bars are capped:
    the critical path, the failures and the longest jobs stay), then the table's rows (the
    failures first, so they stay). On the page the table comes first.
    """
    jobs = record["jobs"]
    head = f"### pytest-cidag: {md_text(_counts(jobs))} in {_seconds(float(record['end'] - record['start']))}\n\n"
    head += _stop_note(record)
    line = critpath.summary_line(record)
    if line:
        head += f"{md_text(line[0].upper() + line[1:])}\n\n"
    where = "the run record (not written: --cidag-record off)"
    if record_file:
        where = f"the run record {md_code(record_file)}"

    def size(text: str) -> int:
        return len(text.encode())

    # Room for the notes that may be needed below, whatever they end up saying.
    reserve = 3 * (200 + size(where))
    budget = room - size(head) - reserve
    if budget < 0:
        short = f"### pytest-cidag: {md_text(_counts(jobs))}\n\nThe step summary is full; see {where}.\n"
        return short if size(short) <= room else ""

    failed = [job for job in jobs if job["outcome"] in FAILED]
    details: list[str] = []
    failure_room = int(budget * FAILURES_SHARE)
    for job in failed:
        log = f"{run_dir}/{job['log']}" if run_dir and job.get("log") else job.get("log")
        tail = list(tails.get(job["nodeid"], ()))
        block = failure_details(job, tail, log)
        while size(block) > failure_room and tail and not details:
            tail = tail[1:]  # the first failure stays, with as many of its last lines as fit
            block = failure_details(job, tail, log)
        if size(block) > failure_room:
            break
        details.append(block)
        failure_room -= size(block)
    failures = ""
    if failed:
        failures = "#### Failures\n\n" + "".join(details)
        if len(details) < len(failed):
            logs = f" in {md_code(run_dir)}" if run_dir else ""
            more = len(failed) - len(details)
            failures += (
                f"The output of {more} more failed job{'s is' if more != 1 else ' is'} left out for lack of "
                f"room: see their logs{logs}.\n\n"
            )
    budget -= size(failures)

    chart, chart_left_out = gantt(record)
    timeline = ""
    if chart:
        timeline = "#### Timeline\n\n" + fenced(chart.rstrip("\n").split("\n"), "mermaid") + "\n"
        if chart_left_out:
            timeline += (
                f"The timeline leaves out {chart_left_out} of the jobs that ran (the critical path, the "
                f"failures and the longest jobs are shown); {where} has all.\n\n"
            )
        if size(timeline) > budget * TIMELINE_SHARE:
            timeline = f"#### Timeline\n\nThe timeline is left out for lack of room; {where} has it.\n\n"
    budget -= size(timeline)

    rows = sorted(jobs, key=lambda job: ORDER.index(job["outcome"]) if job["outcome"] in ORDER else len(ORDER))
    table, shown_rows = [TABLE_HEAD], 0
    budget -= size(TABLE_HEAD)
    for job in rows:
        row = table_row(job)
        if size(row) > budget:
            break
        table.append(row)
        budget -= size(row)
        shown_rows += 1
    text = "".join(table) + "\n"
    if shown_rows < len(rows):
        text += (
            f"{len(rows) - shown_rows} more row{'s are' if len(rows) - shown_rows != 1 else ' is'} left out for "
            f"lack of room (the failures come first); {where} has every job.\n\n"
        )
    return head + text + failures + timeline
