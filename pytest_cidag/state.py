"""The job graph of one pytest process and what the selection made of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_cidag.core.graph import JobGraph


@dataclass
class RunGraph:
    """Shared by the plugins of one process (selection, outcomes, cache, xdist glue).

    On a worker or a run without xdist the selection fills it; on the xdist controller,
    which never collects, the plan a worker sends does.
    """

    #: Job name -> file, for every job file in the job directories (parsed at configure).
    job_index: dict[str, Path] = field(default_factory=dict)
    #: The resolved graph over every collected (and pulled-in) node; None without jobs.
    graph: JobGraph | None = None
    #: Node ids selected to run, in run order.
    run_keys: list[str] = field(default_factory=list)
    #: Node ids added because a selected node needs them.
    pulled_in: list[str] = field(default_factory=list)
    #: ``--cidag-first`` jobs and what they need, among the selected.
    first_keys: set[str] = field(default_factory=set)
    #: ``run_keys`` in declaration order, for the graph view.
    declared: list[str] = field(default_factory=list)
    #: How many collected items the selection left out.
    deselected_count: int = 0
    #: On a worker: the graph could not be built (the controller stops the run with it).
    graph_error: str | None = None
    _in_run: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _in_run_of: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def in_run(self) -> frozenset[str]:
        """``run_keys`` as a set, built once per list assigned to ``run_keys`` (assign a new
        list, never change it in place). Per-job lookups use it: building it for each job
        made a run quadratic in its size."""
        if self._in_run_of is not self.run_keys:
            self._in_run, self._in_run_of = frozenset(self.run_keys), self.run_keys
        return self._in_run
