"""The xdist scheduler that runs a job graph: :class:`DagScheduling`. No pytest import.

pytest-xdist asks a scheduler to hand test indices to worker nodes. This one dispatches a
graph node to an idle worker the moment everything it needs has passed, at most one per
worker, highest priority first, and never two nodes that hold a common resource at once; a
node blocked by a need that did not pass goes to a worker too, which reports it skipped.
The controller-side glue (:mod:`pytest_cidag.xdist.controller`) gives it the graph, tells it
outcomes, and turns its decisions into messages to workers; here is only the bookkeeping,
so it is unit-tested against fake nodes. :class:`SchedulerChoice` is what xdist holds until
the first collection says whether the run has jobs at all.

Two xdist facts shape it:

* A worker runs item *i* only once it has received the *next* index (pytest needs
  ``nextitem`` for fixture teardown). So every node sent is followed by the index of a hidden
  no-op "tick" item; the tick's completion arrives one dispatch late and is ignored.
* The controller never collects: the graph arrives from the workers over a side channel.

A worker also says over that channel when a job has passed (:meth:`passed_early`: its
setup, call and teardown passed), before xdist sends its last reports: its dependents are
dispatched from the channel's thread at once, instead of after the controller has worked
through the reports and xdist's completion event (about 1-2 ms per dependency hop, more when
the controller is busy with another worker's reports). Hence the lock around every method
that reads or changes the dispatch state (``has_pending``, read by xdist's loop alone, goes
without). Crashes are settled, and blocked nodes blocked, only from xdist's own loop.
"""

from __future__ import annotations

import functools
import statistics
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from pytest_cidag.core.plan import DagPlan, PlanError
from pytest_cidag.core.ready import ReadyQueue
from pytest_cidag.core.status import FAILURES, Status

#: Seconds assumed for a node with no recorded duration, when nothing at all is recorded.
DEFAULT_DURATION = 1.0
#: The priority tier of ``--cidag-first`` jobs, the first pass and what they need (others: 1).
FIRST_TIER = 0


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run ``method`` under the scheduler's lock (xdist's loop and the side channel's thread)."""

    @functools.wraps(method)
    def wrapper(self: DagScheduling, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class WorkerNode(Protocol):
    """What the scheduler uses of xdist's ``WorkerController``."""

    def send_runtest_some(self, indices: Sequence[int]) -> None: ...

    def shutdown(self) -> None: ...


class Controller(Protocol):
    """The controller-side services the scheduler calls (implemented in :mod:`pytest_cidag.xdist.controller`)."""

    maxfail: int

    def plan(self) -> DagPlan | None:
        """The graph to run, or None when the run has no jobs (xdist's own scheduling)."""

    def make_fallback(self) -> Any:
        """The scheduler xdist would use without this plugin (the user's hook, ``--dist``)."""

    def use(self, scheduler: Any) -> None:
        """From now on, xdist talks to ``scheduler`` directly."""

    def fail(self, message: str) -> None:
        """Stop the run with ``message`` (the graph could not be built)."""

    def outcome(self, key: str) -> str | None:
        """passed, failed, errored, timeout, skipped, blocked, crashed; None if unknown."""

    def report_late_teardown_errors(self) -> list[str]:
        """Report the errors a worker met tearing down module, class or session fixtures
        after an item (in the tick that follows it), as that item's teardown errors.
        Returns the keys they belong to."""

    def started(self, key: str) -> bool:
        """Whether a worker has begun running ``key`` (its logstart arrived)."""

    def session_ended(self, node: Any, message: str) -> None:
        """A worker's session ended during a key (pytest.exit): end the run likewise."""

    def failures(self) -> int:
        """Failed reports so far, counted as pytest counts them for -x / --maxfail (a failed
        call and a teardown error of one test are two)."""

    def block(self, key: str) -> None:
        """``key`` is blocked (something it needs did not pass): record why, before the
        worker it is sent to reports it skipped."""

    def send_skip(self, node: Any, key: str) -> None:
        """Tell ``node`` that ``key``, sent next, is to be skipped as blocked (and why)."""

    def send_needs(self, node: Any, key: str) -> None:
        """Give ``node`` what the needs of ``key``, sent next, left for it (their outputs),
        where it cannot read that itself (a worker on another host)."""

    def abort(self, nodes: Sequence[Any], reason: str) -> None:
        """Kill the jobs running on ``nodes`` (fast-fail)."""

    def node_crashed(self, node: Any) -> None:
        """A worker died: kill whatever its jobs left behind."""

    def collected(self, count: int) -> None:
        """The number of real items (the tick excluded), for the terminal."""


class DagScheduling:
    """Dispatch a job graph to xdist workers.

    Attributes:
        controller: the controller-side services (:class:`Controller`).
        node2collection: worker -> the node ids it collected (including the tick).
        plan: the graph and keys to run (:class:`~pytest_cidag.core.plan.DagPlan`).
        collection: the node ids every worker collected (the tick last), set by the first.
        waiting: keys whose needs have not all passed yet.
        skips: blocked keys not sent yet, in the order they were blocked (each before what it
            blocks in turn). A blocked key goes to a worker like any other, which reports it
            skipped through pytest's own protocol (as without xdist: every hook an item
            passes through, for every consumer that listens in a worker), without resources.
        blocked: every key blocked so far.
        dependents: key -> the keys in the run that need it directly, in run order (built
            once: scanning the run for each finished key made a run quadratic).
        ready: the keys whose needs all passed, not yet dispatched, and the resources
            running keys hold (:class:`~pytest_cidag.core.ready.ReadyQueue`).
        running: worker -> the key it runs (at most one per worker).
        done: keys that finished (any outcome) or were blocked.
        stopped: the fast-fail reason once -x/--maxfail tripped; nothing is dispatched after.
        reporting: key -> worker, for keys that passed early and whose completion event has
            not arrived yet (the worker is still busy with their reports).
        on_dispatch: called with a key and the worker it is sent to (the run record's
            "queued" time, the live status's worker), or None.
        first_pass: the first-pass keys (``--cidag-first-testcases``) not all ended yet; with
            -x / --maxfail only first-tier keys (they and what they need, ``--cidag-first``
            jobs) are dispatched while it is non-empty (:meth:`_first_pass_gate`).

    Invariants: a key that is not blocked is in at most one of waiting, ready and running's
    values, and in done once it has ended; a blocked key is in done and blocked from the
    moment it is blocked, and in skips or running's values until a worker has reported it
    skipped (never in waiting or ready again); a key enters ready only when all its needs
    in the run passed; a worker receives [key, tick] and nothing else until that key
    completes.
    """

    def __init__(self, controller: Controller, plan: DagPlan, log: Callable[..., None] | None = None) -> None:
        self.controller = controller
        #: pytest's config, as xdist's own schedulers hold it: other plugins' xdist hooks read
        #: ``sched.config`` (pytest-rerunfailures' pytest_handlecrashitem does)
        self.config = getattr(controller, "config", None)
        self.log = log or (lambda *args: None)
        self.node2collection: dict[Any, list[str]] = {}
        self._nodes: list[Any] = []
        self.plan = plan
        self.collection: list[str] = []
        self.index: dict[str, int] = {}
        self.dependents: dict[str, list[str]] = {}
        self.tick_index = -1
        self.waiting: set[str] = set()
        self.ready = ReadyQueue({}, {})
        self.running: dict[Any, str] = {}
        self.done: set[str] = set()
        self.stopped: str | None = None
        self._unsettled: list[str] = []  # see "crash accounting" below
        self._crash_due: list[str] = []
        self._late_blocks: list[str] = []
        self._doomed: list[str] = []  # every need ended, one did not pass: to block
        self.skips: list[str] = []
        self.blocked: set[str] = set()
        self.last_on: dict[Any, str] = {}  # worker -> the last key it finished
        self.passed: set[str] = set()  # passed early, per the worker
        self.reporting: dict[str, Any] = {}
        self.on_dispatch: Callable[[str, Any], None] | None = None
        self.first_pass: set[str] = set()
        self.lock = threading.RLock()

    # --- xdist's scheduler protocol ---------------------------------------------------

    @property
    def nodes(self) -> list[Any]:
        return list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        return bool(self._nodes) and all(n in self.node2collection for n in self._nodes)

    @property
    @_locked
    def tests_finished(self) -> bool:
        if not self.collection or not self.collection_is_completed:
            return False
        if self.running or self._unsettled or self.reporting:
            return False
        return self.stopped is not None or not (self.waiting or self.ready or self.skips)

    @property
    def has_pending(self) -> bool:
        return bool(self.waiting or self.ready or self.skips or self.running)

    @_locked
    def add_node(self, node: Any) -> None:
        self._nodes.append(node)

    @_locked
    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        if not self.collection:
            self._start(list(collection))
        if list(collection) != self.collection:
            raise RuntimeError(
                f"worker {getattr(node, 'gateway', node)} collected different jobs than the first worker; "
                "pytest-cidag needs every worker to collect the same items in the same order"
            )
        self.node2collection[node] = list(collection)
        self.controller.collected(len(collection) - 1)
        # xdist calls schedule() only once every worker that said "ready" has collected; a
        # worker that has collected takes work now, while others still start up.
        self._dispatch()

    @_locked
    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        if item_index == self.tick_index:
            # The tick's completion arrives one dispatch late. It tore down what the item
            # before it left set up; an error there is that item's, and counts for -x.
            # What it released already runs; what still waits for it is blocked now.
            for key in self.controller.report_late_teardown_errors():
                self._check_maxfail(key, Status.ERRORED)
                if key not in self.passed:
                    self._failed_late(key)
            self._block_doomed()
            self._dispatch()
            return
        key = self.collection[item_index]
        self.last_on[node] = key
        if self.running.get(node) == key:
            del self.running[node]
        self.reporting.pop(key, None)
        if key not in self.done:  # else it passed early (passed_early)
            self._finish(key)
        self.schedule()

    @_locked
    def passed_early(self, node: Any, key: str) -> None:
        """The worker ``node`` says ``key`` passed (setup, call and teardown); its reports
        and xdist's completion event are on the way.

        ``key`` counts as passed for its dependents from now on, and ``node`` may be given
        the next job (it runs it once it has sent the reports). Ignored unless ``key`` is
        what ``node`` runs, so a late or repeated message changes nothing.
        """
        if self.running.get(node) != key or key in self.done:
            return
        del self.running[node]
        self.last_on[node] = key
        self.passed.add(key)
        self.reporting[key] = node
        self._finish(key)  # a pass: releases dependents, never reports anything
        self._dispatch()

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError("pytest-cidag's scheduler does not support re-queuing items")

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError("pytest-cidag's scheduler never steals")

    @_locked
    def remove_node(self, node: Any) -> str | None:
        if node in self._nodes:
            self._nodes.remove(node)
        self.node2collection.pop(node, None)
        key = self.running.pop(node, None)
        early = [k for k, n in self.reporting.items() if n is node]
        for k in early:
            del self.reporting[k]
        return self._lost(node, key, early)

    # --- crash accounting: a worker left the run ----------------------------------------
    #
    # What xdist reports crashed, and when its report arrives, decide what is settled when:
    # _unsettled: died running these; xdist reports them crashed right after remove_node,
    #     so their dependents are settled on the next schedule().
    # _crash_due: these had finished, then their worker died: xdist is about to report them
    #     crashed (counted for --maxfail from now, once).
    # _late_blocks: finished, then the worker died in the tick after them (their deferred
    #     teardown): what waits for them is settled anew on the next schedule().

    def _lost(self, node: Any, key: str | None, early: list[str]) -> str | None:
        """``node`` left the run holding ``key`` (or nothing): what xdist reports crashed."""
        if hasattr(node, "workeroutput"):
            self._finished_early(node, key)
            return None
        if early:
            return self._lost_while_reporting(node, key, early[0])
        previous = self.last_on.get(node)
        if previous is not None and (key is None or not self.controller.started(key)):
            return self._lost_between_items(node, key, previous)
        if key is None:
            return None
        return self._lost_running(node, key)

    def _lost_while_reporting(self, node: Any, key: str | None, crashed: str) -> str:
        """The worker died after ``crashed`` passed, while it still sent its reports.

        xdist reports the crash against that job, so the run fails; but the job did pass
        and its dependents may be running already, so all of them go ahead (the job stays
        passed for scheduling). What was sent to the worker next never started: it goes
        back to wait.
        """
        if key is not None:
            self._requeue(key, None)
        self.controller.node_crashed(node)
        self._crash_due.append(crashed)
        self._check_maxfail(crashed, Status.CRASHED)
        return crashed

    def _lost_between_items(self, node: Any, key: str | None, previous: str) -> str:
        """The worker died between items: in the tick, tearing down what ``previous`` left
        set up (its module's or class's fixtures), or while it waited with that teardown
        pending.

        That is ``previous``'s teardown, so the crash is its crash, as plain xdist would say;
        what still waits for it is blocked on the next schedule(), ``key`` (sent, never
        started) included. A job that had passed stays passed for scheduling.
        """
        if key is not None:
            self._requeue(key, None if previous in self.passed else previous)
        self.controller.node_crashed(node)
        self._crash_due.append(previous)
        self._late_blocks.append(previous)
        self._check_maxfail(previous, Status.CRASHED)
        return previous

    def _lost_running(self, node: Any, key: str) -> str:
        """The worker died while running ``key``: xdist reports it as a crash right after
        this returns, so its dependents are settled on the next schedule() call. It counts
        for -x / --maxfail now: nothing more may start meanwhile."""
        self.controller.node_crashed(node)
        self._unsettled.append(key)
        self._check_maxfail(key, Status.CRASHED)
        return key

    def _finished_early(self, node: Any, key: str | None) -> None:
        """``node``'s session ended by itself while ``key`` was marked as sent to it."""
        if key is None:
            return
        if not self.controller.started(key):
            # xdist shut it down: ``key`` arrived after the shutdown command and never
            # started. Like everything else the shutdown leaves unstarted, it is not reported.
            self._requeue(key, None)
            return
        # Its session ended during ``key`` (pytest.exit in a test): nothing is rerun, nothing
        # more starts, and the run ends as a run without xdist would.
        self.done.add(key)
        self.ready.release(key)
        if self.stopped is None:
            worker = getattr(getattr(node, "gateway", None), "id", node)
            self.stopped = f"worker {worker} ended its session (pytest.exit?) during {key!r}"
            if self.running:  # jobs running elsewhere are cancelled, as by -x
                self.controller.abort(list(self.running), self.stopped)
        self.controller.session_ended(node, self.stopped)

    @_locked
    def schedule(self) -> None:
        if not self.collection:
            return
        # Crashes are settled here only, in xdist's loop: after xdist reported them, and
        # never from the side channel's thread (settling blocks jobs, and a blocked job's
        # reason is read from reports the loop has processed).
        while self._unsettled:
            self._finish(self._unsettled.pop(0))
        while self._late_blocks:
            late = self._late_blocks.pop(0)
            if late not in self.passed:
                self._failed_late(late)
        self._block_doomed()
        self._dispatch()

    # --- internals ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Send blocked keys, then the best ready keys, to idle workers."""
        if self.stopped is not None:
            return
        idle = [
            n
            for n in self._nodes
            if n in self.node2collection and n not in self.running and not getattr(n, "shutting_down", False)
        ]
        # A worker still sending a job's reports starts its next job only after them.
        busy = set(self.reporting.values())
        idle.sort(key=lambda n: n in busy)
        while idle and self.skips:
            blocked = self.skips.pop(0)
            node = idle.pop(0)
            self.running[node] = blocked
            self.log("skip", blocked, "on", node)
            if self.on_dispatch is not None:
                self.on_dispatch(blocked, node)
            try:
                self.controller.send_skip(node, blocked)
                node.send_runtest_some([self.index[blocked], self.tick_index])
            except OSError:  # the worker is gone: another reports it
                del self.running[node]
                self.skips.insert(0, blocked)
        while idle and self.ready:
            key = self.ready.take(max_tier=FIRST_TIER if self._first_pass_gate() else None)
            if key is None:
                break  # every ready node waits for a resource held by a running one (or the gate)
            node = idle.pop(0)
            self.running[node] = key
            self.log("dispatch", key, "to", node)
            if self.on_dispatch is not None:
                self.on_dispatch(key, node)
            try:
                self.controller.send_needs(node, key)
                node.send_runtest_some([self.index[key], self.tick_index])
            except OSError:  # the worker is gone (its channel closed): the key waits for another
                del self.running[node]
                self._requeue(key, None)

    def _first_pass_gate(self) -> bool:
        """With -x / --maxfail and a first pass (``--cidag-first-testcases``), nothing but
        first-tier keys starts until every first-pass key has ended: a failure there stops the
        run before the full pass starts, as without xdist. (Without them the full pass fills
        idle workers at once; the first pass still goes first by priority.)"""
        if not self.first_pass or not self.controller.maxfail:
            return False
        if self.first_pass <= self.done:
            self.first_pass = set()  # open for good
            return False
        return True

    def _start(self, collection: list[str]) -> None:
        plan = self.plan
        self.first_pass = plan.first_pass()
        self.collection = collection
        self.index = {key: i for i, key in enumerate(collection)}
        self.tick_index = self.index[plan.tick]
        self.ready = ReadyQueue(priorities(plan), plan.resources)
        for key in plan.run_keys:
            for need in plan.graph.needs.get(key, ()):
                self.dependents.setdefault(need, []).append(key)
        for key in plan.run_keys:
            if self._needs(key):
                self.waiting.add(key)
            else:
                self.ready.push(key)

    def _requeue(self, key: str, crashed: str | None) -> None:
        """``key`` was sent to a worker that never started it: undo the dispatch.

        A blocked key goes back to be skipped, first (never to run). Else, when it needs
        ``crashed`` it waits (settling the crash blocks it), or it is ready (what it needs
        passed, as it was sent).
        """
        if key in self.blocked:
            self.skips.insert(0, key)
            return
        self.ready.release(key)
        if crashed is not None and crashed in self._needs(key):
            self.waiting.add(key)
        else:
            self.ready.push(key)

    def _needs(self, key: str) -> list[str]:
        in_run = self.index
        return [n for n in self.plan.graph.needs.get(key, ()) if n in in_run]

    def _finish(self, key: str) -> None:
        """``key`` ended: free its resources, then release or block what needs it."""
        self.done.add(key)
        self.ready.release(key)
        outcome = self._outcome(key)
        if outcome in FAILURES:
            self._check_maxfail(key, outcome)
        for dep in self._dependents(key):
            if dep in self.waiting:
                self._settle(dep)

    def _dependents(self, key: str) -> list[str]:
        return self.dependents.get(key, [])

    def _settle(self, key: str) -> None:
        """``key`` waits: once everything it needs has ended, it is ready (all passed) or
        doomed (blocked on the next _block_doomed()).

        Not before: its skip names the first need in its own order that did not pass, as
        without xdist, whichever of them ended first here.
        """
        needs = self._needs(key)
        if any(n not in self.done for n in needs):
            return
        if all(self._outcome(n) == Status.PASSED for n in needs):
            self.waiting.discard(key)
            self.ready.push(key)
        elif key not in self._doomed:
            self._doomed.append(key)

    def _failed_late(self, key: str) -> None:
        """``key`` passed, then a teardown error or crash was found after it (in the tick):
        what it released but was not sent yet waits again, and is settled anew."""
        dependents = self._dependents(key)
        self.waiting |= self.ready.remove(dependents)
        for dep in dependents:
            if dep in self.waiting:
                self._settle(dep)

    def _block_doomed(self) -> None:
        """Block the doomed keys (from xdist's loop only), each before what it blocks in
        turn, and queue them for a worker to report skipped. Nothing is blocked after a
        fast-fail stop (as without xdist, nothing is reported after it)."""
        while self._doomed:
            key = self._doomed.pop(0)
            if self.stopped is not None or key not in self.waiting:
                continue
            self.waiting.discard(key)
            self.done.add(key)  # it ends as blocked, whatever worker reports it
            self.blocked.add(key)
            self.controller.block(key)
            self.skips.append(key)
            for dep in self._dependents(key):
                if dep in self.waiting:
                    self._settle(dep)

    def _outcome(self, key: str) -> str | None:
        if key in self.passed:  # passed early: whatever is reported later (a crash) does not undo that
            return Status.PASSED
        return self.controller.outcome(key)

    def _failures(self) -> int:
        """Failed reports so far, and the crashes xdist is about to report."""
        due = sum(1 for k in (*self._unsettled, *self._crash_due) if self.controller.outcome(k) != Status.CRASHED)
        return self.controller.failures() + due

    def _check_maxfail(self, key: str, outcome: str | None) -> None:
        maxfail = self.controller.maxfail
        if maxfail and self.stopped is None and self._failures() >= maxfail:
            self._stop(key, outcome)

    def _stop(self, key: str, outcome: str | None) -> None:
        label = self.plan.graph.nodes[key].label if key in self.plan.graph.nodes else key
        n = self._failures()
        self.stopped = f"stopping after {n} failure{'s' if n != 1 else ''} ({label!r} {outcome})"
        running = [node for node in self.running]
        if running:
            self.controller.abort(running, self.stopped)


def priorities(plan: DagPlan) -> dict[str, tuple[int, float, int]]:
    """(tier, -critical path, declaration index) per key: smaller runs first.

    The first tier is ``--cidag-first`` jobs, the first pass (``--cidag-first-testcases``),
    and what they need; the rest is the second. The critical path of a node is its duration
    plus the longest critical path among its dependents: the work that cannot start before it
    ends. Durations come from earlier runs; unknown ones get the median of the known ones (or
    one second).
    """
    graph = plan.graph
    keys = plan.run_keys
    in_run = set(keys)
    known = [plan.durations[k] for k in keys if k in plan.durations]
    default = statistics.median(known) if known else DEFAULT_DURATION
    path: dict[str, float] = {}
    for key in reversed(graph.order(keys)):
        tail = max((path[d] for d in graph.dependents.get(key, ()) if d in in_run), default=0.0)
        path[key] = plan.durations.get(key, default) + tail
    first_pass = plan.first_pass()
    first = plan.first | first_pass | graph.upstream(first_pass)
    return {k: (FIRST_TIER if k in first else FIRST_TIER + 1, -path[k], i) for i, k in enumerate(keys)}


class SchedulerChoice:
    """What xdist holds until the first worker's collection says whether the run has jobs.

    Then it makes the scheduler the run needs and hands it to xdist (``Controller.use``),
    which talks to it directly from then on: :class:`DagScheduling` for a graph, and for a
    run without jobs the one xdist would have made without this plugin (the user's
    ``pytest_xdist_make_scheduler`` or ``--dist``'s), so such a run behaves as without it.
    Until then it only keeps the nodes xdist adds; a graph that cannot be built stops the
    run (``Controller.fail``) and everything after is a no-op.

    Attributes:
        chosen: the scheduler made, once the first collection arrived.
        failed: the graph could not be built.
    """

    def __init__(self, controller: Controller, log: Callable[..., None] | None = None) -> None:
        self.controller = controller
        self.config = getattr(controller, "config", None)  # as DagScheduling's
        self.log = log
        self._nodes: list[Any] = []
        self.chosen: Any = None
        self.failed = False

    @property
    def nodes(self) -> list[Any]:
        return list(self.chosen.nodes) if self.chosen is not None else list(self._nodes)

    @property
    def collection_is_completed(self) -> bool:
        return self.failed or (self.chosen is not None and bool(self.chosen.collection_is_completed))

    @property
    def tests_finished(self) -> bool:
        return self.failed or (self.chosen is not None and bool(self.chosen.tests_finished))

    @property
    def has_pending(self) -> bool:
        return self.chosen is not None and bool(self.chosen.has_pending)

    def add_node(self, node: Any) -> None:
        if self.chosen is not None:
            self.chosen.add_node(node)
        else:
            self._nodes.append(node)

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        if self.failed:
            return
        if self.chosen is None:
            try:
                plan = self.controller.plan()
            except PlanError as exc:
                self.failed = True
                self.controller.fail(str(exc))
                return
            if plan is None:
                self.chosen = self.controller.make_fallback()
            else:
                self.chosen = DagScheduling(self.controller, plan, self.log)
            for known in self._nodes:
                self.chosen.add_node(known)
            self.controller.use(self.chosen)
        self.chosen.add_node_collection(node, collection)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        if self.chosen is not None:
            self.chosen.mark_test_complete(node, item_index, duration)

    def mark_test_pending(self, item: str) -> None:
        if self.chosen is not None:
            self.chosen.mark_test_pending(item)

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        if self.chosen is not None:
            self.chosen.remove_pending_tests_from_node(node, indices)

    def remove_node(self, node: Any) -> str | None:
        if self.chosen is not None:
            result: str | None = self.chosen.remove_node(node)
            return result
        if node in self._nodes:
            self._nodes.remove(node)
        return None

    def schedule(self) -> None:
        if self.chosen is not None:
            self.chosen.schedule()
