"""The job graph: resolve ``needs``, detect cycles, order, closures. Pure: no pytest import.

Nodes are keyed by pytest node id. A node is a job leg (``cijobs/t.sh::test[3.12]``) or a
Python test that takes part through pytest-dependency. A ``needs`` entry names

1. a job: all of its legs (``test``),
2. one leg (``test[3.12]``),
3. a Python test by its pytest-dependency name, or
4. any node by its node id.

Graph algorithms come from :mod:`graphlib`; this module adds the resolution rules, the
error messages and the "declaration order where the graph allows" ordering.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter

from pytest_cidag.core.jobspec import did_you_mean


@dataclass(frozen=True)
class Node:
    """One vertex. ``label`` is what messages call it (the leg id for jobs)."""

    key: str  # the pytest node id
    label: str
    needs: tuple[str, ...] = ()  # raw entries, resolved by the graph
    job: str | None = None  # the job's name; None for a Python test
    aliases: tuple[str, ...] = ()  # other names (a pytest-dependency name)
    where: str = ""  # "file:line", for duplicate-name messages
    markers: tuple[str, ...] = ()
    timeout: float | None = None
    #: For a first-pass node (``--cidag-first-testcases``): the key of the node it runs
    #: narrowed. Nothing can need it by name: dependents need the full pass only.
    first_pass_of: str | None = None

    @property
    def is_job(self) -> bool:
        return self.job is not None

    @property
    def kind(self) -> str:
        return "job" if self.is_job else "test"


class GraphError(Exception):
    """A problem in the graph a user can fix: unknown need, duplicate name, cycle."""


def env_name(label: str) -> str:
    """``test-python[3.12]`` -> ``TEST_PYTHON_3_12``: how a job appears in variable names."""
    return re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_")


@dataclass
class JobGraph:
    """Resolved graph over ``nodes`` (in declaration order).

    ``needs[key]`` are the keys a node needs directly (in the order declared),
    ``dependents[key]`` the keys that need it directly.
    """

    nodes: dict[str, Node]
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dependents: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, nodes: Sequence[Node], *, tests: bool = True) -> JobGraph:
        """Resolve ``nodes``' needs; :class:`GraphError` for an unknown need, a duplicate
        job name or a cycle. ``tests=False``: an engine that runs jobs only (Dagster), where
        an unknown need is never a test left uncollected."""
        graph = cls({n.key: n for n in nodes})
        names = _names(nodes)
        for node in nodes:
            resolved: list[str] = []
            for entry in node.needs:
                keys = names.get(entry)
                if keys is None:
                    raise GraphError(_unknown(node, entry, names, tests))
                resolved.extend(k for k in keys if k not in resolved)
            graph.needs[node.key] = tuple(resolved)
            graph.dependents.setdefault(node.key, [])
            for k in resolved:
                graph.dependents.setdefault(k, []).append(node.key)
        graph._check_cycles()
        graph._check_env_names()
        return graph

    def _check_cycles(self) -> None:
        try:
            TopologicalSorter(self.needs).prepare()
        except CycleError as exc:
            cycle = list(reversed(exc.args[1]))  # graphlib lists it dependent-first
            labels = " -> ".join(self.nodes[k].label for k in cycle)
            raise GraphError(f"the jobs' needs form a cycle: {labels}") from None

    def _check_env_names(self) -> None:
        for key, needs in self.needs.items():
            seen: dict[str, str] = {}
            for need in needs:
                node = self.nodes[need]
                if not node.is_job:
                    continue
                name = env_name(node.label)
                if name in seen:
                    raise GraphError(
                        f"{self.nodes[key].kind} '{self.nodes[key].label}' needs '{seen[name]}' and "
                        f"'{node.label}', whose outputs would both be CIDAG_NEEDS_{name}_*: rename one"
                    )
                seen[name] = node.label

    # --- queries -------------------------------------------------------------------------

    def upstream(self, keys: Iterable[str]) -> set[str]:
        """Every node the given ones need, transitively (not including them)."""
        return _reach(keys, self.needs)

    def downstream(self, keys: Iterable[str]) -> set[str]:
        """Every node that needs one of the given ones, transitively."""
        return _reach(keys, self.dependents)

    def order(self, keys: Sequence[str], priority: Callable[[str], object] | None = None) -> list[str]:
        """A topological order of ``keys`` that keeps their given order where the graph allows.

        Among the nodes whose needs are done, the next is the one with the smallest
        ``(priority(key), position in keys)``. Needs outside ``keys`` are ignored.
        """
        position = {k: i for i, k in enumerate(keys)}
        sorter = TopologicalSorter({k: [n for n in self.needs.get(k, ()) if n in position] for k in keys})
        sorter.prepare()

        def rank(k: str) -> tuple[object, int]:
            return (priority(k) if priority else 0, position[k])

        heap: list[tuple[tuple[object, int], str]] = []
        out: list[str] = []
        for k in sorter.get_ready():
            heapq.heappush(heap, (rank(k), k))
        while heap:
            _, k = heapq.heappop(heap)
            out.append(k)
            sorter.done(k)
            for r in sorter.get_ready():
                heapq.heappush(heap, (rank(r), r))
        return out

    def edges(self, keys: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(need, dependent) pairs among ``keys`` (all nodes by default)."""
        chosen = set(self.nodes if keys is None else keys)
        return [(n, k) for k in self.nodes if k in chosen for n in self.needs.get(k, ()) if n in chosen]


def _reach(keys: Iterable[str], edges: Mapping[str, Sequence[str]]) -> set[str]:
    """Every node reachable from ``keys`` along ``edges`` (not including them, unless on a path)."""
    out: set[str] = set()
    stack = [n for k in keys for n in edges.get(k, ())]
    while stack:
        k = stack.pop()
        if k not in out:
            out.add(k)
            stack.extend(edges.get(k, ()))
    return out


def _names(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """Every name a ``needs`` entry may use, to the keys it means."""
    names: dict[str, list[str]] = {}
    job_where: dict[str, tuple[str, str]] = {}  # job name -> (file of first leg, where)
    for n in nodes:
        if n.job is None or n.first_pass_of is not None:
            continue
        file = n.key.split("::", 1)[0]
        first = job_where.setdefault(n.job, (file, n.where))
        if first[0] != file:
            raise GraphError(f"two jobs are named '{n.job}': {first[1]} and {n.where}; names must be unique")
        names.setdefault(n.job, []).append(n.key)
        if n.label != n.job:
            names[n.label] = [n.key]
    for n in nodes:
        if n.first_pass_of is not None:
            continue
        for alias in (*n.aliases, n.key):
            if alias not in names:
                names[alias] = [n.key]
    return names


def _unknown(node: Node, entry: str, names: Mapping[str, list[str]], tests: bool = True) -> str:
    hint = did_you_mean(entry, [k for k in names if "::" not in k]) or did_you_mean(entry, list(names))
    where = f" ({node.where})" if node.where else ""
    if not tests:
        return f"{node.kind} '{node.label}'{where} needs '{entry}', which is not a job or a job's leg{hint}"
    what = "a job, a job's leg, or the name or node id of a collected test"
    if not hint:
        hint = (
            " (a test counts only when this run collects it: name its file or directory too,"
            " as in `pytest cijobs tests`)"
        )
    return f"{node.kind} '{node.label}'{where} needs '{entry}', which is not {what}{hint}"
