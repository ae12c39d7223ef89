"""Views of a job graph: mermaid, Graphviz dot, JSON (``--cidag-graph``). Pure: no pytest import."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pytest_cidag.core.graph import JobGraph, Node


def _describe(node: Node) -> list[str]:
    extra = []
    if node.timeout:
        extra.append(f"timeout {node.timeout:g}s")
    if node.markers:
        extra.append("markers: " + ", ".join(node.markers))
    return extra


def to_mermaid(graph: JobGraph, keys: Sequence[str]) -> str:
    ids = {k: f"n{i}" for i, k in enumerate(keys)}
    lines = ["flowchart LR"]
    for k in keys:
        node = graph.nodes[k]
        label = "<br/>".join([node.label, *_describe(node)]).replace('"', "#quot;")
        shape = f'["{label}"]' if node.is_job else f'(["{label}"])'
        lines.append(f"    {ids[k]}{shape}")
    lines.extend(f"    {ids[a]} --> {ids[b]}" for a, b in graph.edges(keys))
    return "\n".join(lines) + "\n"


def to_dot(graph: JobGraph, keys: Sequence[str]) -> str:
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph cidag {", "    rankdir=LR;", "    node [shape=box];"]
    for k in keys:
        node = graph.nodes[k]
        label = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in [node.label, *_describe(node)])
        style = "" if node.is_job else ", style=rounded"
        lines.append(f'    {q(node.label)} [label="{label}"{style}];')
    lines.extend(f"    {q(graph.nodes[a].label)} -> {q(graph.nodes[b].label)};" for a, b in graph.edges(keys))
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json_data(graph: JobGraph, keys: Sequence[str]) -> dict[str, object]:
    chosen = set(keys)
    return {
        "jobs": [
            {
                "id": graph.nodes[k].label,
                "nodeid": k,
                "kind": graph.nodes[k].kind,
                "job": graph.nodes[k].job,
                "needs": [graph.nodes[n].label for n in graph.needs.get(k, ()) if n in chosen],
                "markers": list(graph.nodes[k].markers),
                "timeout": graph.nodes[k].timeout,
            }
            for k in keys
        ]
    }


FORMATS = ("mermaid", "dot", "json")


def render(graph: JobGraph | None, keys: Sequence[str], fmt: str) -> str:
    """The graph over ``keys`` (a topological order) in ``fmt``, one of :data:`FORMATS`."""
    if graph is None:  # no jobs: an empty graph, still valid input for its tool
        graph, keys = JobGraph({}), []
    if fmt == "dot":
        return to_dot(graph, keys)
    if fmt == "json":
        return json.dumps(to_json_data(graph, keys), indent=2) + "\n"
    return to_mermaid(graph, keys)
