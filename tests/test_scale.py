"""The cost per job must not grow with the size of the run: no per-job step may walk
every key of the run or the graph. Counted, not timed: how often the run's keys or the
graph are walked."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cidag.core import graph as graph_module
from pytest_cidag.core.graph import JobGraph, Node
from pytest_cidag.core.plan import DagPlan
from pytest_cidag.core.scheduling import DagScheduling
from tests.conftest import JobWriter
from tests.test_scheduling import TICK, FakeController, FakeNode, complete

#: A bound independent of the number of jobs: each whole-run step (ordering, priorities,
#: indices) walks the keys a few times, once per run.
WHOLE_RUN_WALKS = 10


class CountingKeys(list[str]):
    """A list of keys that counts how often it is walked (iterated or searched)."""

    walks = 0

    def __iter__(self) -> Iterator[str]:
        type(self).walks += 1
        return super().__iter__()

    def __contains__(self, key: object) -> bool:
        type(self).walks += 1
        return super().__contains__(key)


def layered(layers: int, width: int) -> dict[str, list[str]]:
    """Layers of ``width`` jobs, each needing up to 3 jobs of the layer below."""
    edges: dict[str, list[str]] = {}
    for layer in range(layers):
        for i in range(width):
            below = [f"j{layer - 1}-{(i + d) % width}" for d in range(3)] if layer else []
            edges[f"j{layer}-{i}"] = below
    return edges


def test_the_scheduler_walks_the_run_a_bounded_number_of_times() -> None:
    edges = layered(layers=10, width=20)
    graph = JobGraph.build([Node(key=k, label=k, needs=tuple(v), job=k) for k, v in edges.items()])
    CountingKeys.walks = 0
    plan = DagPlan(graph=graph, run_keys=CountingKeys(edges), tick=TICK)
    controller = FakeController(plan)
    sched = DagScheduling(controller, plan)
    collection = [*edges, TICK]
    workers = [FakeNode(f"gw{i}", collection) for i in range(2)]
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, collection)
    # the first layer's first job fails: what needs it is blocked, the rest runs
    failing = "j0-0"
    while not sched.tests_finished:
        for node in workers:
            key = node.current
            if key is not None and key in {k for _, k in controller.skips_sent}:
                complete(sched, controller, key, "blocked")
            elif key is not None:
                complete(sched, controller, key, "failed" if key == failing else "passed")
    assert controller.skips_sent, "nothing was blocked: the blocking path was not taken"
    assert CountingKeys.walks <= WHOLE_RUN_WALKS, f"{CountingKeys.walks} walks over {len(edges)} keys"


def test_a_run_walks_its_keys_a_bounded_number_of_times(pytester: pytest.Pytester, job: JobWriter) -> None:
    """Through a real run without xdist: each job's setup (what blocks it) and environment
    (the outputs of what it needs) look its needs up without walking the whole run."""
    jobs = 30
    for i in range(jobs):
        job(f"j{i:02d}", f'echo "n={i}" >> "$CIDAG_OUTPUT"', needs=f'["j{i - 1:02d}"]' if i else "[]")
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest
            from pytest_cidag.keys import RUN_KEY
            from tests.test_scale import CountingKeys

            @pytest.hookimpl(trylast=True)
            def pytest_collection_finish(session):
                run = session.config.stash[RUN_KEY]
                CountingKeys.walks = 0
                run.run_keys = CountingKeys(run.run_keys)
            """
        )
    )
    CountingKeys.walks = -1
    result = pytester.runpytest("-n", "0", "-p", "no:randomly")  # in this process: CountingKeys is this one
    result.assert_outcomes(passed=jobs)
    assert 0 <= CountingKeys.walks <= WHOLE_RUN_WALKS, f"{CountingKeys.walks} walks over {jobs} keys"


def test_a_failure_that_blocks_many_is_recorded_in_one_walk(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a failure held back (for --lf) is found in one walk down the graph, not in a
    walk up from each blocked job (quadratic when one early failure blocks the whole run)."""
    jobs = 30
    job("j00", "exit 1")
    for i in range(1, jobs):
        job(f"j{i:02d}", "true", needs=f'["j{i - 1:02d}"]')
    walks = 0
    real = graph_module._reach

    def counting(*args: Any, **kwargs: Any) -> set[str]:
        nonlocal walks
        walks += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(graph_module, "_reach", counting)
    result = pytester.runpytest("-n", "0", "-p", "no:randomly")
    result.assert_outcomes(failed=1, skipped=jobs - 1)
    assert 0 < walks <= WHOLE_RUN_WALKS, f"{walks} walks of the graph for {jobs} jobs"
    assert "j29" in json.loads((pytester.path / ".pytest_cache/v/cidag/blocked").read_text())[-1]
