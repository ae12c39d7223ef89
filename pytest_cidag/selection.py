"""Selection: the graph of what pytest collected, upstream jobs pulled back in, run order.

``-k``/``-m``/``--deselect``/``--sw`` deselect in plain ``pytest_collection_modifyitems``
impls, ``--lf``/``--ff``/``--nf`` in tryfirst wrappers registered before this plugin. Ours is
registered last (from a trylast ``pytest_configure``), so its wrapper is the outermost: it
snapshots the items before everyone, and after everyone it pulls the upstream nodes of the
selection back in and puts the result in topological order.

Deselections pass through untouched, as they happen (a hook caller's list is never changed).
What the selection takes back in is taken off the terminal's "deselected" count, so
"N deselected" stays true; a run without jobs is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING

import pytest

from pytest_cidag.core.graph import GraphError, JobGraph, Node
from pytest_cidag.core.jobspec import JobSpec, did_you_mean
from pytest_cidag.dependency import base_name
from pytest_cidag.items import FirstPassItem, JobFile, JobItem
from pytest_cidag.keys import SETTINGS_KEY

if TYPE_CHECKING:
    from pytest_cidag.dependency import DependencyBridge
    from pytest_cidag.persistence import CachePersistence
    from pytest_cidag.state import RunGraph


class SelectionPlugin:
    """Builds this process's :class:`~pytest_cidag.state.RunGraph` from the collected items.

    Attributes:
        no_deps: ``--cidag-no-deps``: run exactly the selection.
        first: the names given to ``--cidag-first``.
        after_selection: called with (session, items) once the selection is final (on an
            xdist worker: appends the tick item).
    """

    def __init__(
        self,
        config: pytest.Config,
        run: RunGraph,
        dependency: DependencyBridge,
        persistence: CachePersistence,
    ) -> None:
        self.config = config
        self.run = run
        self.dependency = dependency
        self.persistence = persistence
        self.is_worker = hasattr(config, "workerinput")
        self.no_deps: bool = bool(config.getoption("cidag_no_deps"))
        self.first: tuple[str, ...] = tuple(
            name.strip() for value in config.getoption("cidag_first") or [] for name in value.split(",") if name.strip()
        )
        self.after_selection: Callable[[pytest.Session, list[pytest.Item]], None] | None = None
        self._seen: set[int] | None = None  # ids of items reported deselected during the selection

    @pytest.hookimpl
    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        if self._seen is not None:
            self._seen.update(id(i) for i in items)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        snapshot = list(items)
        self._seen = set()
        try:
            result = yield
        finally:
            seen, self._seen = self._seen, None
        try:
            final = self._select(session, snapshot, items)
        except GraphError as exc:
            if not self.is_worker:
                raise pytest.UsageError(f"cidag: {exc}") from None
            # An xdist worker cannot print a usage error: it runs nothing and tells the
            # controller, which stops the run with this message.
            self.run.graph_error = f"cidag: {exc}"
            items[:] = []
            return result
        if final is None:  # no jobs: nothing to change
            return result
        items[:] = final
        chosen = {id(i) for i in items}
        deselected = [i for i in snapshot if id(i) not in chosen]
        self.run.deselected_count = len(deselected)
        self._take_back([i for i in items if id(i) in seen])
        unreported = [i for i in deselected if id(i) not in seen]
        if unreported:  # left out without a report (by a plugin that did not say so)
            config.hook.pytest_deselected(items=unreported)
        if self.after_selection is not None:
            self.after_selection(session, items)
        return result

    def _take_back(self, items: list[pytest.Item]) -> None:
        """``items`` were reported deselected and are run after all (pulled in): the
        terminal's count of deselected items must not include them."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(reporter, "stats", None)
        if not items or not stats or "deselected" not in stats:
            return
        back = {id(i) for i in items}
        kept = [i for i in stats["deselected"] if id(i) not in back]
        if kept:
            stats["deselected"] = kept
        else:
            del stats["deselected"]

    def _select(
        self, session: pytest.Session, snapshot: list[pytest.Item], selected: list[pytest.Item]
    ) -> list[pytest.Item] | None:
        pool = {i.nodeid: i for i in snapshot}
        for item in selected:
            pool.setdefault(item.nodeid, item)
        if not self.dependency.involves_jobs(pool.values()):
            expr = self.config.stash[SETTINGS_KEY].first_testcases
            if expr is not None:
                raise GraphError(no_first_pass(expr, None))
            return None
        for item in self._collect_missing(session, pool):
            pool.setdefault(item.nodeid, item)
        self.dependency.build_index(pool.values())
        graph = JobGraph.build([self._node(i) for i in pool.values()])
        run = self.run
        run.graph = graph

        targets = [i.nodeid for i in selected]
        if self.config.getoption("lf", False):
            already = set(targets)
            targets += [k for k in self.persistence.blocked_last_time() if k in pool and k not in already]
        wanted = set(targets)
        if not self.no_deps:
            wanted |= graph.upstream(targets)
        target_set = set(targets)
        run.pulled_in = [k for k in pool if k in wanted and k not in target_set]

        rank: dict[str, float] = {k: float(i) for i, k in enumerate(targets)}
        for k in run.pulled_in:
            down = [rank[d] for d in graph.downstream([k]) if d in rank]
            rank[k] = (min(down) if down else len(rank)) - 0.5
        first = self._first_closure(graph) | self._first_pass(graph, wanted)
        run.first_keys = first & wanted
        declared = {k: i for i, k in enumerate(pool)}
        keys = sorted(wanted, key=lambda k: (rank[k], declared[k]))
        run.run_keys = graph.order(keys, priority=lambda k: 0 if k in first else 1)
        run.declared = [k for k in pool if k in wanted]
        return [pool[k] for k in run.run_keys]

    def _collect_missing(self, session: pytest.Session, pool: dict[str, pytest.Item]) -> list[pytest.Item]:
        """Collect job files that hold needed jobs the command line did not collect."""
        extras: list[pytest.Item] = []
        collected_files = {i.path for i in pool.values() if isinstance(i, JobItem)}
        known = {i.spec.name for i in pool.values() if isinstance(i, JobItem)}
        todo = list(pool.values())
        while todo:
            item = todo.pop()
            for entry in self.dependency.raw_needs(item):
                name = base_name(entry)
                path = self.run.job_index.get(name)
                if name in known or path is None or path in collected_files:
                    continue
                collected_files.add(path)
                collector = JobFile.for_path(session, path)
                try:
                    new = list(collector.collect())
                except collector.CollectError as exc:
                    raise GraphError(str(exc)) from None
                extras.extend(new)
                todo.extend(new)
                known.update(i.spec.name for i in new)
        return extras

    def _node(self, item: pytest.Item) -> Node:
        if isinstance(item, JobItem):
            spec: JobSpec = item.spec
            return Node(
                key=item.nodeid,
                label=item.job_id,
                needs=spec.needs,
                job=spec.name,
                where=f"{item.location[0]}:{spec.line}",
                markers=spec.markers,
                timeout=item.declared_timeout(),
                first_pass_of=item.full_pass if isinstance(item, FirstPassItem) else None,
            )
        return Node(
            key=item.nodeid,
            label=item.nodeid,
            needs=self.dependency.raw_needs(item) + tuple(self.dependency.test_needs(item).values()),
            aliases=self.dependency.aliases(item),
            where=f"{item.location[0]}:{(item.location[1] or 0) + 1}",
            markers=tuple(m.name for m in item.iter_markers() if m.name not in ("dependency", "parametrize")),
        )

    def _first_pass(self, graph: JobGraph, wanted: set[str]) -> set[str]:
        """``--cidag-first-testcases``: the selected first-pass items and what they need, which
        go first as ``--cidag-first`` jobs do. A run that has none is a usage error: it asked
        for a first pass that nothing would run."""
        expr = self.config.stash[SETTINGS_KEY].first_testcases
        if expr is None:
            return set()
        chosen = {k for k in wanted if graph.nodes[k].first_pass_of is not None}
        if not chosen:
            raise GraphError(no_first_pass(expr, graph))
        return chosen | graph.upstream(chosen)

    def _first_closure(self, graph: JobGraph) -> set[str]:
        if not self.first:
            return set()
        names: dict[str, list[str]] = {}
        for key, node in graph.nodes.items():
            for name in {node.label, node.job or node.label, key, *node.aliases}:
                names.setdefault(name, []).append(key)
        chosen: set[str] = set()
        for name in self.first:
            if name not in names:
                hint = did_you_mean(name, [n for n in names if "::" not in n])
                raise GraphError(f"--cidag-first names '{name}', which is not a known job{hint}")
            chosen.update(names[name])
        return chosen | graph.upstream(chosen)

    @pytest.hookimpl
    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str]:
        run = self.run
        if not run.pulled_in or run.graph is None or config.get_verbosity() < 0 or config.option.cidag_graph:
            return []
        labels = ", ".join(run.graph.nodes[k].label for k in run.pulled_in)
        n = len(run.pulled_in)
        what, them = ("job", "it") if n == 1 else ("jobs", "them")
        return [f"cidag: {n} upstream {what} added because the selection needs {them}: {labels}"]


def no_first_pass(expr: str, graph: JobGraph | None) -> str:
    """Why ``--cidag-first-testcases`` has nothing to run, and what to do."""
    declaring = sorted({n.job for n in graph.nodes.values() if n.first_pass_of is not None and n.job}) if graph else []
    if declaring:
        fix = f"select one of those that do ({', '.join(declaring)})"
    else:
        fix = "add testcases = true to the block of each job that narrows its suite by CIDAG_TESTCASES"
    return f"--cidag-first-testcases {expr!r}: no selected job declares testcases = true, so nothing runs first; {fix}"
