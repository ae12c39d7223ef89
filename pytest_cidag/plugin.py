"""pytest-cidag's entry point: options, settings, collection and timeout hooks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

from pytest_cidag import internals
from pytest_cidag.core import signals
from pytest_cidag.core.render import FORMATS as GRAPH_FORMATS
from pytest_cidag.core.runner import DEFAULT_KILL_GRACE
from pytest_cidag.core.settings import RUNS_DIR, Settings, latest_run, new_run_name
from pytest_cidag.core.status import Status
from pytest_cidag.dependency import DependencyBridge
from pytest_cidag.graphview import graph_main
from pytest_cidag.items import JobFailed, JobFile, JobItem
from pytest_cidag.jobfiles import in_helper_dir, is_job_file, scan_job_dirs, shown_path
from pytest_cidag.keys import OUTCOMES_KEY, RESTORE_SIGNALS_KEY, RUN_KEY, SETTINGS_KEY, TIMEOUT_KEY, WORKER_KEY
from pytest_cidag.outcomes import OutcomeRecorder
from pytest_cidag.persistence import CachePersistence
from pytest_cidag.selection import SelectionPlugin
from pytest_cidag.state import RunGraph

PATHS_HELP = "Directories (relative to the rootdir) whose scripts are jobs (default: cijobs)"
RUN_DIR_HELP = "Directory for this run's job logs and outputs (default: .cidag/runs/<date>-<time>-<ms>-<pid>)"
KILL_GRACE_HELP = f"Seconds between TERM and KILL when a job's process tree is killed (default: {DEFAULT_KILL_GRACE:g})"
TAIL_HELP = "Lines of a failed job's output shown in its failure report (default: 15)"
REPORT_LIMIT_HELP = "Bytes of a job's output attached to its report; more is cut in the middle (default: 1048576)"
KEEP_RUNS_HELP = "Run directories kept under .cidag/runs; older ones are removed (default: 20, 0 keeps all)"
NO_DEPS_HELP = "Run exactly the selected jobs; needs outside the selection count as satisfied"
FIRST_HELP = "Run these jobs (comma-separated) and what they need as early as the graph allows"
TESTCASES_HELP = "Passed to every job as CIDAG_TESTCASES, for jobs that narrow a test suite with it"
GRAPH_HELP = "Print the selected job graph (mermaid, dot or json; default mermaid) and exit"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cidag", "CI jobs as test items (pytest-cidag)")
    group.addoption("--cidag-run-dir", metavar="DIR", default=None, help=RUN_DIR_HELP)
    group.addoption("--cidag-kill-grace", metavar="SECONDS", type=float, default=None, help=KILL_GRACE_HELP)
    group.addoption("--cidag-no-deps", action="store_true", default=False, help=NO_DEPS_HELP)
    group.addoption("--cidag-first", metavar="JOB[,JOB...]", action="append", default=[], help=FIRST_HELP)
    group.addoption("--cidag-testcases", metavar="EXPR", default=None, help=TESTCASES_HELP)
    group.addoption(
        "--cidag-graph",
        metavar="FORMAT",
        nargs="?",
        const="mermaid",
        default=None,
        choices=GRAPH_FORMATS,
        help=GRAPH_HELP,
    )
    parser.addini("cidag_paths", PATHS_HELP, type="args", default=["cijobs"])
    parser.addini("cidag_run_dir", RUN_DIR_HELP, default="")
    parser.addini("cidag_kill_grace", KILL_GRACE_HELP, default=str(DEFAULT_KILL_GRACE))
    parser.addini("cidag_tail_lines", TAIL_HELP, default="15")
    parser.addini("cidag_report_limit", REPORT_LIMIT_HELP, default=str(1024 * 1024))
    parser.addini("cidag_keep_runs", KEEP_RUNS_HELP, default="20")


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
    if number < minimum:
        raise pytest.UsageError(f"{name}: {value!r} {where} must be at least {minimum:g}")
    return number


def resolve_settings(config: pytest.Config) -> Settings:
    rootpath = config.rootpath
    workerinput = getattr(config, "workerinput", None)
    run_dir_arg = config.getoption("cidag_run_dir") or config.getini("cidag_run_dir")
    previous = latest_run(rootpath)
    if workerinput is not None and "cidag_run_dir" in workerinput:
        run_dir = Path(workerinput["cidag_run_dir"])
        default = bool(workerinput["cidag_default_run_dir"])
        previous = Path(workerinput["cidag_previous_run_dir"]) if workerinput["cidag_previous_run_dir"] else None
    elif run_dir_arg:
        run_dir = (config.invocation_params.dir / run_dir_arg).resolve()
        default = False
    else:
        run_dir = rootpath / RUNS_DIR / new_run_name(rootpath / RUNS_DIR)
        default = True
    return Settings(
        job_paths=tuple((rootpath / p).resolve() for p in config.getini("cidag_paths")),
        run_dir=run_dir,
        default_run_dir=default,
        kill_grace=_number(config, "cidag_kill_grace", float, 0),
        tail_lines=_number(config, "cidag_tail_lines", int, 0),
        report_limit=_number(config, "cidag_report_limit", int, 1024),
        keep_runs=_number(config, "cidag_keep_runs", int, 0),
        tee=config.getoption("capture") == "no",
        previous_run_dir=previous,
        testcases=config.getoption("cidag_testcases"),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    restore = config.stash.get(RESTORE_SIGNALS_KEY, None)
    if restore is not None:
        restore()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: the selection plugin registered here must come after pytest's LFPlugin/NFPlugin
    # (and other plugins' tryfirst wrappers), so its collection wrapper is the outermost one.
    settings = resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    # SIGTERM and SIGHUP wind pytest down as Ctrl-C does, so running jobs' trees are killed.
    config.stash[RESTORE_SIGNALS_KEY] = signals.wind_down()
    is_worker = hasattr(config, "workerinput")
    run = RunGraph(job_index=scan_job_dirs(config, settings.job_paths))
    config.stash[RUN_KEY] = run
    dependency = DependencyBridge(config, run.job_index)
    recorder = OutcomeRecorder(run, dependency, is_worker=is_worker)
    config.stash[OUTCOMES_KEY] = recorder
    persistence = CachePersistence(config, run, recorder)
    selection = SelectionPlugin(config, run, dependency, persistence)
    for name, plugin in (
        ("cidag-outcomes", recorder),
        ("cidag-cache", persistence),
        ("cidag-selection", selection),
    ):
        config.pluginmanager.register(plugin, name)
    if run.job_index:
        # pytest's --lf keeps only the failed tests of a file at collection, so a passed test
        # that a job needs would be missing from the graph. Collect whole files; LFPlugin
        # still deselects what passed, and the selection pulls needs back in.
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

            config.pluginmanager.register(ControllerSide(config, persistence), "cidag-controller")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.option.cidag_graph and not config.option.help:
        return int(internals.wrap_session(config, graph_main))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    # A plain string attribute travels with the report from xdist workers to the controller.
    if isinstance(item, JobItem) and call.excinfo is not None and isinstance(call.excinfo.value, JobFailed):
        report.cidag_status = Status(call.excinfo.value.status).value
    return report


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> JobFile | None:
    config = parent.config
    settings: Settings = config.stash[SETTINGS_KEY]
    job_dir = next((p for p in settings.job_paths if file_path.is_relative_to(p)), None)
    in_job_dir = job_dir is not None and not in_helper_dir(file_path, job_dir)
    if not (in_job_dir or parent.session.isinitpath(file_path)):
        return None
    if not is_job_file(file_path, config):
        return None
    if not in_job_dir and file_path.suffix == ".py":
        return None  # an explicitly named Python file is pytest's, not ours
    return JobFile.for_path(parent, file_path)


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
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
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    return True if isinstance(item, JobItem) else None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    settings: Settings = config.stash[SETTINGS_KEY]
    if settings.run_dir.is_dir() and any(settings.run_dir.glob("*.log")):
        terminalreporter.write_line(f"cidag: job logs in {shown_path(settings.run_dir, config)}")
