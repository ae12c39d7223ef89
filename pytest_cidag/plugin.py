"""pytest-cidag's entry point: its options, and whether this run may have jobs at all.

Installed, this module loads in every pytest process of the environment, next to suites
that have no jobs. It imports nothing of its own and registers nothing else unless the run
may contain jobs: a job directory (ini ``cidag_paths``) exists, a job file is named on the
command line, or a ``--cidag-*`` option is given. Only then does :mod:`pytest_cidag.session`
load. Any other run behaves as if the plugin were not installed (README: "Do no harm").
"""

from __future__ import annotations

from pathlib import Path

import pytest

PATHS_HELP = "Directories (relative to the rootdir) whose scripts are jobs (default: cijobs)"
RUN_DIR_HELP = "Directory for this run's job logs and outputs (default: .cidag/runs/<date>-<time>-<ms>-<pid>)"
KILL_GRACE_HELP = "Seconds between TERM and KILL when a job's process tree is killed (default: 2)"
TAIL_HELP = "Lines of a failed job's output shown in its failure report (default: 15)"
REPORT_LIMIT_HELP = "Bytes of a job's output attached to its report; more is cut in the middle (default: 1048576)"
KEEP_RUNS_HELP = "Run directories kept under .cidag/runs; older ones are removed (default: 20, 0 keeps all)"
NO_DEPS_HELP = "Run exactly the selected jobs; needs outside the selection count as satisfied"
FIRST_HELP = "Run these jobs (comma-separated) and what they need as early as the graph allows"
TESTCASES_HELP = "Passed to every job as CIDAG_TESTCASES, for jobs that narrow a test suite with it"
FIRST_TESTCASES_HELP = (
    "First run the selected jobs that declare testcases = true with CIDAG_TESTCASES=EXPR "
    "(items of their own, id NAME@first), then the whole selection as usual, in one run"
)
GRAPH_HELP = "Print the selected job graph (mermaid, dot or json; default mermaid) and exit"
CACHE_HELP = "Job cache: rw (read and write, the default), r, w or off"
CACHE_DIR_HELP = "Where cached job results are kept (default: .cidag/cache under the rootdir)"
CACHE_MAX_HELP = "Size cap of the job cache in bytes; least recently used entries go first (default: 2 GiB)"
RECORD_HELP = "Run record (run.json, trace.json) and critical-path line: on (the default) or off"
NEEDS_DIR_HELP = "With --cidag-no-deps: read the outputs of needs outside the run from DIR (default: the latest run)"
EXPORT_HELP = "Write the selected job graph as a CI workflow (github-actions) and exit"
EXPORT_FILE_HELP = "Where --cidag-export writes (default: .github/workflows/cidag.yml under the rootdir; - for stdout)"
EXPORT_CHECK_HELP = "With --cidag-export: write nothing, exit 1 when the file differs from what the export gives"
EXPORT_PYTHON_HELP = "Python version the exported workflow sets up (default: 3.12)"
EXPORT_INSTALL_HELP = "Install commands of the exported workflow, one per line (default: pip install pytest-cidag)"
EXPORT_RUNS_ON_HELP = "runs-on of the exported workflow's jobs (default: ubuntu-latest)"
REPORT_HELP = (
    "Write the timeline report (one HTML file) to FILE, an .html name (default: report.html in the run "
    "directory); off: none. Needs pytest-cidag[report]"
)
REPORT_INI_HELP = "Timeline report: off (the default), on (report.html in the run directory), or an .html file"
REPORT_GATES_HELP = "Draw a line in the timeline report where each of these jobs (comma-separated) ended"
GITHUB_HELP = (
    "GitHub Actions output (step summary, annotations, log groups): auto (on where GITHUB_ACTIONS=true, "
    "the default), on or off"
)
LIVE_HELP = "While jobs run: a status line on a terminal, 'still running' lines in a log: auto (the default) or off"
LIVE_INTERVAL_HELP = "Seconds a job runs before a 'still running' line names it, and between two (default: 60)"
WHY_HELP = "Say for each job (or these, comma-separated) why it was a cache hit or miss"
JUNIT_FORM_HELP = (
    "JUnit XML: jenkins (pytest's own, valid against Jenkins' schema; the default) or github "
    "(each job's testcase also gets file and line attributes, which GitHub annotation tools read)"
)
STATUS_HELP = "Post a GitHub commit status per job, and one for the run, on the commit under test"
STATUS_REPO_HELP = "Repository of --cidag-status, owner/name (default: GITHUB_REPOSITORY, else the origin remote's)"
STATUS_SHA_HELP = "Commit of --cidag-status (default: a pull request's head or GITHUB_SHA in GitHub Actions, else HEAD)"
STATUS_API_HELP = "GitHub API of --cidag-status (default: GITHUB_API_URL, else from the origin remote's host)"
STATUS_TOKEN_HELP = "Environment variable holding --cidag-status's token (default: GITHUB_TOKEN)"
STATUS_URL_HELP = "Target URL of each status; {job}, {log}, {run}, {run_dir}, {repo}, {sha} are filled in"
STATUS_CONTEXT_HELP = "Context of the run's status; each job's is CONTEXT/<job id> (default: cidag)"
STATUS_TIMEOUT_HELP = "Seconds to connect, and for each read, of one status request (default: 10)"
STATUS_WAIT_HELP = "Seconds the run waits at its end for statuses still to be sent (default: 5)"
RETRIES_HELP = (
    "Times a failed or timed-out job is run again when its block has no retries (0-10; default: "
    "pytest-rerunfailures' --reruns where it is installed, else 0)"
)
#: Kept here, not imported from core.runner/core.render: this module must stay cheap to load.
DEFAULT_KILL_GRACE = 2.0
GRAPH_FORMATS = ("mermaid", "dot", "json")
JUNIT_FORMS = ("jenkins", "github")  # pytest_cidag.core.junit.JunitForm


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cidag", "CI jobs as test items (pytest-cidag)")
    group.addoption("--cidag-run-dir", metavar="DIR", default=None, help=RUN_DIR_HELP)
    group.addoption("--cidag-kill-grace", metavar="SECONDS", type=float, default=None, help=KILL_GRACE_HELP)
    group.addoption("--cidag-no-deps", action="store_true", default=False, help=NO_DEPS_HELP)
    group.addoption("--cidag-first", metavar="JOB[,JOB...]", action="append", default=[], help=FIRST_HELP)
    group.addoption("--cidag-testcases", metavar="EXPR", default=None, help=TESTCASES_HELP)
    group.addoption("--cidag-first-testcases", metavar="EXPR", default=None, help=FIRST_TESTCASES_HELP)
    group.addoption(
        "--cidag-graph",
        metavar="FORMAT",
        nargs="?",
        const="mermaid",
        default=None,
        choices=GRAPH_FORMATS,
        help=GRAPH_HELP,
    )
    group.addoption("--cidag-cache", metavar="MODE", default=None, choices=("rw", "r", "w", "off"), help=CACHE_HELP)
    group.addoption("--cidag-cache-dir", metavar="DIR", default=None, help=CACHE_DIR_HELP)
    group.addoption("--cidag-record", metavar="MODE", default=None, choices=("on", "off"), help=RECORD_HELP)
    group.addoption("--cidag-needs-dir", metavar="DIR", default=None, help=NEEDS_DIR_HELP)
    group.addoption("--cidag-export", metavar="FORMAT", default=None, choices=("github-actions",), help=EXPORT_HELP)
    group.addoption("--cidag-export-file", metavar="PATH", default=None, help=EXPORT_FILE_HELP)
    group.addoption("--cidag-export-check", action="store_true", default=False, help=EXPORT_CHECK_HELP)
    parser.addini("cidag_export_python", EXPORT_PYTHON_HELP, default="3.12")
    parser.addini("cidag_export_install", EXPORT_INSTALL_HELP, type="linelist", default=[])
    parser.addini("cidag_export_runs_on", EXPORT_RUNS_ON_HELP, default="ubuntu-latest")
    group.addoption("--cidag-report", metavar="FILE", nargs="?", const="on", default=None, help=REPORT_HELP)
    group.addoption("--cidag-report-gates", metavar="JOB[,JOB...]", default=None, help=REPORT_GATES_HELP)
    group.addoption(
        "--cidag-github",
        metavar="MODE",
        nargs="?",
        const="on",
        default=None,
        choices=("auto", "on", "off"),
        help=GITHUB_HELP,
    )
    group.addoption("--cidag-live", metavar="MODE", default=None, choices=("auto", "off"), help=LIVE_HELP)
    group.addoption("--cidag-why", metavar="JOB[,JOB...]", nargs="?", const="", default=None, help=WHY_HELP)
    group.addoption("--cidag-junit-form", metavar="FORM", default=None, choices=JUNIT_FORMS, help=JUNIT_FORM_HELP)
    group.addoption("--cidag-retries", metavar="N", default=None, help=RETRIES_HELP)
    parser.addini("cidag_retries", RETRIES_HELP, default="")
    parser.addini("cidag_cache", CACHE_HELP, default="rw")
    parser.addini("cidag_record", RECORD_HELP, default="on")
    parser.addini("cidag_junit_form", JUNIT_FORM_HELP, default="jenkins")
    parser.addini("cidag_report", REPORT_INI_HELP, default="off")
    parser.addini("cidag_report_gates", REPORT_GATES_HELP, default="")
    parser.addini("cidag_github", GITHUB_HELP, default="auto")
    parser.addini("cidag_live", LIVE_HELP, default="auto")
    parser.addini("cidag_live_interval", LIVE_INTERVAL_HELP, default="60")
    parser.addini("cidag_cache_dir", CACHE_DIR_HELP, default="")
    parser.addini("cidag_cache_max_size", CACHE_MAX_HELP, default=str(2 * 1024**3))
    parser.addini("cidag_paths", PATHS_HELP, type="args", default=["cijobs"])
    parser.addini("cidag_run_dir", RUN_DIR_HELP, default="")
    parser.addini("cidag_kill_grace", KILL_GRACE_HELP, default=str(DEFAULT_KILL_GRACE))
    parser.addini("cidag_tail_lines", TAIL_HELP, default="15")
    parser.addini("cidag_report_limit", REPORT_LIMIT_HELP, default=str(1024 * 1024))
    parser.addini("cidag_keep_runs", KEEP_RUNS_HELP, default="20")
    _add_status_options(group, parser)


def _add_status_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """``--cidag-status`` and its settings (README "Commit statuses"). No ini twin for the
    switch (a project's ini would post from every developer's machine) nor for the commit."""
    group.addoption("--cidag-status", action="store_true", default=False, help=STATUS_HELP)
    group.addoption("--cidag-status-sha", metavar="SHA", default=None, help=STATUS_SHA_HELP)
    for name, metavar, help_text, default in (
        ("repo", "OWNER/NAME", STATUS_REPO_HELP, ""),
        ("api-url", "URL", STATUS_API_HELP, ""),
        ("token-var", "NAME", STATUS_TOKEN_HELP, ""),
        ("url", "TEMPLATE", STATUS_URL_HELP, ""),
        ("context", "CONTEXT", STATUS_CONTEXT_HELP, "cidag"),
        ("timeout", "SECONDS", STATUS_TIMEOUT_HELP, "10"),
        ("wait", "SECONDS", STATUS_WAIT_HELP, "5"),
    ):
        kind = float if metavar == "SECONDS" else str
        group.addoption(f"--cidag-status-{name}", metavar=metavar, type=kind, default=None, help=help_text)
        parser.addini(f"cidag_status_{name.replace('-', '_')}", help_text, default=default)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: the selection plugin registered by activate() must come after pytest's
    # LFPlugin/NFPlugin (and other plugins' tryfirst wrappers), so that its collection
    # wrapper is the outermost one.
    if may_have_jobs(config):
        from pytest_cidag.session import activate

        activate(config)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.option.cidag_export and not config.option.help:
        from pytest_cidag import internals
        from pytest_cidag.export import export_main

        if hasattr(config.option, "dist"):
            config.option.dist = "no"  # collected and written by this process
        return int(internals.wrap_session(config, export_main))
    if config.option.cidag_graph and not config.option.help:
        from pytest_cidag import internals
        from pytest_cidag.graphview import graph_main

        # The graph is printed by this process: no xdist workers (their start-up lines
        # would come before it, and `| dot` would read them).
        if hasattr(config.option, "dist"):
            config.option.dist = "no"

        return int(internals.wrap_session(config, graph_main))
    return None


def may_have_jobs(config: pytest.Config) -> bool:
    """Whether this run may contain jobs; cheap (a few stats), as it runs in every process."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return "cidag_run_dir" in workerinput  # an xdist worker does what its controller decided
    option = config.option
    if (
        option.cidag_graph
        or option.cidag_export
        or option.cidag_needs_dir
        or option.cidag_run_dir
        or option.cidag_first
        or option.cidag_no_deps
        or option.cidag_testcases is not None
        or option.cidag_first_testcases is not None
        or option.cidag_kill_grace is not None
        or option.cidag_cache is not None
        or option.cidag_cache_dir is not None
        or option.cidag_why is not None
        or option.cidag_record is not None
        or option.cidag_junit_form is not None
        or option.cidag_report is not None
        or option.cidag_report_gates is not None
        or option.cidag_status
        or option.cidag_live is not None
        or option.cidag_retries is not None
    ):
        return True
    rootpath = config.rootpath
    if any((rootpath / path).is_dir() for path in config.getini("cidag_paths")):
        return True
    here = config.invocation_params.dir
    return any(_is_job_file_arg(here / str(arg).split("::", 1)[0]) for arg in config.args)


def _is_job_file_arg(path: Path) -> bool:
    """A file named on the command line that is a job: ``*.sh``, or an executable
    non-Python file that starts with ``#!``."""
    if path.suffix == ".py" or not path.is_file():
        return False
    if path.suffix == ".sh":
        return True
    # Only for an argument that is some other file: a run of test modules and directories
    # loads nothing of the package's but this module.
    from pytest_cidag.core.discovery import executable_script

    return executable_script(path)
