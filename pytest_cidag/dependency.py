"""The bridge to pytest-dependency: Python tests and jobs in one graph.

A test marked ``@pytest.mark.dependency(depends=[...])`` may name jobs, and other tests by
pytest-dependency's names. Both become graph edges (so they hold under xdist, where
pytest-dependency alone cannot see results from other workers), and once everything a
test needs has passed, pytest-dependency is told so, so its own check lets the test run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_cidag.items import JobItem

#: pytest-dependency's scopes: the node whose results a name is looked up in.
_SCOPES: dict[str, type[pytest.Collector]] = {
    "session": pytest.Session,
    "package": pytest.Package,
    "module": pytest.Module,
    "class": pytest.Class,
}


def base_name(entry: str) -> str:
    """``test[3.12]`` -> ``test``: the job a need names."""
    return entry.split("[", 1)[0]


class DependencyBridge:
    """Reads pytest-dependency markers as graph edges; satisfies pytest-dependency's check.

    Attributes:
        job_index: job name -> job file, for every job in the job directories.
        index: (scope, container node id, name) -> node id, for the tests of the current
            selection that pytest-dependency records (see :meth:`build_index`).
    """

    def __init__(self, config: pytest.Config, job_index: dict[str, Path]) -> None:
        self.config = config
        self.job_index = job_index
        self.index: dict[tuple[str, str, str], str] = {}
        self._job_files: set[str] | None = None

    def involves_jobs(self, items: Iterable[pytest.Item]) -> bool:
        """Whether any of ``items`` is a job or a test that depends on one."""
        for item in items:
            if isinstance(item, JobItem):
                return True
            marker = item.get_closest_marker("dependency")
            depends = marker.kwargs.get("depends") if marker is not None else None
            if depends and any(base_name(d) in self.job_index for d in depends):
                return True
        return False

    def job_files(self) -> set[str]:
        """The job files, relative to the rootdir (as node ids start)."""
        if self._job_files is None:
            root = self.config.rootpath
            self._job_files = set()
            for path in self.job_index.values():
                with contextlib.suppress(ValueError):
                    self._job_files.add(path.relative_to(root).as_posix())
        return self._job_files

    def raw_needs(self, item: pytest.Item) -> tuple[str, ...]:
        """What ``item`` needs among the jobs, as written (a job's ``needs``, or the job
        names and job node ids in a test's ``depends``)."""
        if isinstance(item, JobItem):
            return item.spec.needs
        marker = item.get_closest_marker("dependency")
        if marker is None:
            return ()
        depends = marker.kwargs.get("depends") or ()
        files = self.job_files()
        return tuple(str(d) for d in depends if base_name(d) in self.job_index or str(d).split("::", 1)[0] in files)

    def build_index(self, items: Iterable[pytest.Item]) -> None:
        """Index every test pytest-dependency records: marked ``dependency`` (or all of them
        with its ``automark_dependency`` ini), named by the marker's ``name`` or by its node
        id cut to the scope, as pytest-dependency does."""
        try:
            automark = bool(self.config.getini("automark_dependency"))
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
            for scope in _SCOPES:
                container = _container(item, scope)
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
        self.index = index

    def test_needs(self, item: pytest.Item) -> dict[str, str]:
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
        container = _container(item, scope)
        if container is None:  # scope="class" outside a class: pytest-dependency fails it
            return {}
        jobs = set(self.raw_needs(item))
        out = {}
        for entry in marker.kwargs.get("depends") or ():
            key = self.index.get((scope, container, str(entry)))
            if key is not None and key != item.nodeid and str(entry) not in jobs:
                out[str(entry)] = key
        return out

    def aliases(self, item: pytest.Item) -> tuple[str, ...]:
        """pytest-dependency's ``name=`` of a test, by which a job may need it."""
        marker = item.get_closest_marker("dependency")
        if marker is not None and marker.kwargs.get("name"):
            return (str(marker.kwargs["name"]),)
        return ()

    def satisfy(self, item: pytest.Item) -> None:
        """Tell pytest-dependency that what this test depends on passed.

        Only called once every need passed (blocked before, or not dispatched under xdist,
        where they may have run on other workers).
        """
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
        for entry in (*self.raw_needs(item), *self.test_needs(item)):
            status = pytest_dependency.DependencyItemStatus()
            for phase in status.Phases:
                status.results[phase] = "passed"
            manager.results[entry] = status


def _container(item: pytest.Item, scope: str) -> str | None:
    cls = _SCOPES.get(scope)
    node = item.getparent(cls) if cls is not None else None
    return None if node is None else node.nodeid
