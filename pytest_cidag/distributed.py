"""pytest-xdist glue: the side channel, the tick item, and the controller behind DagScheduling.

Loaded only when pytest-xdist is. The controller never collects, so each worker sends its
graph (after its own selection, so with upstream jobs pulled in) over an execnet channel
created in ``pytest_configure_node``; the same channel carries abort messages back while a
job runs. See the project's notes on xdist for why each piece is as it is.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
import warnings
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.runner import CallInfo

from pytest_cidag.core import runner
from pytest_cidag.core.graph import JobGraph, Node
from pytest_cidag.core.scheduling import DagPlan, DagScheduling, PlanError
from pytest_cidag.items import DAG_KEY, SETTINGS_KEY, JobItem

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_cidag.dag import DagPlugin

TICK_NAME = "cidag-tick"
#: Every job a worker starts carries ``CIDAG_WTAG_<worker token>=1``, so the controller can
#: kill what a crashed worker's jobs left behind (a name per worker keeps nested runs' tags).
WORKER_TAG_PREFIX = "CIDAG_WTAG_"


class TickItem(pytest.Item):
    """A hidden no-op item sent after every job, so a worker runs the job at once.

    It emits no reports (see :func:`pytest_runtest_protocol` in :class:`WorkerSide`).
    """

    def runtest(self) -> None:  # pragma: no cover - never run through the protocol
        pass

    def reportinfo(self) -> tuple[str, int, str]:
        return "", 0, TICK_NAME


def node_to_data(node: Node, location: tuple[str, int | None, str], resources: tuple[str, ...]) -> dict[str, Any]:
    return {
        "key": node.key,
        "label": node.label,
        "needs": list(node.needs),
        "job": node.job,
        "aliases": list(node.aliases),
        "where": node.where,
        "markers": list(node.markers),
        "timeout": node.timeout,
        "location": [location[0], location[1], location[2]],
        "resources": list(resources),
    }


def node_from_data(data: dict[str, Any]) -> Node:
    return Node(
        key=data["key"],
        label=data["label"],
        needs=tuple(data["needs"]),
        job=data["job"],
        aliases=tuple(data["aliases"]),
        where=data["where"],
        markers=tuple(data["markers"]),
        timeout=data["timeout"],
    )


class WorkerSide:
    """Worker half: appends the tick, sends the graph, obeys abort messages."""

    def __init__(self, config: pytest.Config, channel: Any, worker_tag: str) -> None:
        self.config = config
        self.channel = channel
        self.tag_variable = WORKER_TAG_PREFIX + worker_tag
        self.tick: TickItem | None = None
        self.running: set[runner.JobProcess] = set()
        self.lock = threading.Lock()
        self.aborted: str | None = None
        self.job_keys: frozenset[str] = frozenset()
        self.call_passed: str | None = None
        self.previous: pytest.Item | None = None  # the item run before the pending tick
        channel.setcallback(self._receive)

    def _receive(self, message: Any) -> None:
        # Runs in execnet's receiver thread, even while the main thread runs a job.
        if isinstance(message, dict) and "abort" in message:
            reason = str(message["abort"])
            with self.lock:
                self.aborted = reason
                procs = list(self.running)
            for proc in procs:
                proc.abort(reason)

    def job_started(self, proc: runner.JobProcess) -> None:
        with self.lock:
            self.running.add(proc)
            aborted = self.aborted
        if aborted is not None:
            proc.abort(aborted)

    def job_ended(self, proc: runner.JobProcess) -> None:
        with self.lock:
            self.running.discard(proc)

    def after_selection(self, session: pytest.Session, items: list[pytest.Item], dag: DagPlugin) -> None:
        if dag.graph is None:
            return
        # The scheduler owns fast-fail: a worker must not stop by itself after a failure.
        self.config.option.maxfail = 0
        self.tick = TickItem.from_parent(session, name=TICK_NAME)
        items.append(self.tick)

    def send_plan(self, session: pytest.Session, dag: DagPlugin) -> None:
        graph = dag.graph
        if dag.graph_error is not None:
            self.channel.send({"plan": {"error": dag.graph_error}})
            return
        if graph is None or self.tick is None:
            self.channel.send({"plan": None})
            return
        items = {i.nodeid: i for i in session.items}
        self.job_keys = frozenset(k for k, i in items.items() if isinstance(i, JobItem))
        nodes = []
        for key, node in graph.nodes.items():
            item = items.get(key)
            location = item.location if item is not None else ("", None, node.label)
            resources = item.spec.resources if isinstance(item, JobItem) else ()
            nodes.append(node_to_data(node, location, resources))
        self.channel.send(
            {
                "plan": {
                    "nodes": nodes,
                    "run_keys": list(dag.run_keys),
                    "tick": self.tick.nodeid,
                    "first": sorted(dag.first_keys),
                    "deselected": dag.deselected_count,
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
            call = CallInfo.from_call(
                lambda: item.session._setupstate.teardown_exact(nextitem),
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
            from _pytest.runner import runtestprotocol

            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            runtestprotocol(item, nextitem=item.parent, log=True)  # type: ignore[arg-type]
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            return True
        return None

    def _late_teardown_error(self, call: CallInfo[None]) -> None:
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
                with contextlib.suppress(Exception):  # the controller is gone: nothing to speed up
                    self.channel.send({"passed": report.nodeid})
            self.call_passed = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # tryfirst: the message must reach the controller before xdist's collectionfinish.
        self.send_plan(session, self.config.stash[DAG_KEY])


class ControllerSide:
    """Controller half: implements :class:`pytest_cidag.core.scheduling.Controller`."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.plans: list[dict[str, Any] | None] = []
        self.worker_tags: dict[str, str] = {}
        self.channels: dict[str, Any] = {}
        self.maxfail = int(config.getoption("maxfail") or 0)
        self.locations: dict[str, tuple[str, int | None, str]] = {}
        self.scheduler: DagScheduling | None = None
        self.failed_reports = 0
        self.started_keys: set[str] = set()
        self.exit_pending: tuple[str, int | None] | None = None
        self.late_errors: list[Any] = []  # serialized teardown reports, from the side channel

    @property
    def dag(self) -> DagPlugin:
        plugin: DagPlugin = self.config.stash[DAG_KEY]
        return plugin

    # --- xdist hooks -----------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # Every worker writes into the controller's one run directory.
        settings = self.config.stash[SETTINGS_KEY]
        node.workerinput["cidag_run_dir"] = str(settings.run_dir)
        node.workerinput["cidag_default_run_dir"] = settings.default_run_dir
        node.workerinput["cidag_previous_run_dir"] = str(settings.previous_run_dir or "")
        channel = node.gateway.newchannel()
        gwid = str(node.gateway.id)
        tag = runner.new_token()
        node.workerinput["cidag_channel"] = channel
        node.workerinput["cidag_worker_tag"] = tag
        with self.lock:
            self.worker_tags[gwid] = tag
            self.channels[gwid] = channel
        channel.setcallback(lambda message: self._receive(node, message))

    def _receive(self, node: Any, message: Any) -> None:
        # execnet's receiver thread. A plan is only stored (the main thread reads it); an
        # early pass goes to the scheduler at once, which takes its own lock.
        if not isinstance(message, dict):
            return
        if "plan" in message:
            with self.lock:
                self.plans.append(message["plan"])
        elif "teardown_error" in message:
            with self.lock:
                self.late_errors.append((node, message["teardown_error"]))
        elif "passed" in message and self.scheduler is not None:
            try:
                self.scheduler.passed_early(node, str(message["passed"]))
            except Exception:  # a bug: say so, keep the channel (abort messages use it)
                traceback.print_exc()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> DagScheduling:
        self.scheduler = DagScheduling(self, log)
        return self.scheduler

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.started_keys.add(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Counted as pytest's Session counts for -x / --maxfail (xdist's own count is off).
        if report.failed and not hasattr(report, "wasxfail"):
            self.failed_reports += 1

    # --- Controller protocol for DagScheduling ---------------------------------------------

    def failures(self) -> int:
        return self.failed_reports

    def started(self, key: str) -> bool:
        return key in self.started_keys

    def session_ended(self, node: Any, message: str) -> None:
        # The run ends as pytest.exit() ends one without xdist ("Exit: <message>", its exit
        # code), once what runs elsewhere has been cancelled and reported (pytest_runtestloop).
        status = getattr(node, "workeroutput", {}).get("exitstatus")
        self.exit_pending = (message, status if isinstance(status, int) and status else None)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        result = yield
        if self.exit_pending is not None:
            message, status = self.exit_pending
            raise pytest.exit.Exception(message, returncode=status)
        return result

    def plan(self) -> DagPlan | None:
        with self.lock:
            data = next(iter(self.plans), None)
        if data is None:
            return None
        if "error" in data:
            raise PlanError(data["error"])
        nodes = [node_from_data(n) for n in data["nodes"]]
        graph = JobGraph.build(nodes)
        dag = self.dag
        dag.graph = graph
        dag.run_keys = list(data["run_keys"])
        self.locations = {n["key"]: (n["location"][0], n["location"][1], n["location"][2]) for n in data["nodes"]}
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None:
            dsession.maxfail = 0  # the scheduler counts failures and stops the run itself
        if data["deselected"]:
            self.config.hook.pytest_deselected(items=[_Deselected(i) for i in range(data["deselected"])])
        return DagPlan(
            graph=graph,
            run_keys=list(data["run_keys"]),
            tick=data["tick"],
            durations=dag.known_durations(),
            first=set(data["first"]),
            resources={n["key"]: tuple(n["resources"]) for n in data["nodes"] if n["resources"]},
        )

    def report_late_teardown_errors(self) -> list[str]:
        # Called from xdist's loop when a tick completes. Its side-channel message came
        # before its completion event (one connection per worker, in order).
        with self.lock:
            errors, self.late_errors = self.late_errors, []
        hook = self.config.hook
        keys = []
        for node, data in errors:
            report = hook.pytest_report_from_serializable(config=self.config, data=data)
            report.node = node  # as xdist marks the reports it forwards
            hook.pytest_runtest_logreport(report=report)
            keys.append(report.nodeid)
        return keys

    def fail(self, message: str) -> None:
        # As without xdist: pytest prints "ERROR: <message>" and exits with 4 (usage error);
        # xdist's session finish tears the workers down.
        raise pytest.UsageError(message)

    def make_fallback(self) -> Any:
        dsession = self.config.pluginmanager.getplugin("dsession")
        return dsession.pytest_xdist_make_scheduler(config=self.config, log=dsession.log)

    def outcome(self, key: str) -> str | None:
        outcome = self.dag.outcomes.get(key)
        return None if outcome is None else outcome.status

    def block(self, key: str) -> None:
        dag = self.dag
        reason = dag.block_reason(key)
        location = self.locations.get(key, (key.split("::", maxsplit=1)[0], None, key))
        path, lineno, _ = location
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=key, location=location)
        setup = pytest.TestReport(
            nodeid=key,
            location=location,
            keywords={},
            outcome="skipped",
            # an absolute path, as a skip raised in the item's own setup has (JUnit shows it)
            longrepr=(str(self.config.rootpath / path), (lineno or 0) + 1, f"Skipped: {reason}"),
            when="setup",
        )
        hook.pytest_runtest_logreport(report=setup)
        teardown = pytest.TestReport(
            nodeid=key, location=location, keywords={}, outcome="passed", longrepr=None, when="teardown"
        )
        hook.pytest_runtest_logreport(report=teardown)
        hook.pytest_runtest_logfinish(nodeid=key, location=location)

    def abort(self, nodes: Sequence[Any], reason: str) -> None:
        for node in nodes:
            channel = self.channels.get(str(node.gateway.id))
            if channel is not None:
                with contextlib.suppress(Exception):
                    channel.send({"abort": reason})

    def node_crashed(self, node: Any) -> None:
        tag = self.worker_tags.get(str(node.gateway.id))
        if tag:
            runner.kill_tag(WORKER_TAG_PREFIX + tag)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Last line of defence: whatever way the run ended (SIGTERM, a crash, xdist killing
        its workers), no process started by a job of this run survives it."""
        with self.lock:
            tags = list(self.worker_tags.values())
        for tag in tags:
            runner.kill_tag(WORKER_TAG_PREFIX + tag, grace=0.5)

    def collected(self, count: int) -> None:
        dsession = self.config.pluginmanager.getplugin("dsession")
        session = getattr(dsession, "_session", None)
        if session is not None:
            session.testscollected = count


class _Deselected:
    """Stands for an item a worker deselected (the controller has no items)."""

    def __init__(self, index: int) -> None:
        self.nodeid = f"<deselected {index}>"
