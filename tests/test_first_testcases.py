"""``--cidag-first-testcases``: a narrowed first pass, then the whole selection, one result.

The first pass's items are their own (``suite@first[3.11]``), run with CIDAG_TESTCASES set to
the expression, go first by priority (and, with -x, before anything of the full pass starts),
and fail the run on their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cidag.core.graph import GraphError, JobGraph, Node
from pytest_cidag.core.jobspec import JobSpecError, parse_text
from pytest_cidag.core.plan import DagPlan, with_pass_locks
from pytest_cidag.core.scheduling import DagScheduling, SchedulerChoice
from tests.test_scheduling import TICK, FakeController, FakeNode, complete, running

# --- the parts, without pytest runs -----------------------------------------------------------


def test_testcases_in_the_block() -> None:
    spec = parse_text("# /// cidag\n# testcases = true\n# matrix = { py = ['3.12'] }\n# ///\n", Path("t.sh"))
    assert spec.testcases
    assert [leg.first_pass_id for leg in spec.legs()] == ["t@first[3.12]"]
    assert "testcases" not in spec.block_data()  # not part of a cache key: it changes nothing the job does
    with pytest.raises(JobSpecError, match=r"'testcases' must be true or false, got a string: 'yes'"):
        parse_text("# /// cidag\n# testcases = 'yes'\n# ///\n", Path("t.sh"))
    # a first-pass id is longer, and names files too
    name = "n" * 242  # 247 characters at most
    parse_text(f"# /// cidag\n# name = '{name}'\n# ///\n", Path("t.sh"))
    with pytest.raises(JobSpecError, match="is 248 characters long"):
        parse_text(f"# /// cidag\n# name = '{name}'\n# testcases = true\n# ///\n", Path("t.sh"))


def test_nothing_needs_a_first_pass_node() -> None:
    nodes = [
        Node(key="t.sh::t@first", label="t@first", job="t", first_pass_of="t.sh::t"),
        Node(key="t.sh::t", label="t", job="t"),
        Node(key="d.sh::d", label="d", job="d", needs=("t",)),
    ]
    graph = JobGraph.build(nodes)
    assert graph.needs["d.sh::d"] == ("t.sh::t",)  # the full pass only
    for name in ("t@first", "t.sh::t@first"):
        with pytest.raises(GraphError, match=f"needs '{name}', which is not"):
            JobGraph.build([*nodes[:2], Node(key="e.sh::e", label="e", job="e", needs=(name,))])


def passes(maxfail: int) -> tuple[DagScheduling, FakeController]:
    """Two workers; up -> t@first and t (the two passes of t); other, alone."""
    nodes = [
        Node(key="up", label="up", job="up"),
        Node(key="t", label="t", job="t", needs=("up",)),  # before its first pass: only the tier puts that first
        Node(key="t@first", label="t@first", job="t", needs=("up",), first_pass_of="t"),
        Node(key="other", label="other", job="other"),
    ]
    graph = JobGraph.build(nodes)
    keys = list(graph.nodes)
    plan = DagPlan(graph=graph, run_keys=keys, tick=TICK, resources=with_pass_locks(graph, {}))
    controller = FakeController(plan, maxfail)
    choice = SchedulerChoice(controller)
    workers = [FakeNode(f"gw{i}", [*keys, TICK]) for i in range(2)]
    for worker in workers:
        choice.add_node(worker)
        choice.add_node_collection(worker, [*keys, TICK])
    sched = controller.used
    assert isinstance(sched, DagScheduling)
    sched.schedule()
    return sched, controller


def test_the_full_pass_fills_idle_workers_without_x() -> None:
    sched, controller = passes(maxfail=0)
    assert running(sched) == {"gw0": "up", "gw1": "other"}
    complete(sched, controller, "up")
    complete(sched, controller, "other")
    # both ready; the first pass goes first, and the two passes of t never run at once
    assert running(sched) == {"gw0": "t@first"}
    complete(sched, controller, "t@first", "failed")
    assert running(sched) == {"gw0": "t"}  # independent of its first pass


def test_with_x_only_the_first_pass_starts_until_it_ended() -> None:
    sched, controller = passes(maxfail=1)
    assert running(sched) == {"gw0": "up"}  # other waits, though a worker is idle
    complete(sched, controller, "up")
    assert running(sched) == {"gw0": "t@first"}
    complete(sched, controller, "t@first")
    assert sorted(running(sched).values()) == ["other", "t"]


def test_with_x_a_first_pass_failure_starts_nothing_more() -> None:
    sched, controller = passes(maxfail=1)
    complete(sched, controller, "up")
    complete(sched, controller, "t@first", "failed")
    assert running(sched) == {}
    assert sched.tests_finished
