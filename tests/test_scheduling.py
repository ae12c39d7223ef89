"""DagScheduling against fake worker nodes and a fake controller: pure bookkeeping.

Only through the scheduler's public side: xdist's scheduling protocol, ``passed_early``, and
what reaches the fake nodes (the indices sent) and the fake controller (blocked, aborted,
crashed). What runs where is read off the nodes, never off the scheduler's own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from pytest_cidag.core.graph import JobGraph, Node
from pytest_cidag.core.plan import DagPlan, PlanError
from pytest_cidag.core.scheduling import DagScheduling, SchedulerChoice, priorities
from pytest_cidag.core.status import FAILURES

TICK = "tick"


class FakeNode:
    """A worker: records what it was sent; ``current`` is the key it runs (the test clears
    it when it reports the key finished)."""

    def __init__(self, name: str, collection: Sequence[str]) -> None:
        self.name = name
        self.collection = list(collection)
        self.sent: list[list[int]] = []
        self.current: str | None = None
        self.gateway = name

    def send_runtest_some(self, indices: Sequence[int]) -> None:
        assert self.current is None, f"{self.name} was sent work while it runs {self.current}"
        assert len(indices) == 2 and self.collection[indices[1]] == TICK, "a key, then the tick"
        self.sent.append(list(indices))
        self.current = self.collection[indices[0]]

    def shutdown(self) -> None:  # pragma: no cover - DSession's job
        pass

    def __repr__(self) -> str:
        return self.name


class FakeController:
    def __init__(self, plan: DagPlan | None, maxfail: int = 0) -> None:
        self._plan = plan
        self.maxfail = maxfail
        self.outcomes: dict[str, str] = {}
        self.blocked: list[str] = []
        self.aborted: list[tuple[list[Any], str]] = []
        self.crashed: list[Any] = []
        self.count = 0
        self.fallback = FakeFallback()
        self.failed: str | None = None
        self.late: list[str] = []  # teardown errors found by the next tick
        self.not_started: set[str] = set()  # sent, but their worker died before they began
        self.ended: str | None = None
        self.used: Any = None  # the scheduler handed to xdist
        self.skips_sent: list[tuple[str, str]] = []  # (worker, key) told to skip, in order
        self.needs_sent: list[tuple[str, str]] = []  # (worker, key) given its needs' outputs, in order
        self.gone: set[str] = set()  # workers whose channel is closed

    def use(self, scheduler: Any) -> None:
        self.used = scheduler

    def plan(self) -> DagPlan | None:
        return self._plan

    def fail(self, message: str) -> None:
        self.failed = message

    def make_fallback(self) -> Any:
        return self.fallback

    def outcome(self, key: str) -> str | None:
        return self.outcomes.get(key)

    def failures(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome in FAILURES)

    def started(self, key: str) -> bool:
        return key not in self.not_started

    def session_ended(self, node: Any, message: str) -> None:
        self.ended = message

    def report_late_teardown_errors(self) -> list[str]:
        late, self.late = self.late, []
        for key in late:
            self.outcomes[key] = "errored"
        return late

    def block(self, key: str) -> None:
        self.blocked.append(key)
        self.outcomes[key] = "blocked"

    def send_skip(self, node: Any, key: str) -> None:
        assert key in self.blocked, f"{key} is sent to be skipped without being blocked"
        self.skips_sent.append((node.name, key))

    def send_needs(self, node: Any, key: str) -> None:
        assert node.current is None, f"{key}'s needs are handed to {node.name} after {node.current} was sent"
        if node.name in self.gone:
            raise OSError(f"cannot send to {node.name}")
        self.needs_sent.append((node.name, key))

    def abort(self, nodes: Sequence[Any], reason: str) -> None:
        self.aborted.append((list(nodes), reason))

    def node_crashed(self, node: Any) -> None:
        self.crashed.append(node)

    def collected(self, count: int) -> None:
        self.count = count


class FakeFallback:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.nodes: list[Any] = []
        self.collection_is_completed = True
        self.tests_finished = False
        self.has_pending = True

    def add_node(self, node: Any) -> None:
        self.calls.append(("add_node", node))

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        self.calls.append(("add_node_collection", node))

    def schedule(self) -> None:
        self.calls.append(("schedule", None))

    def mark_test_complete(self, node: Any, index: int, duration: float = 0) -> None:
        self.calls.append(("complete", index))


def make(
    edges: dict[str, list[str]],
    *,
    durations: dict[str, float] | None = None,
    resources: dict[str, tuple[str, ...]] | None = None,
    first: set[str] | None = None,
    maxfail: int = 0,
    workers: int = 2,
) -> tuple[DagScheduling, FakeController, list[FakeNode], list[str]]:
    nodes = [Node(key=k, label=k, needs=tuple(v), job=k) for k, v in edges.items()]
    graph = JobGraph.build(nodes)
    keys = list(edges)
    plan = DagPlan(
        graph=graph,
        run_keys=keys,
        tick=TICK,
        durations=durations or {},
        first=first or set(),
        resources=resources or {},
    )
    controller = FakeController(plan, maxfail)
    choice = SchedulerChoice(controller)
    collection = [*keys, TICK]
    workers_ = [FakeNode(f"gw{i}", collection) for i in range(workers)]
    for w in workers_:
        choice.add_node(w)
    choice.add_node_collection(workers_[0], collection)
    sched = controller.used  # from here on xdist talks to the DAG scheduler itself
    assert isinstance(sched, DagScheduling)
    for w in workers_[1:]:
        sched.add_node_collection(w, collection)
    sched.schedule()
    return sched, controller, workers_, collection


def running(sched: DagScheduling) -> dict[str, str]:
    """Worker name -> the key it runs, for the workers in the run."""
    return {str(node): node.current for node in sched.nodes if node.current is not None}


def finished(sched: DagScheduling) -> bool:
    """``sched.tests_finished``, read anew (mypy would keep a property's narrowed value)."""
    return bool(sched.tests_finished)


def complete(sched: DagScheduling, controller: FakeController, key: str, outcome: str = "passed") -> None:
    """The worker running ``key`` reports it finished with ``outcome``."""
    node = node_of(sched, key)
    controller.outcomes[key] = outcome
    node.current = None
    sched.mark_test_complete(node, node.collection.index(key))


def pass_early(sched: DagScheduling, key: str) -> FakeNode:
    """The worker running ``key`` says it passed, before its reports (see passed_early)."""
    node = node_of(sched, key)
    node.current = None
    sched.passed_early(node, key)
    return node


def report_skips(sched: DagScheduling, controller: FakeController) -> list[str]:
    """Each worker told to skip a blocked key reports it skipped (until none is left);
    returns those keys in the order they were reported."""
    reported: list[str] = []
    while True:
        told = {(name, key) for name, key in controller.skips_sent}
        pending = [n for n in sched.nodes if (n.name, n.current) in told]
        if not pending:
            return reported
        for node in pending:
            key = node.current
            assert key is not None
            complete(sched, controller, key, "blocked")
            reported.append(key)


def node_of(sched: DagScheduling, key: str) -> FakeNode:
    found: list[FakeNode] = [n for n in sched.nodes if n.current == key]
    assert len(found) == 1, f"{key} runs on {found}"
    return found[0]


def test_each_dispatch_is_the_job_then_the_tick() -> None:
    sched, controller, (w0, w1), _collection = make({"a": [], "b": []})
    assert w0.sent == [[0, 2]] and w1.sent == [[1, 2]]
    assert controller.count == 2  # the tick is not counted
    assert not sched.tests_finished


def test_a_worker_that_has_collected_takes_work_before_the_others_have() -> None:
    # xdist calls schedule() only when every ready worker has collected; waiting for that
    # leaves the first worker idle while the others start up.
    nodes = [Node(key=k, label=k, needs=(), job=k) for k in ("a", "b")]
    plan = DagPlan(graph=JobGraph.build(nodes), run_keys=["a", "b"], tick=TICK, durations={}, first=set(), resources={})
    sched = DagScheduling(FakeController(plan), plan)
    w0, w1 = FakeNode("gw0", ["a", "b", TICK]), FakeNode("gw1", ["a", "b", TICK])
    sched.add_node(w0)
    sched.add_node(w1)
    sched.add_node_collection(w0, ["a", "b", TICK])
    assert not sched.collection_is_completed
    assert w0.sent == [[0, 2]] and running(sched) == {"gw0": "a"}
    assert not sched.tests_finished
    sched.add_node_collection(w1, ["a", "b", TICK])
    sched.schedule()
    assert w1.sent == [[1, 2]]


def test_dependents_start_only_after_their_needs_passed() -> None:
    sched, controller, (_w0, _w1), _ = make({"a": [], "b": ["a"], "c": ["a", "d"], "d": []})
    assert running(sched) == {"gw0": "d", "gw1": "a"} or running(sched) == {"gw0": "a", "gw1": "d"}
    complete(sched, controller, "a")
    assert "b" in running(sched).values()
    assert "c" not in running(sched).values()  # d still runs
    complete(sched, controller, "d")
    assert "c" in running(sched).values()
    complete(sched, controller, "b")
    complete(sched, controller, "c")
    assert sched.tests_finished


def test_the_tick_completion_is_ignored() -> None:
    sched, _controller, (w0, _w1), collection = make({"a": [], "b": [], "c": []})
    before = running(sched)
    sched.mark_test_complete(w0, collection.index(TICK))
    assert running(sched) == before and [len(w.sent) for w in sched.nodes] == [1, 1]


def test_failure_blocks_downstream_in_order() -> None:
    sched, controller, _, _ = make({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["d", "c"]}, workers=1)
    assert running(sched) == {"gw0": "a"}  # the longest path starts first
    complete(sched, controller, "a", "failed")
    assert controller.blocked == ["b", "c"]  # each before what it blocks in turn
    # A worker reports each blocked key skipped (through pytest's protocol, as without
    # xdist), before it takes unrelated work.
    assert running(sched) == {"gw0": "b"}
    assert report_skips(sched, controller) == ["b", "c"]
    assert controller.skips_sent == [("gw0", "b"), ("gw0", "c")]
    assert running(sched) == {"gw0": "d"}  # unrelated work goes on
    complete(sched, controller, "d")
    # e is blocked once all it needs has ended, so its skip names the same need (the first
    # in its own order that did not pass) as without xdist, whatever ended first
    assert controller.blocked == ["b", "c", "e"]
    assert not sched.tests_finished  # e is still to be reported
    assert report_skips(sched, controller) == ["e"]
    assert sched.tests_finished


def test_each_job_is_given_its_needs_outputs_first_and_a_skip_is_not() -> None:
    # (A worker on another host has a run directory of its own: the controller sends it
    # what the job's needs left in the run directory, right before the job.)
    sched, controller, (w0,), _ = make({"a": [], "b": ["a"], "c": ["b"], "d": []}, workers=1)
    complete(sched, controller, "a")
    complete(sched, controller, "b", "failed")
    report_skips(sched, controller)
    complete(sched, controller, "d")
    assert controller.needs_sent == [("gw0", "a"), ("gw0", "b"), ("gw0", "d")]
    assert controller.skips_sent == [("gw0", "c")]
    assert [w0.collection[i] for i, _tick in w0.sent] == ["a", "b", "c", "d"]


def test_a_job_whose_needs_cannot_reach_its_worker_is_not_lost() -> None:
    sched, controller, (w0,), _ = make({"a": [], "b": ["a"]}, workers=1)
    controller.gone.add("gw0")  # its channel closed; xdist has not removed it yet
    complete(sched, controller, "a")
    assert running(sched) == {} and [w0.collection[i] for i, _tick in w0.sent] == ["a"]
    assert sched.has_pending and not finished(sched)
    controller.gone.clear()  # (a replacement worker, as far as the scheduler can tell)
    sched.schedule()
    assert running(sched) == {"gw0": "b"}


def test_a_skip_waits_for_every_need_to_end() -> None:
    # x needs f and s: s is skipped at once, f fails later. x is reported only then.
    sched, controller, _, _ = make({"f": [], "s": [], "x": ["f", "s"], "y": ["x"]}, workers=2)
    complete(sched, controller, "s", "skipped")
    assert controller.blocked == []
    complete(sched, controller, "f", "failed")
    assert controller.blocked == ["x", "y"]
    assert report_skips(sched, controller) == ["x", "y"]
    assert sched.tests_finished


def test_critical_path_first_then_declaration_order() -> None:
    edges = {"quick": [], "short": [], "head": [], "tail": ["head"]}
    durations = {"quick": 1.0, "short": 2.0, "head": 1.0, "tail": 5.0}
    sched, controller, _, _ = make(edges, durations=durations, workers=1)
    assert running(sched) == {"gw0": "head"}  # 1 + 5 beats 2 and 1
    plan = controller.plan()
    assert plan is not None
    prio = priorities(plan)
    assert prio["head"] < prio["tail"] < prio["short"] < prio["quick"]


def test_unknown_durations_use_the_median() -> None:
    edges: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    _, controller, _, _ = make(edges, durations={"a": 1.0, "c": 3.0}, workers=1)
    plan = controller.plan()
    assert plan is not None
    prio = priorities(plan)
    assert prio["b"][1] == -2.0


def test_first_jobs_and_their_upstream_go_first() -> None:
    edges: dict[str, list[str]] = {"long": [], "up": [], "pick": ["up"]}
    sched, _, _, _ = make(edges, durations={"long": 100.0, "up": 1, "pick": 1}, first={"up", "pick"}, workers=1)
    assert running(sched) == {"gw0": "up"}


def test_resources_are_never_held_twice() -> None:
    edges: dict[str, list[str]] = {"p1": [], "p2": [], "other": []}
    res = {"p1": ("port:8701",), "p2": ("port:8701", "gpu")}
    sched, controller, _, _ = make(edges, resources=res, workers=3)
    assert sorted(running(sched).values()) == ["other", "p1"]
    complete(sched, controller, "p1")
    assert "p2" in running(sched).values()


def test_maxfail_stops_dispatch_and_aborts_running_jobs() -> None:
    sched, controller, (_w0, w1), _ = make({"a": [], "b": [], "c": [], "d": ["a"]}, maxfail=1)
    complete(sched, controller, "a", "failed")
    assert controller.aborted == [([w1], "stopping after 1 failure ('a' failed)")]
    assert "c" not in running(sched).values()
    assert not finished(sched)  # b is still being killed
    complete(sched, controller, "b", "skipped")
    assert finished(sched)
    assert controller.blocked == []  # after the stop, nothing more is reported


def test_worker_crash_returns_the_job_and_blocks_dependents_later() -> None:
    sched, controller, (_w0, _w1), collection = make({"a": [], "b": [], "c": ["a"]})
    crashed_node = node_of(sched, "a")
    assert sched.remove_node(crashed_node) == "a"
    assert controller.crashed == [crashed_node]
    controller.outcomes["a"] = "crashed"  # xdist reports the crash after remove_node
    replacement = FakeNode("gw2", collection)
    sched.add_node(replacement)
    sched.add_node_collection(replacement, collection)
    sched.schedule()
    assert controller.blocked == ["c"]


def test_normal_remove_node_returns_none() -> None:
    sched, controller, (w0, _w1), _ = make({"a": []})
    complete(sched, controller, "a")
    w0.workeroutput = {"exitstatus": 0}  # type: ignore[attr-defined]  # it finished normally
    assert sched.remove_node(w0) is None
    assert controller.crashed == []


def test_a_crash_in_the_last_deferred_teardown_is_the_last_items() -> None:
    # Nothing was sent after t: its worker died in the final tick (session teardown), or
    # idle with t's teardown pending. The crash is t's.
    sched, controller, (w0, _w1), _ = make({"t": []})
    complete(sched, controller, "t")
    assert sched.remove_node(w0) == "t"
    assert controller.crashed == [w0]


def test_a_crash_in_the_tick_holds_back_what_was_sent_next() -> None:
    # d (needs t) was sent to t's worker, which died tearing down t's module fixtures before
    # d began: the crash is t's, and d is skipped, not run elsewhere.
    sched, controller, (_w0, _w1), _ = make({"t": [], "slow": [], "d": ["t"]}, durations={"slow": 9}, workers=2)
    t_node = node_of(sched, "t")
    complete(sched, controller, "t")
    assert running(sched)[str(t_node)] == "d"
    controller.not_started.add("d")
    assert sched.remove_node(t_node) == "t"
    controller.outcomes["t"] = "crashed"  # xdist's report
    sched.schedule()
    assert controller.blocked == ["d"]


def test_a_late_teardown_error_also_blocks_what_is_ready_but_not_sent() -> None:
    # p passed: d1 goes to p's worker at once, d2 waits for a free one. Then the tick after p
    # finds p's teardown error: d1 runs on, d2 is blocked.
    edges = {"long": [], "p": [], "d1": ["p"], "d2": ["p"]}
    sched, controller, _, collection = make(edges, durations={"long": 9}, workers=2)
    p_node = node_of(sched, "p")
    complete(sched, controller, "p")
    assert set(running(sched).values()) == {"d1", "long"}  # d2 is ready, no worker is free
    assert running(sched)[str(p_node)] == "d1"
    controller.late = ["p"]
    sched.mark_test_complete(p_node, collection.index(TICK))
    assert controller.blocked == ["d2"]
    complete(sched, controller, "d1")
    assert report_skips(sched, controller) == ["d2"]  # sent to be skipped, never to run
    complete(sched, controller, "long")
    assert running(sched) == {} and finished(sched)


def test_a_worker_whose_session_ended_during_a_key_does_not_rerun_it() -> None:
    # pytest.exit in a test ends that worker's session: the test is not sent elsewhere, and
    # nothing more starts.
    sched, controller, (w0, w1), _ = make({"a": [], "b": [], "c": []}, workers=2)
    key = running(sched)["gw0"]
    w0.workeroutput = {"exitstatus": 3}  # type: ignore[attr-defined]
    assert sched.remove_node(w0) is None
    assert controller.ended == f"worker gw0 ended its session (pytest.exit?) during {key!r}"
    assert controller.aborted == [([w1], controller.ended)]  # what runs elsewhere is cancelled
    complete(sched, controller, running(sched)["gw1"], "skipped")
    assert running(sched) == {} and finished(sched)  # neither the key nor c was sent again
    assert len(w1.sent) == 1


def test_a_run_without_jobs_hands_xdist_the_scheduler_it_would_have_used() -> None:
    # Nodes added before the first collection are handed over too; from then on xdist talks
    # to that scheduler, not to the choice.
    controller = FakeController(None)
    choice = SchedulerChoice(controller)
    w = FakeNode("gw0", ["test_a.py::test_x"])
    choice.add_node(w)
    choice.add_node_collection(w, ["test_a.py::test_x"])
    assert controller.used is controller.fallback
    assert controller.fallback.calls == [("add_node", w), ("add_node_collection", w)]


def test_a_graph_error_stops_the_run_and_ends_scheduling() -> None:
    class Broken(FakeController):
        def plan(self) -> DagPlan | None:
            raise PlanError("cidag: the jobs' needs form a cycle: a -> b -> a")

    controller = Broken(None)
    choice = SchedulerChoice(controller)
    choice.add_node(FakeNode("gw0", []))
    choice.add_node_collection(FakeNode("gw0", []), ["a", TICK])
    assert controller.failed == "cidag: the jobs' needs form a cycle: a -> b -> a"
    assert controller.used is None
    assert choice.collection_is_completed and choice.tests_finished


def test_different_collections_are_an_error() -> None:
    sched, _, _, _collection = make({"a": []}, workers=1)
    with pytest.raises(RuntimeError, match="collected different jobs"):
        sched.add_node_collection(FakeNode("gw9", ["b", TICK]), ["b", TICK])


def test_a_passed_job_releases_its_dependents_before_its_reports_arrive() -> None:
    # The worker says "passed" as soon as the job's teardown passed; its reports (and
    # xdist's completion event) follow while the dependent already runs.
    sched, controller, _, collection = make({"a": [], "b": ["a"], "c": []})
    worker = pass_early(sched, "a")
    assert running(sched)[str(worker)] == "b"
    assert worker.sent[-1] == [collection.index("b"), collection.index(TICK)]
    assert not sched.tests_finished
    controller.outcomes["a"] = "passed"
    sched.mark_test_complete(worker, collection.index("a"))  # the late completion changes nothing
    assert running(sched)[str(worker)] == "b"
    complete(sched, controller, "b")
    complete(sched, controller, "c")
    assert sched.tests_finished


def test_the_run_ends_only_after_the_last_reports_arrived() -> None:
    sched, controller, (w0,), collection = make({"a": []}, workers=1)
    pass_early(sched, "a")
    assert running(sched) == {} and not sched.tests_finished
    controller.outcomes["a"] = "passed"
    sched.mark_test_complete(w0, collection.index("a"))
    assert sched.tests_finished


def test_an_idle_worker_is_preferred_over_one_still_reporting() -> None:
    sched, _, _, collection = make({"a": [], "b": ["a"]}, workers=3)
    worker = pass_early(sched, "a")
    assert node_of(sched, "b") is not worker
    assert worker.sent == [[collection.index("a"), collection.index(TICK)]]


def test_a_stale_or_repeated_early_pass_is_ignored() -> None:
    sched, _, (w0, w1), _ = make({"a": [], "b": [], "c": ["a"]})
    a_node = node_of(sched, "a")
    other = w1 if a_node is w0 else w0
    sched.passed_early(other, "a")  # not where a runs
    assert "c" not in running(sched).values()
    pass_early(sched, "a")
    sched.passed_early(a_node, "a")  # repeated: a_node now runs c, and is sent nothing more
    assert list(running(sched).values()).count("c") == 1
    assert sum(len(w.sent) for w in sched.nodes) == 3


def test_a_worker_lost_while_reporting_is_that_jobs_crash() -> None:
    # Nothing else was sent to it: the job it was reporting is the one xdist reports crashed,
    # and under -x that crash stops the run at once, before xdist has even reported it.
    sched, controller, _, _ = make({"a": [], "z": []}, workers=2, maxfail=1)
    z_node = node_of(sched, "z")
    worker = pass_early(sched, "a")
    assert sched.remove_node(worker) == "a"
    assert controller.crashed == [worker]
    assert controller.aborted == [([z_node], "stopping after 1 failure ('a' crashed)")]
    controller.outcomes["a"] = "crashed"
    sched.schedule()
    complete(sched, controller, "z", "skipped")
    assert sched.tests_finished


def test_a_crash_xdist_reports_later_is_counted_once() -> None:
    # The crash counts for --maxfail when the worker is lost, before xdist's report; once
    # the report is in, it still counts once: one more failure is needed to stop.
    sched, controller, _, _ = make({"a": [], "z": []}, workers=2, maxfail=2)
    worker = pass_early(sched, "a")
    assert sched.remove_node(worker) == "a"
    controller.outcomes["a"] = "crashed"
    sched.schedule()
    assert controller.aborted == []  # counted twice, it would cancel z
    complete(sched, controller, "z")
    assert sched.tests_finished


def test_a_job_sent_to_a_worker_that_died_reporting_never_started() -> None:
    # b (needs a) was sent to the worker that then died sending a's reports. xdist reports a
    # crashed, but a had passed and its dependents may be running already: they all go
    # ahead, b included, on another worker.
    edges = {"a": [], "b": ["a"], "c": [], "long": []}
    sched, controller, _, collection = make(edges, durations={"long": 9, "a": 5, "c": 1, "b": 1}, workers=2)
    worker = pass_early(sched, "a")
    assert running(sched)[str(worker)] == "b"
    assert sched.remove_node(worker) == "a"
    controller.outcomes["a"] = "crashed"  # xdist's crash report
    replacement = FakeNode("gw9", collection)
    sched.add_node(replacement)
    sched.add_node_collection(replacement, collection)
    sched.schedule()
    assert controller.blocked == []
    assert running(sched)["gw9"] == "b"


def test_a_finished_worker_returns_what_it_never_started() -> None:
    # A job sent to a worker just as xdist shut it down never started: when the worker
    # finishes normally, it is not a crash (xdist would stop with an INTERNALERROR).
    sched, controller, (w0, _w1), _ = make({"a": [], "b": []}, workers=2)
    controller.not_started.add(running(sched)["gw0"])
    w0.workeroutput = {"exitstatus": 0}  # type: ignore[attr-defined]
    assert sched.remove_node(w0) is None
    assert controller.crashed == [] and controller.ended is None


def test_no_dispatch_to_a_worker_that_shuts_down() -> None:
    sched, controller, (_w0, w1), _ = make({"a": [], "b": [], "c": []}, workers=2)
    w1.shutting_down = True  # type: ignore[attr-defined]
    complete(sched, controller, running(sched)["gw1"])
    assert "gw1" not in running(sched) and w1.sent == [[1, 3]]
    complete(sched, controller, running(sched)["gw0"])
    assert running(sched) == {"gw0": "c"}


def test_crashes_are_settled_only_in_xdists_loop() -> None:
    # Settling a crash blocks jobs, whose reasons come from reports the controller has
    # processed: never from the side channel's thread, where passed_early runs.
    sched, controller, _, _ = make({"x": [], "y": ["x"], "a": []}, durations={"x": 2, "a": 1}, workers=2)
    x_node = node_of(sched, "x")
    assert sched.remove_node(x_node) == "x"
    controller.outcomes["x"] = "crashed"
    pass_early(sched, "a")
    assert controller.blocked == []
    sched.schedule()
    assert controller.blocked == ["y"]


def test_a_worker_still_collecting_does_not_hold_up_the_others() -> None:
    # xdist adds a worker when it is ready and hands over its collection later; meanwhile
    # the workers that have collected go on taking jobs.
    sched, controller, _, collection = make({"a": [], "b": ["a"]}, workers=1)
    late = FakeNode("gw1", collection)
    sched.add_node(late)
    assert not sched.collection_is_completed
    complete(sched, controller, "a")
    assert running(sched) == {"gw0": "b"}
    assert late.sent == []
    sched.add_node_collection(late, collection)
    complete(sched, controller, "b")
    assert sched.tests_finished


def test_a_teardown_error_found_by_the_tick_blocks_what_still_waits() -> None:
    # t passed, and dep waits for slow too. Then the tick after t tears down t's module
    # fixture, which fails: t errored, so dep is blocked (what t released earlier runs on).
    edges = {"t": [], "slow": [], "dep": ["t", "slow"]}
    sched, controller, _, collection = make(edges, durations={"slow": 9, "t": 1, "dep": 1}, workers=2, maxfail=2)
    t_node = node_of(sched, "t")
    complete(sched, controller, "t")
    controller.late = ["t"]
    sched.mark_test_complete(t_node, collection.index(TICK))
    assert controller.aborted == []  # one failure; --maxfail=2: slow runs on
    assert controller.blocked == []  # dep still waits for slow
    complete(sched, controller, "slow")
    assert controller.blocked == ["dep"]
    assert report_skips(sched, controller) == ["dep"]
    assert sched.tests_finished


def test_a_key_sent_before_a_crash_blamed_on_an_older_need_is_ready_again() -> None:
    # t (a Python test) -> m (a job) -> k. t passed on gw1, m ran on gw0 and passed early, so
    # k went to gw1, whose worker then died before k began: the crash is t's (its deferred
    # teardown). k needs only m, which passed: it runs elsewhere (were it to wait for t,
    # nothing would ever settle it).
    edges = {"x": [], "t": [], "m": ["t"], "k": ["m"]}
    sched, controller, _, _ = make(edges, durations={"x": 5, "t": 1, "m": 1, "k": 1}, workers=2)
    assert running(sched) == {"gw0": "x", "gw1": "t"}
    complete(sched, controller, "x")
    complete(sched, controller, "t")
    assert running(sched) == {"gw0": "m"}
    pass_early(sched, "m")
    assert running(sched) == {"gw1": "k"}  # gw0 still sends m's reports
    gw1 = node_of(sched, "k")
    controller.not_started.add("k")
    assert sched.remove_node(gw1) == "t"
    controller.outcomes["t"] = "crashed"  # xdist's report
    sched.schedule()
    assert controller.blocked == []
    assert running(sched) == {"gw0": "k"}


def test_a_blocked_key_needs_no_resource_and_goes_before_ready_work() -> None:
    # b holds port:1 while p (needs a) is blocked: p is reported on the free worker at
    # once (a skip takes no resource), before q, which waits for the port.
    edges: dict[str, list[str]] = {"a": [], "b": [], "p": ["a"], "q": []}
    res: dict[str, tuple[str, ...]] = {"b": ("port:1",), "p": ("port:1",), "q": ("port:1",)}
    sched, controller, _, _ = make(edges, resources=res, durations={"a": 2, "b": 9, "q": 1}, workers=2)
    assert running(sched) == {"gw0": "b", "gw1": "a"}
    complete(sched, controller, "a", "failed")
    assert running(sched) == {"gw0": "b", "gw1": "p"}
    assert report_skips(sched, controller) == ["p"]
    assert running(sched) == {"gw0": "b"}  # q waits for the port
    complete(sched, controller, "b")
    assert running(sched) == {"gw0": "q"}


def test_nothing_is_sent_to_be_skipped_after_a_fast_fail_stop() -> None:
    # As without xdist: -x stops the run, and what the failure blocked is not reported.
    sched, controller, _, _ = make({"a": [], "b": ["a"], "z": []}, workers=2, maxfail=1)
    z_node = node_of(sched, "z")
    complete(sched, controller, "a", "failed")
    assert controller.aborted == [([z_node], "stopping after 1 failure ('a' failed)")]
    assert controller.skips_sent == []
    complete(sched, controller, "z", "skipped")
    assert sched.tests_finished


def test_a_blocked_key_whose_worker_died_before_it_began_is_still_only_skipped() -> None:
    # d (needs f, which failed) was sent to gw0 to be skipped; gw0 died in the tick after o
    # (o's deferred teardown) before d began. d goes to another worker, again to be skipped:
    # never to run, and never holding its resources (found in review: it ran, and a job that
    # needed the same resource then waited forever).
    edges: dict[str, list[str]] = {"t": [], "f": [], "d": ["f"], "o": ["t"]}
    res: dict[str, tuple[str, ...]] = {"d": ("r",), "o": ("r",)}
    sched, controller, (w0, _w1), _ = make(edges, first={"t"}, resources=res, durations={"f": 5, "o": 9})
    assert running(sched) == {"gw0": "t", "gw1": "f"}
    complete(sched, controller, "t")
    assert running(sched) == {"gw0": "o", "gw1": "f"}
    complete(sched, controller, "o")
    complete(sched, controller, "f", "failed")
    assert controller.skips_sent == [("gw0", "d")]
    controller.not_started.add("d")
    w0.current = None
    assert sched.remove_node(w0) == "o"  # the crash is o's: it died in the tick after o
    controller.outcomes["o"] = "crashed"
    sched.schedule()
    assert running(sched) == {"gw1": "d"}
    assert controller.skips_sent == [("gw0", "d"), ("gw1", "d")]
    assert report_skips(sched, controller) == ["d"]
    assert sched.tests_finished
