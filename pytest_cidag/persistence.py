"""What a run keeps in pytest's cache for the next: job durations, and what --lf reruns."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_cidag.core.status import FAILURES

if TYPE_CHECKING:
    from pytest_cidag.outcomes import OutcomeRecorder
    from pytest_cidag.state import RunGraph

BLOCKED_CACHE_KEY = "cidag/blocked"
DURATIONS_CACHE_KEY = "cidag/durations"
#: Jobs that were cache hits, or passed and were stored, in the last run: likely hits now.
LIKELY_HITS_CACHE_KEY = "cidag/likely-hits"
#: What the scheduler counts a likely hit as taking (seconds): a restore, not a run.
LIKELY_HIT_DURATION = 0.001


class CachePersistence:
    """Reads and writes ``cidag/durations`` and ``cidag/blocked`` in pytest's cache.

    Durations feed the scheduler's critical-path priority. ``cidag/blocked`` holds the nodes
    a failure held back (skipped because of it), so ``--lf`` reruns them with the failure.
    Written only by the process that sees every report (the controller, or a plain run).
    """

    def __init__(self, config: pytest.Config, run: RunGraph, recorder: OutcomeRecorder) -> None:
        self.config = config
        self.run = run
        self.recorder = recorder
        self.hits: set[str] = set()  # cache hits of this run: their duration is not a run's
        self.stored: set[str] = set()  # cacheable passes of this run

    def known_durations(self) -> dict[str, float]:
        """Durations (seconds) of earlier runs."""
        cache = getattr(self.config, "cache", None)
        data = cache.get(DURATIONS_CACHE_KEY, {}) if cache is not None else {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def planning_durations(self) -> dict[str, float]:
        """Durations for the critical path: a job that was a cache hit, or was stored, last
        time counts as ~0 s (it will likely be restored, not run)."""
        durations = self.known_durations()
        cache = getattr(self.config, "cache", None)
        for key in cache.get(LIKELY_HITS_CACHE_KEY, []) if cache is not None else []:
            durations[str(key)] = LIKELY_HIT_DURATION
        return durations

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or not report.passed:
            return
        status = getattr(report, "cidag_status", None)
        if status == "cached":
            self.hits.add(report.nodeid)
        elif status != "flaky" and json.loads(getattr(report, "cidag_cache", None) or "{}").get("state") == "miss":
            self.stored.add(report.nodeid)  # (kept unless its inputs changed while it ran; a flaky pass is not)

    def blocked_last_time(self) -> list[str]:
        """The nodes a failure held back in earlier runs (for ``--lf``)."""
        cache = getattr(self.config, "cache", None)
        return [str(k) for k in cache.get(BLOCKED_CACHE_KEY, [])] if cache is not None else []

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        graph = self.run.graph
        if cache is None or hasattr(self.config, "workerinput") or graph is None:
            return
        if self.config.getoption("collectonly") or self.config.getoption("cidag_graph"):
            return
        outcomes = self.recorder.outcomes
        kept = [k for k in self.blocked_last_time() if k not in outcomes]
        # What a failure held back, for --lf; not what a skipped job held back (a skip is not
        # a failure to rerun).
        # (One walk down from the failures: a walk up from each blocked node was quadratic
        # when an early failure blocked most of the run.)
        failed = {k for k, o in outcomes.items() if o.status in FAILURES}
        below_failures = graph.downstream(failed)
        held_back = {k for k in self.recorder.blocked if k in below_failures}
        cache.set(BLOCKED_CACHE_KEY, sorted({*kept, *held_back}))
        if self.recorder.durations:
            durations = self.known_durations()
            # a hit's duration is a restore's: the job's run time stays what it was
            durations.update({k: round(v, 4) for k, v in self.recorder.durations.items() if k not in self.hits})
            cache.set(DURATIONS_CACHE_KEY, durations)
        cache.set(LIKELY_HITS_CACHE_KEY, sorted(self.hits | self.stored))
