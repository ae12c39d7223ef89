"""The xdist controller's half: the side channel's far end, and the services behind DagScheduling.

The controller never collects, so each worker sends its graph (after its own selection, so
with upstream jobs pulled in) over an execnet channel created in ``pytest_configure_node``;
the same channel carries "passed" messages from workers and abort messages back while a job
runs. The worker's half is :mod:`pytest_cidag.xdist.worker`; the scheduling decisions are
:mod:`pytest_cidag.core.scheduling`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag import internals
from pytest_cidag.core import runner, signals
from pytest_cidag.core.graph import JobGraph
from pytest_cidag.core.plan import DagPlan, PlanError, node_from_data, with_pass_locks
from pytest_cidag.core.scheduling import DagScheduling, SchedulerChoice
from pytest_cidag.core.status import Status
from pytest_cidag.keys import OUTCOMES_KEY, RUN_KEY, SETTINGS_KEY
from pytest_cidag.outcomes import OutcomeRecorder
from pytest_cidag.persistence import CachePersistence
from pytest_cidag.state import RunGraph
from pytest_cidag.xdist import handoff
from pytest_cidag.xdist.worker import WORKER_TAG_PREFIX


class ControllerSide:
    """Controller half: implements :class:`pytest_cidag.core.scheduling.Controller`."""

    def __init__(
        self,
        config: pytest.Config,
        persistence: CachePersistence,
        jobs_found: Callable[[Callable[[int], None]], None],
    ) -> None:
        self.config = config
        self.persistence = persistence
        self.jobs_found = jobs_found
        self.log: Any = None
        self.choice: SchedulerChoice | None = None
        self.lock = threading.Lock()
        self.plans: list[dict[str, Any] | None] = []
        self.worker_tags: dict[str, str] = {}
        self.channels: dict[str, Any] = {}
        self.nodes: dict[str, Any] = {}
        self.stopped = threading.Condition(self.lock)
        self.awaiting_stop: set[str] = set()  # workers asked to stop their jobs, not yet done
        self.maxfail = int(config.getoption("maxfail") or 0)
        self.scheduler: DagScheduling | None = None
        self.failed_reports = 0
        self.started_keys: set[str] = set()
        self.exit_pending: tuple[str, int | None] | None = None
        self.late_errors: list[Any] = []  # serialized teardown reports, from the side channel
        self.dispatched_at: dict[str, float] = {}  # key -> when it was last sent to a worker (epoch s)
        self.dispatched_to: dict[str, str] = {}  # key -> the worker it was last sent to ("gw0")

    @property
    def run(self) -> RunGraph:
        return self.config.stash[RUN_KEY]

    @property
    def recorder(self) -> OutcomeRecorder:
        return self.config.stash[OUTCOMES_KEY]

    # --- xdist hooks -----------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # Every worker on this host writes into the controller's one run directory. One on
        # another host (--tx socket=, ssh=) writes into the directory of that name in its own
        # checkout (which may be at another path), not at this host's path.
        settings = self.config.stash[SETTINGS_KEY]
        remote = handoff.is_remote(node)
        node.workerinput["cidag_run_dir"] = self._for_worker(settings.run_dir, remote)
        node.workerinput["cidag_default_run_dir"] = settings.default_run_dir
        node.workerinput["cidag_previous_run_dir"] = self._for_worker(settings.previous_run_dir, remote)
        node.workerinput["cidag_reaches_jobs"] = settings.reaches_jobs
        node.workerinput["cidag_remote"] = remote
        channel = node.gateway.newchannel()
        gwid = str(node.gateway.id)
        tag = runner.new_token()
        node.workerinput["cidag_channel"] = channel
        node.workerinput["cidag_worker_tag"] = tag
        with self.lock:
            self.worker_tags[gwid] = tag
            self.channels[gwid] = channel
            self.nodes[gwid] = node
        channel.setcallback(lambda message: self._receive(node, message), endmarker=_CLOSED)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        # Before any gateway is made. xdist hands a worker on another host (and one given
        # chdir=) the command line with each existing path made relative to an --rsyncdir,
        # and stops with a traceback ("not relative to an rsync root") at one that is not
        # under any (a relative path never is): say so, and what to do instead.
        remote = [s for s in specs if not s.popen or s.chdir]
        if not remote or not config.stash[SETTINGS_KEY].reaches_jobs:
            return
        given = [*(getattr(config.option, "rsyncdir", None) or []), *config.getini("rsyncdirs")]
        roots = [Path(root).resolve() for root in given]
        for arg in (str(a) for a in config.invocation_params.args):
            path = Path(arg.split("::", 1)[0])
            with contextlib.suppress(OSError):
                if path.exists() and not any(path == r or path.is_relative_to(r) for r in roots):
                    shown = "//".join(p for p in str(remote[0]).split("//") if not p.startswith("execmodel="))
                    raise pytest.UsageError(
                        f"cidag: {arg!r} is a path, and xdist gives a remote or chdir= worker (--tx {shown}) "
                        "only paths under an --rsyncdir; name the job directories in ini testpaths and give "
                        "no paths (select with -k or -m)"
                    )

    def _for_worker(self, path: Path | None, remote: bool) -> str:
        """``path`` as a worker resolves it against its own rootdir ("" for None): relative
        to the rootdir for a worker on another host when it is under it, else as it is."""
        if path is None:
            return ""
        rootpath = self.config.rootpath
        return str(path.relative_to(rootpath)) if remote and path.is_relative_to(rootpath) else str(path)

    def _receive(self, node: Any, message: Any) -> None:
        # execnet's receiver thread. A plan is only stored (the main thread reads it); an
        # early pass goes to the scheduler at once, which takes its own lock.
        if message is _CLOSED or (isinstance(message, dict) and "stopped" in message):
            with self.lock:  # a worker whose jobs are gone, or that is gone itself
                self.awaiting_stop.discard(internals.worker_id(node))
                self.stopped.notify_all()
            return
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
                if message.get("handoff"):  # from another host: before its dependents are sent
                    handoff.place(self.run_dir(), message["handoff"], self.config.rootpath)
                self.scheduler.passed_early(node, str(message["passed"]))
            except Exception:  # a bug: say so, keep the channel (abort messages use it)
                traceback.print_exc()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> SchedulerChoice:
        # Nothing is collected yet: whether the run has jobs is known at the first
        # collection, where the choice hands xdist the scheduler the run needs.
        self.log = log
        self.choice = SchedulerChoice(self, log)
        return self.choice

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        # Before xdist hands the collection to its scheduler: a plugin's tryfirst
        # pytest_xdist_make_scheduler that answered before ours would run the jobs with no
        # regard for the graph (dependents of a failure would run). Refuse.
        if self.choice is not None:
            return
        with self.lock:
            data = next(iter(self.plans), None)
        if data is not None and "error" not in data:
            raise pytest.UsageError(
                "cidag: the run has jobs, but another plugin's pytest_xdist_make_scheduler chose xdist's "
                "scheduler before pytest-cidag's could; jobs need it (a run without jobs keeps yours)"
            )

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
        status = internals.worker_exit_status(node)
        self.exit_pending = (message, status or None)

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
        run_keys = set(data["run_keys"])
        if any(n.is_job and n.key in run_keys for n in nodes):
            jobs = self.config.pluginmanager.get_plugin("cidag-jobs")  # registered with this plugin
            assert jobs is not None
            try:  # before the first job, as without xdist
                jobs.claim_run_dir()
            except pytest.UsageError as exc:
                raise PlanError(str(exc)) from None
        graph = JobGraph.build(nodes)
        run = self.run
        run.graph = graph
        run.run_keys = list(data["run_keys"])
        internals.disable_xdist_maxfail(self.config)  # the scheduler counts failures and stops the run itself
        if data["deselected"]:
            self.config.hook.pytest_deselected(items=[_Deselected(i) for i in range(data["deselected"])])
        return DagPlan(
            graph=graph,
            run_keys=list(data["run_keys"]),
            tick=data["tick"],
            durations=self.persistence.planning_durations(),
            first=set(data["first"]),
            resources=with_pass_locks(
                graph, {n["key"]: tuple(n["resources"]) for n in data["nodes"] if n["resources"]}
            ),
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
        # The hook as it would be called without this plugin: a conftest's or another
        # plugin's impl first, xdist's own (``--dist``) last.
        hook = self.config.pluginmanager.subset_hook_caller("pytest_xdist_make_scheduler", remove_plugins=[self])
        return hook(config=self.config, log=self.log)

    def use(self, scheduler: Any) -> None:
        if isinstance(scheduler, DagScheduling):
            self.scheduler = scheduler
            scheduler.on_dispatch = self._dispatched
            # A run with jobs: SIGTERM and SIGHUP wind the controller down as Ctrl-C does,
            # and a second signal during that stops at once.
            self.jobs_found(self.stop_now)
            self._say_what_is_not_used()
        internals.replace_xdist_scheduler(self.config, scheduler)

    def _dispatched(self, key: str, node: Any) -> None:
        self.dispatched_at[key] = time.time()
        self.dispatched_to[key] = internals.worker_id(node)

    def _say_what_is_not_used(self) -> None:
        """A run with jobs is scheduled by the graph: say so if --dist or another plugin's
        pytest_xdist_make_scheduler asked for something else."""
        xdist_own = internals.xdist_session_plugin(self.config)
        others = [
            impl.plugin_name
            for impl in self.config.pluginmanager.hook.pytest_xdist_make_scheduler.get_hookimpls()
            if impl.plugin is not self and impl.plugin is not xdist_own
        ]
        dist = self.config.getoption("dist", "load")
        unused = [f"pytest_xdist_make_scheduler in {name}" for name in others]
        if dist not in ("load", "no"):
            unused.append(f"--dist {dist}")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if unused and reporter is not None:
            reporter.write_line(
                f"cidag: the run has jobs, so they are scheduled by their graph; not used: {', '.join(unused)}"
            )

    def outcome(self, key: str) -> Status | None:
        return self.recorder.status(key)

    def block(self, key: str) -> None:
        self.recorder.block_ahead(key)

    def send_skip(self, node: Any, key: str) -> None:
        # Before the key's index, on the same connection: the worker has the reason when
        # the key's setup runs (execnet hands our channel's messages to its callback in order).
        channel = self.channels.get(internals.worker_id(node))
        if channel is not None:
            channel.send({"skip": [key, self.recorder.blocked[key]]})

    def send_needs(self, node: Any, key: str) -> None:
        # A worker on another host cannot read what the needs of ``key`` left in the run
        # directory (here, or on a third host): send it, before the key's index on the same
        # connection. The outputs of needs outside the run (--cidag-no-deps) are not sent.
        if not handoff.is_remote(node):
            return
        graph = self.run.graph
        channel = self.channels.get(internals.worker_id(node))
        if graph is None or channel is None:
            return
        labels = [graph.nodes[n].label for n in graph.needs.get(key, ()) if graph.nodes[n].is_job]
        files = handoff.collect(self.run_dir(), labels, self.config.rootpath)
        if files:
            channel.send({"handoff": files})

    def run_dir(self) -> Path:
        return Path(self.config.stash[SETTINGS_KEY].run_dir)

    def abort(self, nodes: Sequence[Any], reason: str) -> None:
        for node in nodes:
            channel = self.channels.get(str(node.gateway.id))
            if channel is not None:
                with contextlib.suppress(Exception):
                    channel.send({"abort": reason})

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C (or SIGTERM) reached the controller, maybe the controller alone.

        The workers are not interrupted by xdist: each would finish its job, then wait
        for an item that never comes until execnet interrupts it 5 s later. So each is told
        to kill its running job with the kill grace, as pytest without xdist does, and then
        to shut down; the controller waits until every job's tree is gone (or its worker
        is), so xdist's teardown finds idle workers and the run ends as fast as at -n 0.
        """
        if self.scheduler is None:
            return
        value = excinfo.value
        reason = str(value) if isinstance(value, signals.Terminated) and str(value) else "interrupted"
        grace = self.config.stash[SETTINGS_KEY].kill_grace
        with self.lock:
            channels = dict(self.channels)
            nodes = list(self.nodes.values())
            self.awaiting_stop = set(channels)
        for gwid, channel in channels.items():
            try:
                channel.send({"abort": reason, "grace": grace, "reply": True})
            except Exception:  # its worker is gone
                with self.lock:
                    self.awaiting_stop.discard(gwid)
        for node in nodes:
            with contextlib.suppress(Exception):
                node.shutdown()
        # Beyond the grace and a margin, xdist's own teardown and the workers' reapers take over.
        with self.lock:
            self.stopped.wait_for(lambda: not self.awaiting_stop, timeout=grace + 5)

    def stop_now(self, signum: int) -> None:
        """A second signal while the run winds down: kill every job's tree at once and exit.

        Called from the signal handler, wherever the main thread is; no traceback, no
        waiting for workers (their jobs are gone; they end when they find the controller gone).
        """
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        name = signal.Signals(signum).name
        sys.stderr.write(f"\ncidag: {name} again: killing every job's processes and stopping now\n")
        sys.stderr.flush()
        with self.lock:
            tags = list(self.worker_tags.values())
        for tag in tags:
            runner.kill_tag(WORKER_TAG_PREFIX + tag, grace=0)
        os._exit(pytest.ExitCode.INTERRUPTED)

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
        internals.set_collected_count(self.config, count)


#: What execnet hands a channel's callback when the channel closes (its worker is gone).
_CLOSED = object()


class _Deselected:
    """Stands for an item a worker deselected (the controller has no items)."""

    def __init__(self, index: int) -> None:
        self.nodeid = f"<deselected {index}>"
