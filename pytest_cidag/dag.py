"""The job graph inside a pytest run: selection closure, order, skip propagation, outputs.

:class:`DagPlugin` is registered once per process (controller, worker, or a plain run).

Selection (see shared notes, section 6): ``-k``/``-m``/``--deselect``/``--sw`` deselect in plain
``pytest_collection_modifyitems`` impls, ``--lf``/``--ff``/``--nf`` in tryfirst wrappers registered
before this plugin. Our wrapper is registered last (from a trylast ``pytest_configure``), so it is
the outermost: it snapshots the items before everyone, and after everyone it pulls the upstream
nodes of the selection back in and puts the result in topological order. Deselection reports are
held while it runs and re-emitted as one true list, so "N deselected" stays right.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_cidag.core.graph import GraphError, JobGraph, Node, to_dot, to_json_data, to_mermaid
from pytest_cidag.core.jobspec import JobSpec, did_you_mean
from pytest_cidag.core.outputs import OutputError, needs_environ, parse_outputs
from pytest_cidag.core.scheduling import FAILURES
from pytest_cidag.items import DAG_KEY, SETTINGS_KEY, JobFile, JobItem

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Sequence

    from pytest_cidag.core.settings import Settings

BLOCKED_CACHE_KEY = "cidag/blocked"
DURATIONS_CACHE_KEY = "cidag/durations"

#: How a node that did not pass is described in a dependent's skip reason.
PHRASES = {
    "failed": "failed",
    "errored": "errored",
    "timeout": "timed out",
    "skipped": "was skipped",
    "crashed": "crashed its worker",
}


class OutputClash(Exception):
    """Two needed jobs' outputs map to one CIDAG_NEEDS_* variable."""


@dataclass
class Outcome:
    """What happened to a graph node in this run. ``root`` names the original blocker."""

    status: str = "pending"  # passed, failed, errored, timeout, skipped, blocked
    reason: str = ""  # for blocked: the full skip reason
    root: str = ""  # for blocked: "upstream job 'x' failed"


class DagPlugin:
    """Graph state of one pytest process.

    Attributes:
        graph: the resolved graph over every collected (and pulled-in) node, or None when
            the run has no jobs.
        run_keys: node ids selected to run, in run order.
        pulled_in: node ids added because a selected node needs them.
        outcomes: node id -> :class:`Outcome`, filled from reports as they arrive.
        blocked: node id -> the skip reason, for nodes skipped because of an upstream node.
    """

    def __init__(self, config: pytest.Config, job_index: dict[str, Path]) -> None:
        self.config = config
        self.settings: Settings = config.stash[SETTINGS_KEY]
        self.graph: JobGraph | None = None
        self.run_keys: list[str] = []
        self.pulled_in: list[str] = []
        self.outcomes: dict[str, Outcome] = {}
        self.blocked: dict[str, str] = {}
        self.no_deps: bool = bool(config.getoption("cidag_no_deps"))
        self.first: tuple[str, ...] = tuple(
            name.strip() for value in config.getoption("cidag_first") or [] for name in value.split(",") if name.strip()
        )
        self.is_worker = hasattr(config, "workerinput")
        self.graph_error: str | None = None
        self.first_keys: set[str] = set()
        self.deselected_count = 0
        self.durations: dict[str, float] = {}
        #: Called with (session, items, self) after the selection, on xdist workers.
        self.after_selection: Callable[[pytest.Session, list[pytest.Item], DagPlugin], None] | None = None
        self._held: list[pytest.Item] | None = None
        self._declared: list[str] = []  # run_keys in declaration order, for the graph view
        self._job_index = job_index
        #: pytest-dependency's names of the collected tests (see _dependency_index)
        self._dependency_index: dict[tuple[str, str, str], str] = {}

    # --- selection ---------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_deselected(self, items: Sequence[pytest.Item]) -> Generator[None, None, None]:
        # Held while our modifyitems wrapper runs: the one true list is reported after it.
        if self._held is not None and isinstance(items, list):
            self._held.extend(items)
            items.clear()
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        snapshot = list(items)
        self._held = []
        try:
            result = yield
        finally:
            held, self._held = self._held, None
        try:
            final = self._select(session, snapshot, items)
        except GraphError as exc:
            if not self.is_worker:
                raise pytest.UsageError(f"cidag: {exc}") from None
            # An xdist worker cannot print a usage error: it runs nothing and tells the
            # controller, which stops the run with this message.
            self.graph_error = f"cidag: {exc}"
            items[:] = []
            return result
        if final is not None:
            items[:] = final
        chosen = {id(i) for i in items}
        deselected = [i for i in snapshot if id(i) not in chosen] if final is not None else held
        self.deselected_count = len(deselected)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        if self.after_selection is not None:
            self.after_selection(session, items, self)
        return result

    def _select(
        self, session: pytest.Session, snapshot: list[pytest.Item], selected: list[pytest.Item]
    ) -> list[pytest.Item] | None:
        pool = {i.nodeid: i for i in snapshot}
        for item in selected:
            pool.setdefault(item.nodeid, item)
        if not self._involves_jobs(pool.values()):
            return None
        extras = self._collect_missing(session, pool)
        for item in extras:
            pool.setdefault(item.nodeid, item)
        self._dependency_index = _dependency_index(self.config, pool.values())
        graph = JobGraph.build([self._node(i) for i in pool.values()])
        self.graph = graph

        targets = [i.nodeid for i in selected]
        if self.config.getoption("lf", False):
            targets += self._blocked_last_time(pool, targets)
        wanted = set(targets)
        if not self.no_deps:
            wanted |= graph.upstream(targets)
        target_set = set(targets)
        self.pulled_in = [k for k in pool if k in wanted and k not in target_set]

        rank: dict[str, float] = {k: float(i) for i, k in enumerate(targets)}
        for k in self.pulled_in:
            down = [rank[d] for d in graph.downstream([k]) if d in rank]
            rank[k] = (min(down) if down else len(rank)) - 0.5
        first = self._first_closure(graph)
        self.first_keys = first & wanted
        declared = {k: i for i, k in enumerate(pool)}
        keys = sorted(wanted, key=lambda k: (rank[k], declared[k]))
        self.run_keys = graph.order(keys, priority=lambda k: 0 if k in first else 1)
        self._declared = [k for k in pool if k in wanted]
        return [pool[k] for k in self.run_keys]

    def _involves_jobs(self, items: Iterable[pytest.Item]) -> bool:
        names = None
        for item in items:
            if isinstance(item, JobItem):
                return True
            marker = item.get_closest_marker("dependency")
            if marker is not None and marker.kwargs.get("depends"):
                if names is None:
                    names = set(self.job_index())
                if any(_base_name(d) in names for d in marker.kwargs["depends"]):
                    return True
        return False

    def job_index(self) -> dict[str, Path]:
        """Job name -> file, for every job file in the job directories (parsed at configure)."""
        return self._job_index

    def _job_files(self) -> set[str]:
        root = self.config.rootpath
        out = set()
        for path in self.job_index().values():
            with contextlib.suppress(ValueError):
                out.add(path.relative_to(root).as_posix())
        return out

    def _collect_missing(self, session: pytest.Session, pool: dict[str, pytest.Item]) -> list[pytest.Item]:
        """Collect job files that hold needed jobs the command line did not collect."""
        extras: list[pytest.Item] = []
        collected_files = {i.path for i in pool.values() if isinstance(i, JobItem)}
        known = {i.spec.name for i in pool.values() if isinstance(i, JobItem)}
        todo = list(pool.values())
        while todo:
            item = todo.pop()
            for entry in self._raw_needs(item):
                name = _base_name(entry)
                path = self.job_index().get(name)
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

    def _raw_needs(self, item: pytest.Item) -> tuple[str, ...]:
        if isinstance(item, JobItem):
            return item.spec.needs
        marker = item.get_closest_marker("dependency")
        if marker is None:
            return ()
        depends = marker.kwargs.get("depends") or ()
        names = self.job_index()
        files = self._job_files()
        return tuple(str(d) for d in depends if _base_name(d) in names or str(d).split("::", 1)[0] in files)

    def _test_needs(self, item: pytest.Item) -> dict[str, str]:
        """The collected Python tests ``item`` depends on through pytest-dependency's marker,
        resolved as pytest-dependency resolves names in the marker's scope: name -> node id.

        They are edges of the graph like any other, so under xdist a test never starts before
        a test it depends on has passed. A name that resolves to nothing collected is left to
        pytest-dependency (it skips the test), as is a name that is a job's.
        """
        if isinstance(item, JobItem):
            return {}
        marker = item.get_closest_marker("dependency")
        if marker is None:
            return {}
        scope = str(marker.kwargs.get("scope", "module"))
        container = _dependency_container(item, scope)
        if container is None:  # scope="class" outside a class: pytest-dependency fails it
            return {}
        jobs = set(self._raw_needs(item))
        out = {}
        for entry in marker.kwargs.get("depends") or ():
            key = self._dependency_index.get((scope, container, str(entry)))
            if key is not None and key != item.nodeid and str(entry) not in jobs:
                out[str(entry)] = key
        return out

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
            )
        marker = item.get_closest_marker("dependency")
        aliases: tuple[str, ...] = ()
        if marker is not None and marker.kwargs.get("name"):
            aliases = (str(marker.kwargs["name"]),)
        return Node(
            key=item.nodeid,
            label=item.nodeid,
            needs=self._raw_needs(item) + tuple(self._test_needs(item).values()),
            aliases=aliases,
            where=f"{item.location[0]}:{(item.location[1] or 0) + 1}",
            markers=tuple(m.name for m in item.iter_markers() if m.name not in ("dependency", "parametrize")),
        )

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

    def _blocked_last_time(self, pool: dict[str, pytest.Item], targets: list[str]) -> list[str]:
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return []
        blocked = cache.get(BLOCKED_CACHE_KEY, [])
        already = set(targets)
        return [k for k in blocked if k in pool and k not in already]

    # --- running -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # tryfirst: before pytest-dependency's check, so a blocked node is skipped with the
        # blocker's name, and a Python test whose needed jobs passed is not skipped by it.
        graph = self.graph
        if graph is None or item.nodeid not in graph.nodes:
            return
        # On an xdist worker the controller dispatches a node only once its needs passed.
        if not self.is_worker:
            reason = self.block_reason(item.nodeid)
            if reason is not None:
                raise pytest.skip.Exception(reason, _use_item_location=True)
        if not isinstance(item, JobItem):
            self._satisfy_pytest_dependency(item)

    def block_reason(self, key: str) -> str | None:
        """Why ``key`` must not run (recorded as blocked), or None when all it needs passed."""
        assert self.graph is not None
        in_run = set(self.run_keys)
        # --cidag-no-deps: a need outside the selection counts as satisfied
        needs = [n for n in self.graph.needs[key] if n in in_run]

        def status(need: str) -> str:
            outcome = self.outcomes.get(need)
            return "pending" if outcome is None else outcome.status

        # Name a need that ended without passing before one that has not ended yet (under
        # xdist a need may still be running when another need's failure blocks this node).
        blocker = next((n for n in needs if status(n) not in ("passed", "pending")), None)
        if blocker is None:
            blocker = next((n for n in needs if status(n) != "passed"), None)
        if blocker is None:
            return None
        reason = self._reason(blocker)
        self.blocked[key] = reason
        return reason

    def _reason(self, need: str) -> str:
        assert self.graph is not None
        node = self.graph.nodes[need]
        outcome = self.outcomes.get(need)
        if outcome is None or outcome.status == "pending":
            return f"upstream {node.kind} '{node.label}' did not run"
        if outcome.status == "blocked":
            return f"{outcome.root} (through '{node.label}')"
        return f"upstream {node.kind} '{node.label}' {PHRASES.get(outcome.status, outcome.status)}"

    def _satisfy_pytest_dependency(self, item: pytest.Item) -> None:
        """Tell pytest-dependency that the jobs this test depends on passed."""
        try:
            import pytest_dependency  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - it is a dependency, but may be uninstalled
            return
        if not self.config.pluginmanager.is_registered(pytest_dependency):
            return

        marker = item.get_closest_marker("dependency")
        if marker is None:
            return
        manager = pytest_dependency.DependencyManager.getManager(item, scope=marker.kwargs.get("scope", "module"))
        if manager is None:
            return
        # Only reached once every need passed (blocked before, or not dispatched under xdist,
        # where they may have run on other workers).
        for entry in (*self._raw_needs(item), *self._test_needs(item)):
            status = pytest_dependency.DependencyItemStatus()
            for phase in status.Phases:
                status.results[phase] = "passed"
            manager.results[entry] = status

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        graph = self.graph
        if graph is None or report.nodeid not in graph.nodes:
            return
        outcome = self.outcomes.setdefault(report.nodeid, Outcome())
        when = str(report.when)  # xdist reports a worker crash with when="???"
        if when == "setup":
            if report.failed:
                outcome.status = "errored"
            elif report.skipped:
                if report.nodeid in self.blocked:
                    reason = self.blocked[report.nodeid]
                    outcome.status, outcome.reason = "blocked", reason
                    outcome.root = reason.split(" (through ", 1)[0]
                else:
                    outcome.status = "skipped"
        elif when == "call":
            self.durations[report.nodeid] = report.duration
            if report.failed:
                outcome.status = getattr(report, "cidag_status", None) or "failed"
            elif report.skipped:
                outcome.status = "skipped"
            else:
                outcome.status = "passed"
        elif when == "teardown":
            if report.failed and outcome.status in ("passed", "pending"):
                outcome.status = "errored"
        elif report.failed:  # xdist's report for an item whose worker died
            outcome.status = "crashed"

    def known_durations(self) -> dict[str, float]:
        """Durations (seconds) of earlier runs, from pytest's cache."""
        cache = getattr(self.config, "cache", None)
        data = cache.get(DURATIONS_CACHE_KEY, {}) if cache is not None else {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def needs_env(self, item: JobItem) -> dict[str, str]:
        """``CIDAG_NEEDS_<JOB>_<KEY>`` for the outputs of every job ``item`` needs directly."""
        graph = self.graph
        if graph is None or item.nodeid not in graph.nodes:
            return {}
        in_run = set(self.run_keys)
        env: dict[str, str] = {}
        origin: dict[str, str] = {}
        for need in graph.needs[item.nodeid]:
            node = graph.nodes[need]
            if not node.is_job:
                continue
            if need in in_run or not self.run_keys:
                directory: Path | None = self.settings.run_dir
            else:
                directory = self.settings.previous_run_dir
            if directory is None:
                continue
            try:
                outputs = parse_outputs(directory / f"{node.label}.outputs")
            except OutputError:
                continue  # the producer failed on it already
            for key, (name, value) in zip(outputs, needs_environ(node.label, outputs).items(), strict=True):
                if name in origin:
                    raise OutputClash(
                        f"outputs {origin[name]} and '{node.label}' ({key}) would both be {name}: "
                        "rename one of the jobs or outputs"
                    )
                origin[name] = f"'{node.label}' ({key})"
                env[name] = value
        return env

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or hasattr(self.config, "workerinput") or self.graph is None:
            return
        if self.config.getoption("collectonly") or self.config.getoption("cidag_graph"):
            return
        old = cache.get(BLOCKED_CACHE_KEY, [])
        ran = set(self.outcomes)
        kept = [k for k in old if k not in ran]
        # What a failure held back, for --lf; not what a skipped job held back (a skip is not
        # a failure to rerun).
        failed = {k for k, o in self.outcomes.items() if o.status in FAILURES}
        held_back = {k for k in self.blocked if self.graph.upstream([k]) & failed}
        cache.set(BLOCKED_CACHE_KEY, sorted({*kept, *held_back}))
        if self.durations:
            durations = self.known_durations()
            durations.update({k: round(v, 4) for k, v in self.durations.items()})
            cache.set(DURATIONS_CACHE_KEY, durations)

    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str]:
        if not self.pulled_in or self.graph is None or config.get_verbosity() < 0 or config.option.cidag_graph:
            return []
        labels = ", ".join(self.graph.nodes[k].label for k in self.pulled_in)
        n = len(self.pulled_in)
        what, them = ("job", "it") if n == 1 else ("jobs", "them")
        return [f"cidag: {n} upstream {what} added because the selection needs {them}: {labels}"]

    # --- the graph view ----------------------------------------------------------------

    def render(self, fmt: str) -> str:
        graph = self.graph
        if graph is None:
            return "" if fmt != "json" else json.dumps({"jobs": []}, indent=2) + "\n"
        keys = graph.order(self._declared)  # stable whatever reordered the run (randomly, --ff)
        if fmt == "dot":
            return to_dot(graph, keys)
        if fmt == "json":
            return json.dumps(to_json_data(graph, keys), indent=2) + "\n"
        return to_mermaid(graph, keys)


#: pytest-dependency's scopes: the node whose results a name is looked up in.
_DEPENDENCY_SCOPES: dict[str, type[pytest.Collector]] = {
    "session": pytest.Session,
    "package": pytest.Package,
    "module": pytest.Module,
    "class": pytest.Class,
}


def _dependency_container(item: pytest.Item, scope: str) -> str | None:
    cls = _DEPENDENCY_SCOPES.get(scope)
    node = item.getparent(cls) if cls is not None else None
    return None if node is None else node.nodeid


def _dependency_index(config: pytest.Config, items: Iterable[pytest.Item]) -> dict[tuple[str, str, str], str]:
    """(scope, container node id, name) -> node id, for every test pytest-dependency records:
    marked ``dependency`` (or all of them with its ``automark_dependency`` ini), named by
    the marker's ``name`` or by its node id cut to the scope, as pytest-dependency does."""
    try:
        automark = bool(config.getini("automark_dependency"))
    except ValueError:  # pytest-dependency is not installed
        automark = False
    index: dict[tuple[str, str, str], str] = {}
    for item in items:
        if isinstance(item, JobItem):
            continue
        marker = item.get_closest_marker("dependency")
        if marker is None and not automark:
            continue
        alias = marker.kwargs.get("name") if marker is not None else None
        nodeid = item.nodeid.replace("::()::", "::")
        for scope in _DEPENDENCY_SCOPES:
            container = _dependency_container(item, scope)
            if container is None:
                continue
            if alias:
                name = str(alias)
            elif scope in ("session", "package"):
                name = nodeid
            elif scope == "module":
                name = nodeid.split("::", 1)[1]
            else:
                name = nodeid.split("::", 2)[2]
            index[(scope, container, name)] = item.nodeid  # the last wins, as in pytest-dependency
    return index


def _base_name(entry: str) -> str:
    return entry.split("[", 1)[0]


def graph_main(config: pytest.Config, session: pytest.Session) -> int:
    """``--cidag-graph``: collect, select, print the selected graph, run nothing."""
    session.perform_collect()
    if session.testsfailed:
        return pytest.ExitCode.INTERRUPTED  # collection errors: the summary shows them
    plugin = config.stash[DAG_KEY]
    text = plugin.render(config.getoption("cidag_graph"))
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
        # Nothing after the graph, so `pytest -q --cidag-graph=dot | dot -Tsvg` works.
        config.pluginmanager.unregister(tr)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
