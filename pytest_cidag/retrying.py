"""Retries: how often a failed job is run again, what each attempt leaves, and flaky jobs.

A job's attempts all happen inside its one ``runtest`` (:meth:`pytest_cidag.items.JobItem.runtest`):
pytest, xdist's scheduler, ``-x`` and the dependents see one result, its last attempt's,
at every ``-n``. Here is what decides the number of retries (the block, then
pytest-rerunfailures' settings and ``--cidag-retries``: :func:`retry_plan`), the record of
each attempt that travels on the call report (:class:`Attempt`), the terminal's report of
flaky jobs (:class:`FlakyReport`), and what keeps pytest-rerunfailures from rerunning a
job's whole protocol itself (:class:`RerunfailuresBridge`). README "Retries" tells the rules.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_cidag import internals
from pytest_cidag.core.jobspec import MAX_RETRIES
from pytest_cidag.keys import ATTEMPTS_KEY

if TYPE_CHECKING:
    from pytest_cidag.core.runner import JobResult
    from pytest_cidag.core.settings import Settings
    from pytest_cidag.items import JobItem

#: A report's cidag_status for a job that passed after a failed attempt (a pass: outcomes
#: see "passed"), and the terminal's category for it.
FLAKY = "flaky"
#: The progress letter of a flaky job: lower case, as pytest's other outcomes that do not
#: fail a run (s, x) are, and the letter ``-r`` asks for failures with (``-rf``, the default).
FLAKY_LETTER = "f"
#: pytest-rerunfailures' plugin name (its ``pytest11`` entry point).
RERUNFAILURES = "rerunfailures"


class RetryError(Exception):
    """A retry setting that cannot be used for a job; the job fails with this message."""


@dataclass(frozen=True)
class RetryPlan:
    """How often a job is run again after a failed or timed-out attempt, and the wait before each."""

    retries: int
    delay: float
    source: str  # where ``retries`` came from, as a user wrote it

    @property
    def attempts(self) -> int:
        return self.retries + 1


def retries_setting(config: pytest.Config) -> int | None:
    """``--cidag-retries`` (else ini ``cidag_retries``); None when neither is given."""
    value = config.getoption("cidag_retries")
    where = "from --cidag-retries"
    if value is None:
        value, where = config.getini("cidag_retries"), "from ini cidag_retries"
        if not str(value).strip():
            return None
    try:
        retries = int(value)
    except (TypeError, ValueError):
        retries = -1
    if not 0 <= retries <= MAX_RETRIES:
        raise pytest.UsageError(f"cidag_retries: {value!r} {where} must be a whole number from 0 to {MAX_RETRIES}")
    return retries


def retry_plan(item: JobItem, settings: Settings) -> RetryPlan:
    """The job's retries, first found of: its block's ``retries``; pytest-rerunfailures'
    ``--force-reruns``, then its ``flaky`` marker's ``reruns``; ``--cidag-retries`` (or its
    ini); pytest-rerunfailures' ``--reruns`` (or its ini); none. The wait: the block's
    ``retry_delay``, else the ``flaky`` marker's ``reruns_delay``, else ``--reruns-delay``
    (or its ini), else none. pytest-rerunfailures' settings count only where it is installed."""
    spec = item.spec
    config = item.config
    theirs = rerunfailures_applies(item)
    marker = item.get_closest_marker("flaky") if theirs else None
    force = config.getoption("force_reruns", None) if theirs else None
    if spec.retries is not None:
        retries, source = spec.retries, "retries in its block"
    elif force is not None:
        retries, source = _count(force, "--force-reruns"), "--force-reruns"
    elif marker is not None:
        value = marker.kwargs.get("reruns", marker.args[0] if marker.args else 1)
        retries, source = _count(value, "the flaky marker's reruns"), "its flaky marker"
    elif settings.retries is not None:
        retries, source = settings.retries, "--cidag-retries"
    elif theirs and (reruns := _ini_or_option(config, "reruns", int)) is not None:
        retries, source = _count(reruns, "--reruns"), "--reruns"
    else:
        retries, source = 0, "none"
    if spec.retry_delay is not None:
        delay = spec.retry_delay
    elif marker is not None:
        value = marker.kwargs.get("reruns_delay", marker.args[1] if len(marker.args) > 1 else 0)
        delay = _delay(value, "the flaky marker's reruns_delay")
    elif theirs:
        delay = _delay(_ini_or_option(config, "reruns_delay", float) or 0, "--reruns-delay")
    else:
        delay = 0.0
    return RetryPlan(retries, delay, source)


def rerunfailures_applies(item: pytest.Item) -> bool:
    """pytest-rerunfailures is installed and ``--rerun-exclude-path`` leaves ``item`` to it."""
    config = item.config
    if not config.pluginmanager.hasplugin(RERUNFAILURES):
        return False
    excluded = config.getoption("rerun_exclude_path", None) or []
    return not any(item.path.is_relative_to(config.rootpath / path) for path in excluded)


def asks_for_reruns(item: pytest.Item) -> bool:
    """Whether pytest-rerunfailures would run ``item``'s protocol itself: one of its settings
    is given (``--force-reruns``, the ``flaky`` marker, ``--reruns`` or its ini)."""
    config = item.config
    return rerunfailures_applies(item) and (
        config.getoption("force_reruns", None) is not None
        or item.get_closest_marker("flaky") is not None
        or _ini_or_option(config, "reruns", int) is not None
    )


def _ini_or_option(config: pytest.Config, name: str, kind: type[int] | type[float]) -> Any:
    """pytest-rerunfailures' option, else its ini value, read as it reads them (an ini value
    that is not a number counts as not given)."""
    value = config.getoption(name, None)
    if value is not None:
        return value
    try:
        return kind(config.getini(name))
    except (TypeError, ValueError):
        return None


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetryError(f"{where} must be a whole number of retries, got {value!r}")
    if value > MAX_RETRIES:
        # One warning for all jobs (pytest's summary groups equal messages).
        warnings.warn(
            pytest.PytestWarning(f"cidag: {where} {value} is more than a job is retried: jobs get {MAX_RETRIES}"),
            stacklevel=1,
        )
        return MAX_RETRIES
    return max(value, 0)  # pytest-rerunfailures reruns nothing for a negative count either


def _delay(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RetryError(f"{where} must be a number of seconds, at least 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Attempt:
    """One run of a job's process tree. ``result.log_path`` is where its log is now (an
    earlier attempt's log is renamed once the next attempt begins)."""

    number: int  # 1-based
    result: JobResult
    outcome: str  # passed, failed, timeout, skipped (exit 77), cancelled
    headline: str  # a failed attempt's headline ("exit code 1"), else ""

    def to_json(self) -> dict[str, Any]:
        """As the run record holds it (docs/run-record.md, "An attempt")."""
        result = self.result
        return {
            "number": self.number,
            "start": result.started,
            "end": result.ended,
            "outcome": self.outcome,
            "exit_code": result.returncode if result.returncode >= 0 else None,
            "signal": result.signal_name,
            "log": result.log_path.name,
        }


def attempt_fields(item: pytest.Item) -> dict[str, Any]:
    """What the call report's ``cidag_run`` says of the job's attempts: the first one's
    start (the job's start), each attempt, and the retries it had."""
    attempts = item.stash.get(ATTEMPTS_KEY, None)
    if not attempts:
        return {}
    return {"start": attempts[0].result.started, "attempts": [a.to_json() for a in attempts]}


def is_flaky(item: pytest.Item) -> bool:
    """Whether the job passed on a later attempt (earlier attempts are failed ones)."""
    attempts = item.stash.get(ATTEMPTS_KEY, None) or []
    return len(attempts) > 1 and attempts[-1].outcome == "passed"


def describe(attempt: dict[str, Any]) -> str:
    """``exit code 1`` / ``timed out`` / ``killed by SIGKILL`` for an attempt's record."""
    if attempt["outcome"] == "timeout":
        return "timed out"
    if attempt["signal"]:
        return f"killed by {attempt['signal']}"
    return f"exit code {attempt['exit_code']}"


class FlakyReport:
    """A job that passed after failing: ``f`` / ``FLAKY`` in the progress, ``N flaky`` in
    the summary line (a pass: the run does not fail), and a "flaky jobs" section that names
    each failed attempt and its log whenever ``-r`` shows failures or passes (``f``, the
    default, ``p``, ``-ra``, ``-rA``): pytest's own short summary lists no other category."""

    @pytest.hookimpl
    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> tuple[str, str, Any] | None:
        if report.when == "call" and report.passed and getattr(report, "cidag_status", None) == FLAKY:
            return FLAKY, FLAKY_LETTER, ("FLAKY", {"yellow": True})
        return None

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        reports = terminalreporter.stats.get(FLAKY, [])
        if not reports or not any(char in terminalreporter.reportchars for char in "fpP"):
            return
        terminalreporter.write_sep("=", "flaky jobs", yellow=True, bold=True)
        for report in reports:
            attempts = json.loads(getattr(report, "cidag_run", None) or "{}").get("attempts", [])
            failed = ", ".join(f"attempt {a['number']}: {describe(a)} ({a['log']})" for a in attempts[:-1])
            terminalreporter.write_line(f"FLAKY {report.nodeid} - passed on attempt {len(attempts)}; {failed}")


class RerunfailuresBridge:
    """Registered where pytest-rerunfailures is installed: a job's retries are its own
    (:func:`retry_plan` reads pytest-rerunfailures' settings for it), so pytest-rerunfailures
    must not run a failed job's protocol again (at ``-n 0`` it would, overwriting the job's
    log; an xdist worker runs a job's protocol itself, which it never sees)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        # tryfirst: ahead of pytest-rerunfailures' impl, with pytest's own protocol. On an
        # xdist worker the worker's tryfirst impl, registered later, is called before this one.
        from pytest_cidag.items import JobItem

        if not isinstance(item, JobItem) or not asks_for_reruns(item):
            return None  # its impl would not run it again: every impl keeps its say
        internals.run_protocol(item, nextitem)
        return True
