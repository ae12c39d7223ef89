"""What the xdist controller schedules, and how it travels from a worker. Pure: no pytest import.

The controller never collects: a worker sends its graph (after its own selection) over the
side channel, as plain data, and the controller rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_cidag.core.graph import JobGraph, Node


class PlanError(Exception):
    """The workers could not build the graph (a cycle, an unknown need): nothing runs."""


@dataclass
class DagPlan:
    """What the scheduler runs: the graph, the keys selected (in run order), their extras."""

    graph: JobGraph
    run_keys: list[str]
    tick: str  # the node id of the no-op tick item
    durations: dict[str, float] = field(default_factory=dict)
    first: set[str] = field(default_factory=set)
    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def first_pass(self) -> set[str]:
        """The run's first-pass keys (``--cidag-first-testcases``)."""
        return {k for k in self.run_keys if self.graph.nodes[k].first_pass_of is not None}


def node_to_data(node: Node, resources: tuple[str, ...]) -> dict[str, Any]:
    return {
        "key": node.key,
        "label": node.label,
        "needs": list(node.needs),
        "job": node.job,
        "aliases": list(node.aliases),
        "where": node.where,
        "markers": list(node.markers),
        "timeout": node.timeout,
        "first_pass_of": node.first_pass_of,
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
        first_pass_of=data["first_pass_of"],
    )


#: The resource both passes of one leg hold (``--cidag-first-testcases``), after its node id.
PASS_LOCK = "cidag:passes-of:"


def with_pass_locks(graph: JobGraph, resources: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """``resources`` plus one the two passes of a leg both hold, so they never run at once.

    A job's script is written to run once at a time (a virtualenv in the run directory, a
    build directory in the checkout); its first pass and its full pass are independent items,
    not two copies to run side by side. Only the pair waits: other jobs fill the workers.
    """
    out = dict(resources)
    for key, node in graph.nodes.items():
        if node.first_pass_of is not None:
            lock = PASS_LOCK + node.first_pass_of
            for holder in (key, node.first_pass_of):
                out[holder] = (*out.get(holder, ()), lock)
    return out
