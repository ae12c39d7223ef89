"""Outcomes of the graph's nodes, from their reports, and why a dependent is skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from pytest_cidag import internals
from pytest_cidag.core.status import PHRASES, Status
from pytest_cidag.items import JobItem

if TYPE_CHECKING:
    from pytest_cidag.dependency import DependencyBridge
    from pytest_cidag.state import RunGraph


@dataclass
class Outcome:
    """What happened to a graph node in this run. ``root`` names the original blocker."""

    status: Status = Status.PENDING
    reason: str = ""  # for a blocked node: the full skip reason
    root: str = ""  # for a blocked node: "upstream job 'x' failed"


class OutcomeRecorder:
    """Records each node's outcome as its reports arrive, and gates a node's setup.

    Attributes:
        outcomes: node id -> :class:`Outcome`, filled from reports as they arrive.
        blocked: node id -> the skip reason, for nodes skipped because of an upstream node.
        durations: node id -> its call phase's duration in this run (seconds).
    """

    def __init__(self, run: RunGraph, dependency: DependencyBridge, *, is_worker: bool) -> None:
        self.run = run
        self.dependency = dependency
        self.is_worker = is_worker
        self.outcomes: dict[str, Outcome] = {}
        self.blocked: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    def status(self, key: str) -> Status | None:
        outcome = self.outcomes.get(key)
        return None if outcome is None else outcome.status

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # tryfirst: before pytest-dependency's check, so a blocked node is skipped with the
        # blocker's name, and a Python test whose needed jobs passed is not skipped by it.
        graph = self.run.graph
        if graph is None or item.nodeid not in graph.nodes:
            return
        # On an xdist worker the controller says which nodes are blocked, and why (it
        # alone sees every outcome); it sends any other node only once its needs passed.
        reason = self.blocked.get(item.nodeid) if self.is_worker else self.block_reason(item.nodeid)
        if reason is not None:
            raise internals.skip_at_item(reason)
        if not isinstance(item, JobItem):
            self.dependency.satisfy(item)

    def block_reason(self, key: str) -> str | None:
        """Why ``key`` must not run (recorded as blocked), or None when all it needs passed."""
        graph = self.run.graph
        assert graph is not None
        in_run = self.run.in_run()
        # --cidag-no-deps: a need outside the selection counts as satisfied
        needs = [n for n in graph.needs[key] if n in in_run]

        def status(need: str) -> Status:
            return self.status(need) or Status.PENDING

        # Name a need that ended without passing before one that has not ended yet (under
        # xdist a need may still be running when another need's failure blocks this node).
        blocker = next((n for n in needs if status(n) not in (Status.PASSED, Status.PENDING)), None)
        if blocker is None:
            blocker = next((n for n in needs if status(n) != Status.PASSED), None)
        if blocker is None:
            return None
        reason = self._reason(blocker)
        self.blocked[key] = reason
        return reason

    def block_ahead(self, key: str) -> None:
        """``key`` will be reported skipped as blocked (under xdist, by the worker it is sent
        to): record its outcome now, so that what it blocks in turn names the root."""
        reason = self.block_reason(key)
        assert reason is not None, f"{key} is not blocked"
        self.outcomes[key] = Outcome(Status.BLOCKED, reason, reason.split(" (through ", 1)[0])

    def _reason(self, need: str) -> str:
        graph = self.run.graph
        assert graph is not None
        node = graph.nodes[need]
        outcome = self.outcomes.get(need)
        if outcome is None or outcome.status == Status.PENDING:
            return f"upstream {node.kind} '{node.label}' did not run"
        if outcome.status == Status.BLOCKED:
            return f"{outcome.root} (through '{node.label}')"
        return f"upstream {node.kind} '{node.label}' {PHRASES.get(outcome.status, outcome.status)}"

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        graph = self.run.graph
        if graph is None or report.nodeid not in graph.nodes:
            return
        outcome = self.outcomes.setdefault(report.nodeid, Outcome())
        when = str(report.when)  # xdist reports a worker crash with when="???"
        if when == "setup":
            if report.failed:
                outcome.status = Status.ERRORED
            elif report.skipped:
                if report.nodeid in self.blocked:
                    reason = self.blocked[report.nodeid]
                    outcome.status, outcome.reason = Status.BLOCKED, reason
                    outcome.root = reason.split(" (through ", 1)[0]
                else:
                    outcome.status = Status.SKIPPED
        elif when == "call":
            self.durations[report.nodeid] = report.duration
            if report.failed:
                outcome.status = Status(getattr(report, "cidag_status", None) or Status.FAILED)
            elif report.skipped:
                outcome.status = Status.SKIPPED
            else:
                outcome.status = Status.PASSED
        elif when == "teardown":
            if report.failed and outcome.status in (Status.PASSED, Status.PENDING):
                outcome.status = Status.ERRORED
        elif report.failed:  # xdist's report for an item whose worker died
            outcome.status = Status.CRASHED
