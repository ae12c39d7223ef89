"""A run that may have jobs: settings, and the plugins that run them, assembled.

Imported by :mod:`pytest_cidag.plugin` only when the run may contain jobs (a job directory
exists, a job file is named, or a ``--cidag-*`` option is given), so a suite without jobs
never pays for it. Here the plugins are registered (one per concern, as pytest's
cacheprovider assembles its own), and :class:`JobsPlugin` holds the hooks that make job
files items and run them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag import internals
from pytest_cidag.caching import MODES, JobCache, Verdict
from pytest_cidag.core import signals
from pytest_cidag.core.jobspec import is_first_pass_id
from pytest_cidag.core.reaper import Reaper
from pytest_cidag.core.settings import RUNS_DIR, RunClaim, Settings, latest_run, new_run_name
from pytest_cidag.core.status import Status
from pytest_cidag.dependency import DependencyBridge
from pytest_cidag.items import DirectoryLoop, JobFailed, JobFile, JobItem
from pytest_cidag.jobfiles import by_real_path, in_helper_dir, is_job_file, is_loop, scan_job_dirs, shown_path
from pytest_cidag.junitform import JunitRewrite, junit_form_setting
from pytest_cidag.keys import (
    CACHE_KEY,
    OUTCOMES_KEY,
    REAPER_KEY,
    RESULT_KEY,
    RUN_KEY,
    SETTINGS_KEY,
    TIMEOUT_KEY,
    VERDICT_KEY,
    WORKER_KEY,
)
from pytest_cidag.outcomes import OutcomeRecorder
from pytest_cidag.persistence import CachePersistence
from pytest_cidag.retrying import (
    FLAKY,
    RERUNFAILURES,
    FlakyReport,
    RerunfailuresBridge,
    attempt_fields,
    is_flaky,
    retries_setting,
)
from pytest_cidag.selection import SelectionPlugin
from pytest_cidag.state import RunGraph

#: A report's cidag_status for a cache hit (a pass: outcomes see "passed").
CACHED = "cached"
#: A report's cidag_status for a job killed from outside (-x elsewhere, an interrupt): a skip.
CANCELLED = "cancelled"


def _number(config: pytest.Config, name: str, kind: type[int] | type[float], minimum: float) -> Any:
    option = f"--{name.replace('_', '-')}"
    value = config.getoption(name, None)
    where = f"from {option}"
    if value is None:
        value, where = config.getini(name), f"from ini {name}"
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{name}: {value!r} {where} is not a valid {kind.__name__}") from None
    if not math.isfinite(number):  # inf would wait forever, nan compares false with everything
        raise pytest.UsageError(f"{name}: {value!r} {where} must be a finite number, at least {minimum:g}")
    if number < minimum:
        raise pytest.UsageError(f"{name}: {value!r} {where} must be at least {minimum:g}")
    return number


def resolve_settings(config: pytest.Config) -> Settings:
    rootpath = config.rootpath
    workerinput = getattr(config, "workerinput", None)
    run_dir_arg = config.getoption("cidag_run_dir") or config.getini("cidag_run_dir")
    needs_dir = config.getoption("cidag_needs_dir")
    previous = (config.invocation_params.dir / needs_dir).resolve() if needs_dir else latest_run(rootpath)
    # as written, not resolved: a symlinked job directory keeps its path in node ids (README)
    job_paths = tuple(Path(os.path.normpath(rootpath / p)) for p in config.getini("cidag_paths"))
    reaches = reaches_jobs(config, job_paths)
    if workerinput is not None and "cidag_run_dir" in workerinput:  # as the controller decided
        reaches = bool(workerinput["cidag_reaches_jobs"])
        run_dir = rootpath / workerinput["cidag_run_dir"]  # relative (a worker on another host) or absolute
        default = bool(workerinput["cidag_default_run_dir"])
        previous = rootpath / workerinput["cidag_previous_run_dir"] if workerinput["cidag_previous_run_dir"] else None
    elif run_dir_arg:
        run_dir = (config.invocation_params.dir / run_dir_arg).resolve()
        default = False
    else:
        run_dir = rootpath / RUNS_DIR / new_run_name(rootpath / RUNS_DIR)
        default = True
    return Settings(
        job_paths=job_paths,
        run_dir=run_dir,
        default_run_dir=default,
        kill_grace=_number(config, "cidag_kill_grace", float, 0),
        tail_lines=_number(config, "cidag_tail_lines", int, 0),
        report_limit=_number(config, "cidag_report_limit", int, 1024),
        keep_runs=_number(config, "cidag_keep_runs", int, 0),
        tee=config.getoption("capture") == "no",
        previous_run_dir=previous,
        testcases=config.getoption("cidag_testcases"),
        first_testcases=_first_testcases(config),
        reaches_jobs=reaches,
        record=_record_setting(config),
        junit_form=junit_form_setting(config),
        github=_github_setting(config),
        live=_live_setting(config),
        live_interval=_number(config, "cidag_live_interval", float, 1),
        retries=retries_setting(config),
        **_cache_settings(config),
        **_report_settings(config, run_dir),
    )


def _first_testcases(config: pytest.Config) -> str | None:
    value: str | None = config.getoption("cidag_first_testcases")
    if value is None:
        # A first-pass id (an IDE re-running what it discovered) without the option: say
        # why, rather than pytest's "not found" (a Python test's name has no "@")
        named = next((a for a in map(str, config.args) if "::" in a and is_first_pass_id(a.rsplit("::", 1)[1])), None)
        if named is not None:
            raise pytest.UsageError(
                f"{named} is a first-pass item: it exists only in a run given --cidag-first-testcases EXPR "
                "(the test cases it runs)"
            )
    elif not value.strip():
        # jobs read an empty CIDAG_TESTCASES as "the whole suite": that is no first pass
        raise pytest.UsageError(
            "--cidag-first-testcases: an empty expression narrows nothing (a job reads an empty "
            "CIDAG_TESTCASES as its whole suite): name the test cases to run first"
        )
    return value


def _record_setting(config: pytest.Config) -> bool:
    value = config.getoption("cidag_record") or config.getini("cidag_record")
    if value not in ("on", "off"):
        raise pytest.UsageError(f"cidag_record: {value!r} from ini cidag_record must be on or off")
    return bool(value == "on")


def _report_settings(config: pytest.Config, run_dir: Path) -> dict[str, Any]:
    """``--cidag-report`` / ini ``cidag_report`` and the gates; a usage error, before any job
    runs, when the report cannot be made (plotly missing, the record off). An xdist worker
    writes no report, and asks nothing."""
    if hasattr(config, "workerinput"):
        return {}
    value, where, base = config.getoption("cidag_report"), "--cidag-report", config.invocation_params.dir
    if value is None:
        value, where, base = config.getini("cidag_report"), "ini cidag_report", config.rootpath
    gates = config.getoption("cidag_report_gates")
    if gates is None:
        gates = config.getini("cidag_report_gates")
    if value in ("off", ""):
        return {}
    from pytest_cidag.core import report

    if value == "on":
        path = run_dir / report.REPORT_NAME
    elif Path(value).suffix.lower() in (".html", ".htm"):
        path = (base / value).resolve()
    elif where == "--cidag-report":  # `pytest --cidag-report cijobs` takes the path for the file
        raise pytest.UsageError(
            f"cidag_report: {value!r} from --cidag-report is not an .html file name: "
            "put the paths before a bare --cidag-report, or write --cidag-report=FILE.html"
        )
    else:
        raise pytest.UsageError(f"cidag_report: {value!r} from ini cidag_report must be on, off or an .html file name")
    if not _record_setting(config):
        raise pytest.UsageError(
            f"cidag: the timeline report (from {where}) is drawn from the run record, which is off "
            "(--cidag-record off or ini cidag_record = off)"
        )
    try:
        report.require_plotly()
    except report.ReportError as exc:
        raise pytest.UsageError(f"cidag: {where}: {exc}") from None
    return {"report": path, "report_gates": report.parse_gates(gates)}


def _github_setting(config: pytest.Config) -> bool:
    """The GitHub Actions output (README "On GitHub"): auto is on where GITHUB_ACTIONS=true."""
    value = config.getoption("cidag_github") or config.getini("cidag_github")
    if value not in ("auto", "on", "off"):
        raise pytest.UsageError(f"cidag_github: {value!r} from ini cidag_github must be auto, on or off")
    return bool(value == "on" or (value == "auto" and os.environ.get("GITHUB_ACTIONS") == "true"))


def _live_setting(config: pytest.Config) -> bool:
    value = config.getoption("cidag_live") or config.getini("cidag_live")
    if value not in ("auto", "off"):
        raise pytest.UsageError(f"cidag_live: {value!r} from ini cidag_live must be auto or off")
    return bool(value == "auto")


def _cache_settings(config: pytest.Config) -> dict[str, Any]:
    mode = config.getoption("cidag_cache") or config.getini("cidag_cache")
    if mode not in MODES:
        raise pytest.UsageError(f"cidag_cache: {mode!r} from ini cidag_cache must be one of {', '.join(MODES)}")
    where = config.getoption("cidag_cache_dir") or config.getini("cidag_cache_dir")
    base = config.invocation_params.dir if config.getoption("cidag_cache_dir") else config.rootpath
    why = config.getoption("cidag_why")
    return {
        "cache_mode": mode,
        "cache_dir": (base / where).resolve() if where else config.rootpath / ".cidag" / "cache",
        "cache_max_size": _number(config, "cidag_cache_max_size", int, 0),
        "why": None if why is None else tuple(j for j in why.split(",") if j),
    }


def activate(config: pytest.Config) -> None:
    """Register the plugins of a run that may have jobs (from a trylast ``pytest_configure``:
    the selection's collection wrapper must be the outermost, after pytest's LFPlugin and
    NFPlugin and other plugins' tryfirst wrappers)."""
    settings = resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    is_worker = hasattr(config, "workerinput")
    reaches = settings.reaches_jobs
    run = RunGraph(job_index=scan_job_dirs(config, settings.job_paths, register=reaches))
    config.stash[RUN_KEY] = run
    dependency = DependencyBridge(config, run.job_index)
    recorder = OutcomeRecorder(run, dependency, is_worker=is_worker)
    config.stash[OUTCOMES_KEY] = recorder
    persistence = CachePersistence(config, run, recorder)
    selection = SelectionPlugin(config, run, dependency, persistence)
    jobs = JobsPlugin(config, settings, run)
    for name, plugin in (
        ("cidag-jobs", jobs),
        ("cidag-outcomes", recorder),
        ("cidag-cache", persistence),
        ("cidag-selection", selection),
    ):
        config.pluginmanager.register(plugin, name)
    if not is_worker:  # only where pytest writes the XML
        config.pluginmanager.register(JunitRewrite(config), "cidag-junit")
    if config.getoption("cidag_status") and not is_worker and not config.option.help:
        from pytest_cidag.commitstatus import CommitStatusPlugin, resolve

        # Resolved here, so a bad setting is a usage error before any job runs.
        config.pluginmanager.register(CommitStatusPlugin(config, resolve(config, settings)), "cidag-status")
    config.pluginmanager.register(FlakyReport(), "cidag-flaky")
    if config.pluginmanager.hasplugin(RERUNFAILURES):
        # Before the xdist worker's plugin: of two tryfirst protocol impls, the later registered runs first.
        config.pluginmanager.register(RerunfailuresBridge(), "cidag-rerunfailures")
    if run.job_index and reaches:
        # pytest's --lf keeps only the failed tests of a file at collection, so a passed test
        # that a job needs would be missing from the graph. Collect whole files; LFPlugin
        # still deselects what passed, and the selection pulls needs back in. (Not in a run
        # that does not reach the jobs: `pytest tests --lf` stays pytest's own.)
        internals.collect_whole_files_for_lf(config)
    if config.pluginmanager.hasplugin("xdist"):
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and "cidag_channel" in workerinput:
            from pytest_cidag.xdist.worker import WorkerSide

            worker = WorkerSide(config, workerinput["cidag_channel"], workerinput["cidag_worker_tag"])
            config.stash[WORKER_KEY] = worker
            selection.after_selection = worker.after_selection
            config.pluginmanager.register(worker, "cidag-worker")
        elif workerinput is None and getattr(config.option, "dist", "no") != "no":
            from pytest_cidag.xdist.controller import ControllerSide

            controller = ControllerSide(config, persistence, jobs.wind_down)
            config.pluginmanager.register(controller, "cidag-controller")


def reaches_jobs(config: pytest.Config, job_paths: tuple[Path, ...]) -> bool:
    """Whether the command line reaches the job directories: an argument is one of them,
    inside one, or holds one, or names a file that may be a job. (A Python test's
    pytest-dependency marker may still pull jobs in; they are collected then.)"""
    if config.option.cidag_graph or config.option.cidag_export:
        return True
    here = config.invocation_params.dir
    real_dirs = [d.resolve() for d in job_paths]
    for arg in config.args:
        path = (here / str(arg).split("::", 1)[0]).resolve()
        if any(path == d or path.is_relative_to(d) or d.is_relative_to(path) for d in real_dirs):
            return True
        if path.is_file() and path.suffix != ".py":
            return True
    return False


class JobsPlugin:
    """Job files become items; jobs' timeouts are theirs to enforce; what a run with jobs
    changes in the process (SIGTERM/SIGHUP) is undone at its end."""

    def __init__(self, config: pytest.Config, settings: Settings, run: RunGraph) -> None:
        self.config = config
        self.settings = settings
        self.run = run
        self._restore_signals: Any = None
        # Started before this process's first job (none at all on an xdist controller).
        self.reaper = config.stash[REAPER_KEY] = Reaper(settings.kill_grace)
        self.cache = config.stash[CACHE_KEY] = JobCache(settings, config.rootpath)
        self.verdicts: list[dict[str, Any]] = []  # --cidag-why, from every process's reports
        self.hits: list[str] = []  # node ids of this run's cache hits, for the JUnit XML
        #: This run's hold on its run directory (the scheduling process only), from the
        #: moment the run is known to run jobs until it ends.
        self.claim: RunClaim | None = None
        #: When the run began (the record's start).
        self.started = time.time()
        #: job files' real paths -> their paths under the job directories, made when needed
        self._by_real_path: dict[str, Path] | None = None
        #: node ids of the job files collected so far: a file reached twice is collected once
        self._collected: set[str] = set()

    def wind_down(self, on_second: Callable[[int], None] | None = None) -> None:
        """The run has jobs: SIGTERM and SIGHUP now wind pytest down as Ctrl-C does, so a
        running job's tree is killed and reports are written (until the run ends). With
        ``on_second``, a second signal during the wind-down calls it instead."""
        if self._restore_signals is None:
            self._restore_signals = signals.wind_down(on_second)

    def claim_run_dir(self) -> None:
        """Create and lock the run directory before the first job: one usage error, not a
        failure per job, when it cannot be written. (An xdist controller calls it once the
        first worker's plan shows jobs.)"""
        if self.claim is not None:
            return
        try:
            self.claim = self.settings.claim_run_dir()
        except OSError as exc:
            config = self.config
            if config.getoption("cidag_run_dir"):
                where = "from --cidag-run-dir"
            elif config.getini("cidag_run_dir"):
                where = "from ini cidag_run_dir"
            else:
                where = "the default"
            shown = shown_path(self.settings.run_dir, config)
            raise pytest.UsageError(
                f"cidag: cannot write the run directory {shown} ({where}): {exc.strerror or exc}"
            ) from None
        if self.settings.record or self.settings.github:
            from pytest_cidag.record import RunRecorder

            self.config.pluginmanager.register(RunRecorder(self.config, self.settings, self.started), "cidag-record")
        if self.settings.github:
            from pytest_cidag.github import GitHubReporter

            self.config.pluginmanager.register(GitHubReporter(self.config, self.settings, os.environ), "cidag-github")
        if self.settings.live:
            from pytest_cidag.live import start_live

            start_live(self.config, self.settings)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = self.config
        if self.run.graph is not None and not config.getoption("collectonly"):
            self.wind_down()
            if (
                not hasattr(config, "workerinput")
                and not config.getoption("cidag_graph")
                and not config.getoption("cidag_export")  # runs nothing: no run directory, record, status
                and any(isinstance(i, JobItem) for i in session.items)
            ):
                self.claim_run_dir()

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.reaper.close()
        self.cache.close()
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None
        if self.claim is not None:
            # The run is over: old runs are pruned now, outside every job's timing.
            self.claim.release()
            self.claim = None
            self.settings.prune()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        # tryfirst: before pytest's Dir and Package, which would walk a loop 40 levels deep
        job_dir = next((p for p in self.settings.job_paths if path.is_relative_to(p) and path != p), None)
        if job_dir is not None and is_loop(path):
            return DirectoryLoop.from_parent(parent, path=path)
        return None

    @pytest.hookimpl
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> JobFile | None:
        settings = self.settings
        job_dir = next((p for p in settings.job_paths if file_path.is_relative_to(p)), None)
        in_job_dir = job_dir is not None and not in_helper_dir(file_path, job_dir)
        if not (in_job_dir or parent.session.isinitpath(file_path)):
            return None
        if not is_job_file(file_path, self.config):
            return None
        if not in_job_dir and file_path.suffix == ".py":
            return None  # an explicitly named Python file is pytest's, not ours
        # A job directory's file named by another path (a symlink's target) is that job.
        canonical = file_path if in_job_dir else self._job_dir_path(file_path)
        collector = JobFile.for_path(parent, file_path, canonical)
        if collector.nodeid in self._collected and not self.config.getoption("keepduplicates"):
            return None
        self._collected.add(collector.nodeid)
        return collector

    def _job_dir_path(self, file_path: Path) -> Path:
        if self._by_real_path is None:
            self._by_real_path = by_real_path(self.config, self.settings.job_paths)
        return self._by_real_path.get(os.path.realpath(file_path), file_path)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        # wrapper: sees the report every makereport impl has made.
        report = yield
        # A plain string attribute travels with the report from xdist workers to the controller.
        if isinstance(item, JobItem) and call.excinfo is not None and isinstance(call.excinfo.value, JobFailed):
            report.cidag_status = Status(call.excinfo.value.status).value
            report.cidag_reason = call.excinfo.value.headline  # the run record's reason
        if isinstance(item, JobItem) and call.when == "call" and VERDICT_KEY in item.stash:
            verdict = item.stash[VERDICT_KEY]
            report.cidag_cache = json.dumps(dataclasses.asdict(verdict))
            if verdict.state == "hit" and report.passed:
                report.cidag_status = CACHED
        if isinstance(item, JobItem) and call.when == "call" and RESULT_KEY in item.stash:
            # the job's process, for the run record (run.json) in the scheduling process
            result = item.stash[RESULT_KEY]
            report.cidag_run = json.dumps(
                {
                    "start": result.started,
                    "end": result.ended,
                    "returncode": result.returncode,
                    "signal": result.signal_name,
                    "timeout": item.effective_timeout(),
                    **attempt_fields(item),
                }
            )
            if result.aborted and report.skipped:
                report.cidag_status = CANCELLED
            elif report.passed and is_flaky(item):
                report.cidag_status = FLAKY
        return report

    @pytest.hookimpl
    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> tuple[str, str, Any] | None:
        """A cache hit passed without running: shown as ``c`` / ``CACHED``, counted as passed."""
        if report.when == "call" and report.passed and getattr(report, "cidag_status", None) == CACHED:
            return "passed", "c", ("CACHED", {"green": True})
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # tryfirst: before the JUnit XML is written. On the suite, not on each testcase:
        # Jenkins' schema allows no <properties> in a <testcase>.
        if self.hits:
            internals.add_junit_suite_property(self.config, "cidag_cache_hits", " ".join(sorted(self.hits)))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and getattr(report, "cidag_status", None) == CACHED:
            self.hits.append(report.nodeid)
        data = getattr(report, "cidag_cache", None)
        if data and report.when == "call" and self.settings.why is not None:
            verdict = json.loads(data)
            if not self.settings.why or verdict["job"] in self.settings.why:
                self.verdicts.append(verdict)

    @pytest.hookimpl(optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """pytest-timeout resolved the item's timeout (marker > --timeout > env > ini).

        For a job, keep the value and enforce it ourselves by killing the job's process tree;
        returning True stops pytest-timeout from arming its own timer (which would interrupt
        pytest, not the job, and orphan the job's processes).
        """
        if isinstance(item, JobItem):
            item.stash[TIMEOUT_KEY] = float(settings.timeout or 0)
            return True
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool | None:
        return True if isinstance(item, JobItem) else None

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.verdicts:
            terminalreporter.section("cidag cache: why", sep="-")
            for verdict in sorted(self.verdicts, key=lambda v: v["job"]):
                terminalreporter.write_line(Verdict(**verdict).line())
            with contextlib.suppress(OSError):
                (self.settings.run_dir / "why.json").write_text(json.dumps(self.verdicts, indent=1) + "\n")
        if self.reaper.failed:
            terminalreporter.write_line(
                f"cidag: could not start the reaper ({self.reaper.failed}): had pytest been killed, "
                "its running jobs would have survived it",
                yellow=True,
            )
        run_dir = self.settings.run_dir
        if run_dir.is_dir() and any(run_dir.glob("*.log")):
            terminalreporter.write_line(f"cidag: job logs in {shown_path(run_dir, config)}")
