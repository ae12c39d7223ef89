"""Inside GitHub Actions: the step summary, error annotations and log groups of a run with jobs.

Registered by :class:`pytest_cidag.session.JobsPlugin` when it claims the run directory and
the GitHub output is on (``GITHUB_ACTIONS=true``, or ``--cidag-github``), so only in the
process that schedules the jobs (the xdist controller, or the only process); imported only
then. The summary and the annotations are made from the run record that
:class:`pytest_cidag.record.RunRecorder` builds (registered before this plugin), plus each
job's file and line from the graph and its log's last lines; the formatting is
:mod:`pytest_cidag.core.github`'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core import github, runner
from pytest_cidag.core.record import RECORD_NAME
from pytest_cidag.core.settings import Settings
from pytest_cidag.items import JobItem
from pytest_cidag.jobfiles import shown_path
from pytest_cidag.keys import RESULT_KEY, RUN_KEY


class GitHubReporter:
    """Writes the step summary and prints the annotations when the session finishes; wraps
    each job's live output (``-s``) in a log group.

    Attributes:
        summary_path: ``$GITHUB_STEP_SUMMARY``, or None (no summary is written).
        workspace: ``$GITHUB_WORKSPACE`` (the repository's root), or None: annotations'
            files are then relative to the rootdir.
        commands: the annotation lines, printed at the end of the terminal output.
        problem: why the summary could not be written, said at the end.
    """

    def __init__(self, config: pytest.Config, settings: Settings, environ: Mapping[str, str]) -> None:
        self.config = config
        self.settings = settings
        self.summary_path = Path(environ["GITHUB_STEP_SUMMARY"]) if environ.get("GITHUB_STEP_SUMMARY") else None
        self.workspace = Path(environ["GITHUB_WORKSPACE"]) if environ.get("GITHUB_WORKSPACE") else None
        self.commands: list[str] = []
        self.problem: str | None = None

    def _terminal(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _command_line(self, tr: Any, line: str) -> None:
        """A workflow command on a line of its own: GitHub reads one only at a line's start,
        and the progress letters (``.F``) leave the line open."""
        tr.ensure_newline()
        writer = self.config.get_terminal_writer()
        if writer.width_of_current_line:
            writer.line()
        tr.write_line(line)

    # --- log groups ---------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        # wrapper: the group opens before the job's process starts and closes after it has
        # ended, whatever the job's outcome (an exception passes through).
        tr = self._terminal()
        if not (self.settings.tee and isinstance(item, JobItem) and tr is not None):
            return (yield)
        self._command_line(tr, github.group_start(item.job_id))
        tr.flush()  # before the job's output, which goes to the stream underneath
        try:
            return (yield)
        finally:
            result = item.stash.get(RESULT_KEY, None)
            sys.stdout.flush()
            # The live output is the log's bytes before any "[cidag] job killed" trailer; for
            # a killed job those cannot be told from the trailer's own line break.
            newline = result is not None and (
                result.timed_out or bool(result.aborted) or not _ends_with_newline(result.log_path)
            )
            tr.write(("\n" if newline else "") + github.group_end() + "\n")
            tr.flush()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist, jobs' live output does not reach this process (a worker's stdout is
        # execnet's /dev/null), and parallel jobs' lines would interleave: each job's output
        # is shown as one group when it ends, from its report (report.node: it came from a worker).
        if not self.settings.tee or report.when != "call" or getattr(report, "node", None) is None:
            return
        graph = self.config.stash[RUN_KEY].graph
        node = graph.nodes.get(report.nodeid) if graph is not None else None
        tr = self._terminal()
        if node is None or not node.is_job or tr is None:
            return
        text = report.capstdout
        self._command_line(tr, github.group_start(node.label))
        tr.write(text + ("" if not text or text.endswith("\n") else "\n") + github.group_end() + "\n")
        tr.flush()

    # --- summary and annotations --------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # trylast: after the RunRecorder's, which builds the record read here
        recorder = self.config.pluginmanager.get_plugin("cidag-record")
        record: dict[str, Any] | None = getattr(recorder, "record", None)
        if record is None:
            return
        run_dir = self.settings.run_dir
        tails = {
            job["nodeid"]: runner.tail(run_dir / job["log"], self.settings.tail_lines) if job["log"] else []
            for job in record["jobs"]
            if job["outcome"] in github.FAILED
        }
        locations = self._locations(record)
        self.commands = github.error_commands(record, locations, tails) + github.warning_commands(record, locations)
        if self.summary_path is not None:
            self._write_summary(record, tails)
        if self._terminal() is None:  # no terminal output (-p no:terminal): straight to stdout
            for line in self.commands:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.commands:
            self._command_line(terminalreporter, line)
        if self.problem:
            terminalreporter.write_line(self.problem, yellow=True)

    def _locations(self, record: Mapping[str, Any]) -> dict[str, github.Location]:
        """Each job's file relative to the repository's root (``$GITHUB_WORKSPACE``; the
        rootdir when it is unset or does not hold the file) and its block's line."""
        graph = self.config.stash[RUN_KEY].graph
        rootpath = self.config.rootpath
        out = {}
        for job in record["jobs"]:
            node = graph.nodes.get(job["nodeid"]) if graph is not None else None
            file, _, line = (node.where if node is not None else "").rpartition(":")
            file = file or job["nodeid"].split("::", 1)[0]
            if self.workspace is not None:
                relative = os.path.relpath(rootpath / file, self.workspace)
                if not relative.startswith(".."):
                    file = relative
            out[job["nodeid"]] = github.Location(file.replace(os.sep, "/"), int(line) if line.isdigit() else 1)
        return out

    def _write_summary(self, record: Mapping[str, Any], tails: Mapping[str, list[str]]) -> None:
        """Append to the step summary, never replacing what earlier steps' commands wrote
        there; what is already there counts towards GitHub's limit."""
        assert self.summary_path is not None
        path = self.summary_path
        try:
            before = path.stat().st_size
        except FileNotFoundError:
            before = 0
        except OSError as exc:
            self.problem = f"cidag: the GitHub step summary was not written: {path}: {exc.strerror or exc}"
            return
        separator = "\n" if before else ""
        run_dir = self.settings.run_dir
        record_file = shown_path(run_dir / RECORD_NAME, self.config) if self.settings.record else None
        text = github.step_summary(
            record,
            tails,
            room=github.SUMMARY_LIMIT - before - len(separator),
            record_file=record_file,
            run_dir=shown_path(run_dir, self.config),
        )
        if not text:
            self.problem = (
                f"cidag: the GitHub step summary was not written: {path} already holds {before} bytes, "
                f"GitHub shows at most {github.SUMMARY_LIMIT}"
            )
            return
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(separator + text)
        except OSError as exc:
            self.problem = f"cidag: the GitHub step summary was not written: {path}: {exc.strerror or exc}"


def _ends_with_newline(path: Path) -> bool:
    """The file is empty or missing, or its last byte is a line break."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:
        return True
