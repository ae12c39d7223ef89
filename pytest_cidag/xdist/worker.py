"""The xdist worker's half: the tick item, the plan it sends, the abort messages it obeys.

See :mod:`pytest_cidag.xdist.controller` for the controller's half and why each piece exists.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Any

import pytest

from pytest_cidag import internals
from pytest_cidag.core import runner
from pytest_cidag.core.plan import node_to_data
from pytest_cidag.items import JobItem
from pytest_cidag.keys import OUTCOMES_KEY, RUN_KEY, SETTINGS_KEY
from pytest_cidag.state import RunGraph
from pytest_cidag.xdist import handoff

TICK_NAME = "cidag-tick"
#: Every job a worker starts carries ``CIDAG_WTAG_<worker token>=1``, so the controller can
#: kill what a crashed worker's jobs left behind (a name per worker keeps nested runs' tags).
WORKER_TAG_PREFIX = "CIDAG_WTAG_"
#: Why a worker's running jobs are killed when its controller is gone.
CONTROLLER_GONE = "the xdist controller is gone"
#: What execnet hands the side channel's callback when the channel closes.
_CLOSED = object()


class TickItem(pytest.Item):
    """A hidden no-op item sent after every job, so a worker runs the job at once.

    It emits no reports (see :func:`pytest_runtest_protocol` in :class:`WorkerSide`).
    """

    def runtest(self) -> None:  # pragma: no cover - never run through the protocol
        pass

    def reportinfo(self) -> tuple[str, int, str]:
        return "", 0, TICK_NAME


class WorkerSide:
    """Worker half: appends the tick, sends the graph, obeys abort messages; on another
    host than the controller, trades what jobs leave for their dependents (:mod:`handoff`)."""

    def __init__(self, config: pytest.Config, channel: Any, worker_tag: str) -> None:
        self.config = config
        self.channel = channel
        self.tag_variable = WORKER_TAG_PREFIX + worker_tag
        #: On another host than the controller (its run directory is not the controller's).
        self.remote = bool(getattr(config, "workerinput", {}).get("cidag_remote"))
        self.labels: dict[str, str] = {}  # job key -> its label (its files' names)
        self.tick: TickItem | None = None
        self.running: set[runner.JobProcess] = set()
        self.lock = threading.Lock()
        self.aborted: str | None = None
        #: Set with ``aborted``: ends a job's wait before its next attempt.
        self.abort_event = threading.Event()
        self.job_keys: frozenset[str] = frozenset()
        self.call_passed: str | None = None
        self.previous: pytest.Item | None = None  # the item run before the pending tick
        channel.setcallback(self._receive, endmarker=_CLOSED)

    def _receive(self, message: Any) -> None:
        # Runs in execnet's receiver thread, even while the main thread runs a job.
        if message is _CLOSED:
            # The controller is gone (killed, or its host unreachable): nobody reports or
            # stops what runs here. A worker on the controller's host dies with it and its
            # reaper kills its jobs; one on another host (an execnet socketserver) lives on.
            self._abort(CONTROLLER_GONE, None)
        elif isinstance(message, dict) and "skip" in message:
            key, reason = message["skip"]
            self.config.stash[OUTCOMES_KEY].blocked[str(key)] = str(reason)
        elif isinstance(message, dict) and "handoff" in message:
            # Before the index of the job that needs them, on the same connection.
            settings = self.config.stash[SETTINGS_KEY]
            handoff.place(settings.run_dir, message["handoff"], self.config.rootpath)
        elif isinstance(message, dict) and "abort" in message:
            procs = self._abort(str(message["abort"]), message.get("grace"))
            if message.get("reply"):
                # Each tree is gone (abort returns once it is): the controller may go on.
                self.channel.send({"stopped": len(procs)})

    def _abort(self, reason: str, grace: float | None) -> list[runner.JobProcess]:
        with self.lock:
            self.aborted = reason
            procs = list(self.running)
        self.abort_event.set()  # ends a retry's wait
        for proc in procs:
            proc.abort(reason, grace)
        return procs

    def job_started(self, proc: runner.JobProcess) -> None:
        with self.lock:
            self.running.add(proc)
            aborted = self.aborted
        if aborted is not None:
            proc.abort(aborted)

    def job_ended(self, proc: runner.JobProcess) -> None:
        with self.lock:
            self.running.discard(proc)

    def wait_unless_aborted(self, seconds: float) -> str | None:
        """Wait ``seconds`` (before a job's next attempt) unless an abort comes first, or
        came already; the abort's reason, or None. A signal ends the wait too (it raises)."""
        if seconds > 0:
            self.abort_event.wait(seconds)
        with self.lock:
            return self.aborted

    def after_selection(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        if self.config.stash[RUN_KEY].graph is None:
            return
        # The scheduler owns fast-fail: a worker must not stop by itself after a failure.
        self.config.option.maxfail = 0
        self.tick = TickItem.from_parent(session, name=TICK_NAME)
        items.append(self.tick)

    def send_plan(self, session: pytest.Session, run: RunGraph) -> None:
        graph = run.graph
        if run.graph_error is not None:
            self.channel.send({"plan": {"error": run.graph_error}})
            return
        if graph is None or self.tick is None:
            self.channel.send({"plan": None})
            return
        items = {i.nodeid: i for i in session.items}
        self.labels = {k: i.job_id for k, i in items.items() if isinstance(i, JobItem)}
        self.job_keys = frozenset(self.labels)
        nodes = []
        for key, node in graph.nodes.items():
            item = items.get(key)
            resources = item.spec.resources if isinstance(item, JobItem) else ()
            nodes.append(node_to_data(node, resources))
        self.channel.send(
            {
                "plan": {
                    "nodes": nodes,
                    "run_keys": list(run.run_keys),
                    "tick": self.tick.nodeid,
                    "first": sorted(run.first_keys),
                    "deselected": run.deselected_count,
                }
            }
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        # tryfirst: ahead of pytest's own runner, which we stand in for here.
        if isinstance(item, TickItem):
            # No reports, no setup. Only now is the next real item known: tear down what
            # the previous item left set up and the next one does not share (all of it when
            # this is the worker's last item: nextitem=None finalizes session fixtures).
            call = pytest.CallInfo.from_call(
                lambda: internals.teardown_towards(item, nextitem),
                when="teardown",
                reraise=(pytest.exit.Exception, KeyboardInterrupt),
            )
            if call.excinfo is not None:  # a module/class/session fixture's finalizer failed
                self._late_teardown_error(call)
            return True
        self.previous = item
        if self.tick is not None and isinstance(nextitem, TickItem):
            # The real next item is not known yet (the scheduler decides when this one ends).
            # Run the protocol as pytest does, but tear down only this item, not its module
            # or class: the tick finishes the teardown once the next item is known. Without
            # this, module- and class-scoped fixtures would be rebuilt for every test.
            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            internals.run_protocol_keeping_parents(item)
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            return True
        return None

    def _late_teardown_error(self, call: pytest.CallInfo[None]) -> None:
        """Without xdist this error is the previous item's teardown error: the controller
        reports it so (xdist's worker only sends reports of the item it runs)."""
        try:
            if self.previous is None:
                raise LookupError("no item ran before this teardown")
            report = pytest.TestReport.from_item_and_call(self.previous, call)
            data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            self.channel.send({"teardown_error": data})
        except Exception:  # no previous item, or the controller is gone: at least say it here
            warnings.warn(
                pytest.PytestWarning(f"cidag: error while tearing down fixtures: {call.excinfo!r}"), stacklevel=1
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # tryfirst: ahead of xdist, which serializes the report and sends it; the report is
        # final here (every makereport hook has had its say). A job whose call and teardown
        # passed has passed, as in a run without xdist: say so now, so the controller starts
        # its dependents while this worker still sends the reports and the controller works
        # through them. (Python tests take the usual way.)
        if self.tick is None or report.nodeid not in self.job_keys:
            return
        if report.when == "call":
            self.call_passed = report.nodeid if report.passed else None
        elif report.when == "teardown":
            if report.passed and self.call_passed == report.nodeid:
                message: dict[str, Any] = {"passed": report.nodeid}
                if self.remote:  # its outputs and cache key, for dependents on other hosts
                    run_dir = self.config.stash[SETTINGS_KEY].run_dir
                    message["handoff"] = handoff.collect(run_dir, [self.labels[report.nodeid]], self.config.rootpath)
                with contextlib.suppress(Exception):  # the controller is gone: nothing to speed up
                    self.channel.send(message)
            self.call_passed = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # tryfirst: the message must reach the controller before xdist's collectionfinish.
        self.send_plan(session, self.config.stash[RUN_KEY])
