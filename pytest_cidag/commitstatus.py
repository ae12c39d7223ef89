"""``--cidag-status``: a GitHub commit status per job, and one for the run, on the commit
under test.

Imported and registered by :func:`pytest_cidag.session.activate` only in a run given
``--cidag-status``, and only in the process that sees every report (the xdist controller,
or the only pytest process): a run without the option imports none of this, nor urllib.
Settings are resolved (and bad ones refused with a ``UsageError``) when the plugin is made,
in ``pytest_configure``, before any job runs. Posting is :mod:`pytest_cidag.core.ghstatus`'s
sender thread: a hook only queues a status.
"""

from __future__ import annotations

import collections
import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core import ghstatus
from pytest_cidag.core.ghstatus import CommitStatus, Sender, State, Target
from pytest_cidag.core.jobspec import LOG_SUFFIX
from pytest_cidag.core.record import git
from pytest_cidag.core.settings import Settings
from pytest_cidag.core.status import Status
from pytest_cidag.keys import OUTCOMES_KEY, RUN_KEY
from pytest_cidag.session import CACHED, CANCELLED, _number

DEFAULT_TOKEN_VAR = "GITHUB_TOKEN"
#: What a target URL template may name; each is URL-quoted.
PLACEHOLDERS = ("job", "log", "run", "run_dir", "repo", "sha")
#: A node's status -> its outcome's name in :data:`ghstatus.STATES` (refined by the call
#: report's ``cidag_status``: cached, cancelled).
OUTCOMES = {
    Status.PASSED: "passed",
    Status.FAILED: "failed",
    Status.TIMEOUT: "timeout",
    Status.ERRORED: "error",
    Status.CRASHED: "crashed",
    Status.SKIPPED: "skipped",
    Status.BLOCKED: "blocked",
}


@dataclass(frozen=True)
class StatusSettings:
    """``--cidag-status``'s settings, resolved once."""

    target: Target
    token: str = field(repr=False)  # never shown
    context: str  # the run's context; each job's is "<context>/<job id>"
    url_template: str | None  # target URL, with PLACEHOLDERS to fill
    timeout: float  # seconds to connect, and for each read, of one request
    wait: float  # seconds the run waits at its end for statuses still to be sent
    run_dir: Path
    rootpath: Path

    def target_url(self, job: str = "", log: str = "") -> str | None:
        if self.url_template is None:
            return None
        return self.url_template.format(**self._values(job, log))

    def _values(self, job: str, log: str) -> dict[str, str]:
        try:
            run_dir = self.run_dir.relative_to(self.rootpath).as_posix()
        except ValueError:
            run_dir = self.run_dir.name
        quote = urllib.parse.quote
        return {
            "job": quote(job, safe=""),
            "log": quote(log, safe=""),
            "run": quote(self.run_dir.name, safe=""),
            "run_dir": quote(run_dir, safe="/"),
            "repo": quote(self.target.repo, safe="/"),
            "sha": self.target.sha,
        }


def _setting(config: pytest.Config, name: str) -> tuple[str, str]:
    """The option's value and where it came from, else the ini value's (``""`` when unset)."""
    value = config.getoption(name, None)
    if value:
        return str(value), f"from --{name.replace('_', '-')}"
    return str(config.getini(name) or ""), f"from ini {name}"


def _first(config: pytest.Config, name: str, variable: str) -> tuple[str, str]:
    """A setting by precedence: the command line, then the environment ``variable`` (GitHub
    Actions sets it), then the ini file; ``("", "")`` when none says."""
    option = config.getoption(name, None)
    if option:
        return str(option), f"from --{name.replace('_', '-')}"
    if os.environ.get(variable):
        return os.environ[variable], f"from {variable}"
    ini = str(config.getini(name) or "")
    return (ini, f"from ini {name}") if ini else ("", "")


def _fail(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"cidag: --cidag-status: {message}")


def _repository(config: pytest.Config, origin: ghstatus.Remote | None, origin_problem: str) -> str:
    repo, source = _first(config, "cidag_status_repo", "GITHUB_REPOSITORY")
    if repo:
        if not ghstatus.is_repo_name(repo):
            raise _fail(f"{repo!r} {source} is not a repository name: owner/name expected (as in acme/widgets)")
        return repo
    if origin is not None:
        return origin.repo
    raise _fail(
        f"no repository to post statuses to: GITHUB_REPOSITORY is not set and the git remote 'origin' "
        f"{origin_problem}; name one with --cidag-status-repo owner/name (or ini cidag_status_repo)"
    )


def _api_url(config: pytest.Config, origin: ghstatus.Remote | None) -> str:
    url, source = _first(config, "cidag_status_api_url", "GITHUB_API_URL")
    if not url and origin is not None:
        url, source = origin.api_url, "from the origin remote's host"
    elif not url:
        url, source = ghstatus.DEFAULT_API_URL, "the default"
    problem = ghstatus.api_url_problem(url)
    if problem:
        raise _fail(f"API URL {url!r} {source}: {problem}")
    return url.rstrip("/")


def _commit(config: pytest.Config) -> str:
    given = config.getoption("cidag_status_sha")
    head = ghstatus.pull_request_head(os.environ.get("GITHUB_EVENT_NAME"), os.environ.get("GITHUB_EVENT_PATH"))
    for value, source in (
        (given, "from --cidag-status-sha"),
        (head, "the pull request's head, from GITHUB_EVENT_PATH"),
        (os.environ.get("GITHUB_SHA"), "from GITHUB_SHA"),
    ):
        if value:
            if not ghstatus.SHA_RE.fullmatch(value.lower()):
                raise _fail(f"{value!r} {source} is not a full commit id (40 hexadecimal digits)")
            return str(value).lower()
    sha, why = git(config.rootpath, "rev-parse", "--verify", "HEAD^{commit}")
    if sha is None or not ghstatus.SHA_RE.fullmatch(sha):
        raise _fail(
            f"no commit to post statuses on: GITHUB_SHA is not set and the rootdir has no commit checked out "
            f"({why or sha}); give one with --cidag-status-sha"
        )
    return sha


def _token(config: pytest.Config) -> str:
    var, where = _setting(config, "cidag_status_token_var")
    if not var:
        var, where = DEFAULT_TOKEN_VAR, "the default"
    value = os.environ.get(var)
    token = (value or "").strip()  # a line read from a file keeps its newline
    if not token:
        state = "not set" if value is None else "empty"
        raise _fail(
            f"no token: the environment variable {var} ({where}) is {state}; set it to a token that may write "
            "commit statuses, or name the variable holding one with --cidag-status-token-var"
        )
    if any(c.isspace() or not c.isprintable() for c in token):  # said without showing it
        raise _fail(f"the token in {var} ({where}) has a space or a control character in it, which no token has")
    return token


def _url_template(config: pytest.Config) -> str | None:
    template, where = _setting(config, "cidag_status_url")
    if not template:
        env = os.environ
        parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
        if all(parts):  # in GitHub Actions: the run's page
            return "{}/{}/actions/runs/{}".format(*parts).replace("{", "{{").replace("}", "}}")
        return None
    known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    try:
        url = template.format(**dict.fromkeys(PLACEHOLDERS, "x"))
    except KeyError as exc:
        raise _fail(f"target URL {template!r} {where} names {{{exc.args[0]}}}; known: {known}") from None
    except (IndexError, ValueError) as exc:
        raise _fail(f"target URL {template!r} {where}: {exc} (known placeholders: {known})") from None
    if not url.startswith(("https://", "http://")):
        raise _fail(f"target URL {template!r} {where} must start with https:// or http://")
    return template


def resolve(config: pytest.Config, settings: Settings) -> StatusSettings:
    """``--cidag-status``'s settings, or a ``UsageError`` naming what is wrong and where it
    came from. Precedence: the command line, then GitHub Actions' variables, then the ini
    file, then the git checkout (the ``origin`` remote, ``HEAD``)."""
    needs_origin = (
        not _first(config, "cidag_status_repo", "GITHUB_REPOSITORY")[0]
        or not _first(config, "cidag_status_api_url", "GITHUB_API_URL")[0]
    )
    origin, origin_problem = None, "is not set"
    if needs_origin:
        url, why = git(config.rootpath, "remote", "get-url", "origin")
        if url is None:
            origin_problem = f"could not be read ({why})"
        else:
            origin = ghstatus.parse_remote(url)
            origin_problem = f"({ghstatus.without_credentials(url)}) names no GitHub repository"
    repo = _repository(config, origin, origin_problem)
    api_url = _api_url(config, origin)
    sha = _commit(config)
    template = _url_template(config)
    context, _ = _setting(config, "cidag_status_context")
    token = _token(config)
    return StatusSettings(
        target=Target(api_url, repo, sha),
        token=token,
        context=context or "cidag",
        url_template=template,
        timeout=_number(config, "cidag_status_timeout", float, 0.1),
        wait=_number(config, "cidag_status_wait", float, 0),
        run_dir=settings.run_dir,
        rootpath=config.rootpath,
    )


@dataclass
class Seen:
    """What a job's reports said, as they arrived."""

    duration: float = 0.0  # its phases' durations, summed
    run: dict[str, Any] = field(default_factory=dict)  # its process (the call report's cidag_run)
    status: str | None = None  # the call report's cidag_status
    reason: str | None = None  # a skip's reason
    failed_in: str | None = None  # the phase that errored, when one did


class CommitStatusPlugin:
    """Queues each job's status as its reports arrive: ``pending`` for every job at the
    run's first report, each job's final state at its teardown report, and at the session's
    end ``error`` "cancelled" for every job still without one, then the run's own status.

    Attributes:
        jobs: node id -> job id, of the jobs the run set out to run (filled at the first report).
        seen: node id -> :class:`Seen`.
        ended: node id -> the outcome name (a key of :data:`ghstatus.STATES`) its final
            status was queued with.
        started: node ids whose item protocol began.
        tally: what the sender made of them (at the session's end).
    """

    def __init__(self, config: pytest.Config, status: StatusSettings) -> None:
        self.config = config
        self.settings = status
        try:
            version = metadata.version("pytest-cidag")
        except metadata.PackageNotFoundError:
            version = "0"
        self.sender = Sender(status.target, status.token, timeout=status.timeout, user_agent=f"pytest-cidag/{version}")
        self.jobs: dict[str, str] = {}
        self.seen: dict[str, Seen] = {}
        self.ended: dict[str, str] = {}
        self.started: set[str] = set()
        self.begun: float | None = None
        self.interrupted: str | None = None
        self.tally: ghstatus.Tally | None = None

    def _submit(self, context: str, state: State, description: str, job: str = "", *, log: bool = True) -> None:
        """Queue a status; its target URL names the job's log unless it has none (never ran)."""
        log_name = f"{job}{LOG_SUFFIX}" if job and log else ""
        url = self.settings.target_url(job, log_name)
        self.sender.submit(CommitStatus(context, state, description, url))

    def _job_context(self, job: str) -> str:
        return f"{self.settings.context}/{job}"

    def _begin(self) -> None:
        self.begun = time.time()
        run = self.config.stash[RUN_KEY]
        graph = run.graph
        if graph is None:
            return
        for key in run.run_keys:
            node = graph.nodes.get(key)
            if node is not None and node.is_job:
                self.jobs[key] = node.label
        for job in self.jobs.values():
            self._submit(self._job_context(job), State.PENDING, "queued", job)
        if self.jobs:
            n = len(self.jobs)
            self._submit(self.settings.context, State.PENDING, f"running {n} job{'s' if n != 1 else ''}")

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.begun is None:
            self._begin()
        self.started.add(nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # trylast: after OutcomeRecorder has taken this report into the job's outcome
        if report.nodeid not in self.jobs:
            return
        seen = self.seen.setdefault(report.nodeid, Seen())
        seen.duration += float(report.duration or 0)
        when = str(report.when)
        if when == "call" and getattr(report, "cidag_run", None):
            seen.run = json.loads(report.cidag_run)
        status = getattr(report, "cidag_status", None)
        if status:
            seen.status = status
        if report.skipped and isinstance(report.longrepr, tuple):
            seen.reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if report.failed and when in ("setup", "teardown"):
            seen.failed_in = when
        if when == "teardown" or (report.failed and when not in ("setup", "call")):  # "???": its worker died
            self._end(report.nodeid, seen)

    def _end(self, key: str, seen: Seen) -> None:
        outcome = self.config.stash[OUTCOMES_KEY].outcomes.get(key)
        if outcome is None or outcome.status == Status.PENDING:
            return
        name = OUTCOMES[outcome.status]
        reason = seen.reason
        if name == "passed" and seen.status == CACHED:
            name = "cached"
        elif name == "skipped" and seen.status == CANCELLED:
            name, reason = "cancelled", (reason or "").removeprefix("cancelled: ")
        elif name == "blocked":
            reason = outcome.reason or reason
        elif name == "error":
            reason = f"its {seen.failed_in} failed" if seen.failed_in else None
        run = seen.run
        duration = run["end"] - run["start"] if run.get("end") and run.get("start") else seen.duration
        state, text = ghstatus.job_status(
            name,
            duration=duration if name not in ("blocked", "skipped", "cached") else None,
            reason=reason,
            returncode=run.get("returncode"),
            signal=run.get("signal"),
        )
        self.ended[key] = name
        job = self.jobs[key]
        self._submit(self._job_context(job), state, text, job, log=name != "blocked")

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = str(excinfo.value) or "SIGINT"

    def _stop_reason(self, session: pytest.Session) -> str:
        if self.interrupted is not None:
            return f"interrupted: {self.interrupted}"
        controller = self.config.pluginmanager.get_plugin("cidag-controller")
        stopped = getattr(getattr(controller, "scheduler", None), "stopped", None)
        return str(stopped or session.shouldfail or session.shouldstop or "the run ended first")

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.begun is None or not self.jobs:
            self.tally = self.sender.finish(0)
            return
        why = self._stop_reason(session)
        counts: collections.Counter[str] = collections.Counter()
        for key, job in self.jobs.items():
            if key not in self.ended:
                when = "still running at the end" if key in self.started else "not started"
                text = f"cancelled: {when} ({why})"
                self._submit(self._job_context(job), State.ERROR, text, job, log=key in self.started)
                counts["cancelled"] += 1
        counts.update(self.ended.values())
        state, text = ghstatus.summary_status(counts, int(exitstatus), time.time() - self.begun)
        self._submit(self.settings.context, state, text)
        self.tally = self.sender.finish(self.settings.wait)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tally = self.tally
        if tally is None:
            return
        where = self.settings.target.shown()
        if not tally.posted and not tally.failed:
            terminalreporter.write_line(f"cidag: commit statuses on {where}: none (no job ran)")
            return
        line = ghstatus.redact(f"cidag: commit statuses on {where}: {tally.line()}", self.settings.token)
        terminalreporter.write_line(line, yellow=bool(tally.failed))
