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
