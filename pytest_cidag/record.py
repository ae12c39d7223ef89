"""The run record: ``run.json`` and ``trace.json`` in the run directory, the critical-path
line at the end of the run, and the timeline report when asked (``--cidag-report``: drawn
by :mod:`pytest_cidag.core.report`, imported only then).

Registered by :class:`pytest_cidag.session.JobsPlugin` when it claims the run directory
(with the record on, or the GitHub output on, which reads the record it builds: then it
writes nothing), so only in the process that schedules jobs (the xdist controller, or the only process) of
a run that has jobs; imported only then. Everything it knows of a job comes through
``pytest_runtest_logstart`` / ``pytest_runtest_logreport``, which that process sees for
every job on every worker: the times of a job's process travel on its call report
(``cidag_run``), as ``cidag_status`` does. The format: docs/run-record.md.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core import critpath
from pytest_cidag.core.jobspec import LOG_SUFFIX
from pytest_cidag.core.record import (
    FORMAT_VERSION,
    RECORD_NAME,
    TRACE_NAME,
    CpuSampler,
    git_facts,
    to_trace,
    write_atomic,
)
from pytest_cidag.core.settings import Settings
from pytest_cidag.core.status import Status
from pytest_cidag.jobfiles import shown_path
from pytest_cidag.keys import OUTCOMES_KEY, RUN_KEY
from pytest_cidag.retrying import FLAKY

#: Outcome names in the record, by the node's status (PASSED and SKIPPED are refined by
#: the call report's ``cidag_status``: cached, cancelled).
OUTCOME_NAMES = {
    Status.PASSED: "passed",
    Status.FAILED: "failed",
    Status.ERRORED: "error",
    Status.TIMEOUT: "timeout",
    Status.SKIPPED: "skipped",
    Status.BLOCKED: "blocked",
    Status.CRASHED: "failed",
}

#: How the line that names the timeline report starts (--cidag-report).
REPORT_LINE = "cidag: timeline report: "


@dataclass
class Seen:
    """What the reports said of one job, as they arrived."""

    logstart: float | None = None  # when its first report's logstart came (epoch seconds)
    worker: str | None = None
    first: float | None = None  # start of its first phase
    last: float | None = None  # stop of its last phase
    run: dict[str, Any] = field(default_factory=dict)  # its process: start, end, returncode, timeout
    status: str | None = None  # the call report's cidag_status
    reason: str | None = None  # a skip's reason


class RunRecorder:
    """Gathers each job's times and outcome from its reports and writes the record when the
    session finishes (also an interrupted one)."""

    def __init__(self, config: pytest.Config, settings: Settings, started: float) -> None:
        self.config = config
        self.settings = settings
        self.started = started
        self.seen: dict[str, Seen] = {}
        self.interrupted: str | None = None
        self.line: str | None = None
        self.problem: str | None = None
        self.report_lines: list[str] = []  # the timeline report's path, or why it was not written
        #: The record, once the session has finished (the GitHub summary reads it).
        self.record: dict[str, Any] | None = None
        self.sampler = CpuSampler()
        self.sampler.start()

    def _job(self, nodeid: str) -> Seen | None:
        graph = self.config.stash[RUN_KEY].graph
        node = graph.nodes.get(nodeid) if graph is not None else None
        if node is None or not node.is_job:
            return None
        return self.seen.setdefault(nodeid, Seen())

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        seen = self._job(nodeid)
        if seen is not None and seen.logstart is None:
            seen.logstart = time.time()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        seen = self._job(report.nodeid)
        if seen is None:
            return
        node = getattr(report, "node", None)  # set by xdist on a worker's report
        seen.worker = str(getattr(getattr(node, "gateway", None), "id", "main")) if node is not None else "main"
        start, stop = getattr(report, "start", None), getattr(report, "stop", None)
        if start is not None and seen.first is None:
            seen.first = start
        if stop is not None:
            seen.last = stop
        data = getattr(report, "cidag_run", None)
        if data:
            seen.run = json.loads(data)
        status = getattr(report, "cidag_status", None)
        if status:
            seen.status = status
        if report.skipped and isinstance(report.longrepr, tuple):
            seen.reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed and seen.reason is None:  # the first failure says why
            crash = getattr(report.longrepr, "reprcrash", None)
            seen.reason = getattr(report, "cidag_reason", None) or getattr(crash, "message", None)

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = str(excinfo.value) or type(excinfo.value).__name__

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        ended = time.time()
        record = self.record = self.build(session, int(exitstatus), ended)
        if not self.settings.record:  # built for the GitHub summary only (--cidag-record off)
            return
        run_dir = self.settings.run_dir
        try:
            write_atomic(run_dir / RECORD_NAME, record)
            write_atomic(run_dir / TRACE_NAME, to_trace(record))
        except OSError as exc:
            self.problem = f"cidag: the run record was not written ({exc.strerror or exc})"
        self.line = critpath.summary_line(record)
        if self.settings.report is not None:
            self.report_lines = self._report(record, self.settings.report)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # trylast: after the other plugins' summary lines (the job logs' directory), so the
        # critical path is the last line before pytest's own short summary
        if self.problem:
            terminalreporter.write_line(self.problem, yellow=True)
        if self.line:
            terminalreporter.write_line(f"cidag: {self.line}")
        for line in self.report_lines:
            terminalreporter.write_line(line, yellow=not line.startswith(REPORT_LINE))

    def _report(self, record: dict[str, Any], path: Path) -> list[str]:
        """Write the timeline report (--cidag-report); the lines that say where, or why not."""
        from pytest_cidag.core import report

        try:
            timeline = report.write_report(
                path, [report.Run(record, self.settings.run_dir)], self.settings.report_gates
            )
        except (OSError, report.ReportError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return [f"cidag: the timeline report was not written to {shown_path(path, self.config)} ({reason})"]
        lines = [f"cidag: report: {warning}" for warning in timeline.warnings]
        return [*lines, f"{REPORT_LINE}{shown_path(path, self.config)}"]

    # --- the record ---------------------------------------------------------------------------

    def _stop_reason(self, session: pytest.Session) -> dict[str, str] | None:
        if self.interrupted is not None:
            return {"by": "signal", "reason": self.interrupted}
        controller = self.config.pluginmanager.get_plugin("cidag-controller")
        scheduler = getattr(controller, "scheduler", None)
        stopped = getattr(scheduler, "stopped", None) or session.shouldfail
        if stopped:
            return {"by": "maxfail", "reason": str(stopped)}
        if session.shouldstop:
            return {"by": "stop", "reason": str(session.shouldstop)}
        return None

    def build(self, session: pytest.Session, exitstatus: int, ended: float) -> dict[str, Any]:
        config = self.config
        run = config.stash[RUN_KEY]
        graph = run.graph
        recorder = config.stash[OUTCOMES_KEY]
        controller = config.pluginmanager.get_plugin("cidag-controller")
        queued: dict[str, float] = getattr(controller, "dispatched_at", {})
        stop = self._stop_reason(session)
        jobs: list[dict[str, Any]] = []
        for key in run.run_keys:
            node = graph.nodes.get(key) if graph is not None else None
            if node is None or not node.is_job:
                continue
            seen = self.seen.get(key, Seen())
            outcome = recorder.outcomes.get(key)
            status = outcome.status if outcome is not None else Status.PENDING
            job: dict[str, Any] = {
                "id": node.label,
                "nodeid": key,
                "worker": seen.worker,
                "queued": queued.get(key),
                "start": seen.run.get("start", seen.first),
                "end": seen.run.get("end", seen.last),
                "outcome": "",
                "reason": None,
                "exit_code": None,
                "signal": None,
                "timeout": seen.run.get("timeout", node.timeout),
                "needs": list(graph.needs.get(key, ())) if graph is not None else [],
                "log": None,
                "on_critical_path": False,
                "attempts": seen.run.get("attempts", []),
                "flaky": seen.status == FLAKY,
            }
            returncode = seen.run.get("returncode")
            if returncode is not None and returncode < 0:
                job["signal"] = seen.run.get("signal")
            elif returncode is not None:
                job["exit_code"] = returncode
            if status == Status.PENDING:
                # still running when the run ended (interrupted), or never started
                job["outcome"] = "cancelled"
                if seen.logstart is not None:
                    job["reason"] = "still running when the run ended" + (f": {stop['reason']}" if stop else "")
                    job["start"] = job["start"] or seen.logstart
                    job["end"] = ended
                else:
                    job["reason"] = "not started" + (f": {stop['reason']}" if stop else "")
                    job["start"] = job["end"] = None
            else:
                job["outcome"] = OUTCOME_NAMES[status]
                if status == Status.PASSED and seen.status == "cached":
                    job["outcome"] = "cached"
                elif status == Status.SKIPPED and seen.status == "cancelled":
                    job["outcome"] = "cancelled"
                if status == Status.BLOCKED:
                    job["reason"] = outcome.reason if outcome is not None else seen.reason
                elif status == Status.SKIPPED:
                    job["reason"] = seen.reason
                elif status == Status.CRASHED:
                    job["reason"] = "its xdist worker crashed"
                elif status in (Status.FAILED, Status.TIMEOUT, Status.ERRORED):
                    job["reason"] = seen.reason
            log = self.settings.run_dir / f"{node.label}{LOG_SUFFIX}"
            if job["outcome"] != "blocked" and log.is_file():
                job["log"] = log.name
            jobs.append(job)
        record: dict[str, Any] = {
            "format": "pytest-cidag run record",
            "version": FORMAT_VERSION,
            "name": self.settings.run_dir.name,
            "argv": [str(a) for a in config.invocation_params.args],
            "python": sys.executable,
            "rootdir": str(config.rootpath),
            "start": self.started,
            "end": ended,
            "exit_status": exitstatus,
            "interrupted": stop,
            "workers": _workers(config),
            "git": git_facts(config.rootpath),
            "jobs": jobs,
            "critical_path": [],
            "cpu": self.sampler.stop(),
        }
        chain = critpath.critical_path(jobs)
        for job in chain:
            job["on_critical_path"] = True
        record["critical_path"] = [job["nodeid"] for job in chain]
        return record


def _workers(config: pytest.Config) -> int:
    """xdist workers of the run; 0 when jobs ran in the pytest process itself."""
    option = config.option
    if getattr(option, "dist", "no") == "no":
        return 0
    return len(getattr(option, "tx", None) or ()) or int(getattr(option, "numprocesses", 0) or 0)
