"""The critical path of a finished run, from its record (``run.json``). Pure: no pytest import.

The path is the chain of jobs through ``needs`` whose durations add up to the most, as
Bazel's is: what the run would take with a worker free for every job, so set against the
wall time it says how much went to waiting for workers. Jobs that never ran (blocked, not
started) have no times and take no part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

#: A record's job entry (a mapping), whatever its concrete type.
Job = TypeVar("Job", bound=Mapping[str, Any])

#: Outcomes of jobs that did not run: no part of the path even when they carry times.
NOT_RUN = frozenset({"blocked"})


def _ran(job: Mapping[str, Any]) -> bool:
    return job.get("start") is not None and job.get("end") is not None and job.get("outcome") not in NOT_RUN


def critical_path(jobs: Sequence[Job]) -> list[Job]:
    """The jobs on the critical path, first to last (``[]`` when no job ran).

    Each job is a record's job entry: ``nodeid``, ``needs`` (node ids), ``start``, ``end``.
    Of chains of equal length, the one ending later wins (then the one listed first).
    """
    ran = {job["nodeid"]: job for job in jobs if _ran(job)}
    if not ran:
        return []
    best: dict[str, tuple[float, Job | None]] = {}  # nodeid -> (the longest chain ending there, its link)

    def longest(nodeid: str) -> float:
        if nodeid not in best:
            best[nodeid] = (0.0, None)  # a cycle cannot be in a record; this ends one all the same
            job = ran[nodeid]
            links = [ran[n] for n in job.get("needs", ()) if n in ran]
            link = max(links, key=lambda j: (longest(j["nodeid"]), j["end"]), default=None)
            before = longest(link["nodeid"]) if link is not None else 0.0
            best[nodeid] = (before + job["end"] - job["start"], link)
        return best[nodeid][0]

    last = max(ran.values(), key=lambda job: (longest(job["nodeid"]), job["end"]))
    chain: list[Job] = []
    step: Job | None = last
    while step is not None and step not in chain:
        chain.append(step)
        step = best[step["nodeid"]][1]
    chain.reverse()
    return chain


def busy_share(record: Mapping[str, Any]) -> float | None:
    """The share of the workers' time (``workers`` slots, one at ``-n 0``, over the run's wall
    time) that jobs ran; None for a run of no wall time."""
    wall = record["end"] - record["start"]
    if wall <= 0:
        return None
    slots = max(1, int(record.get("workers") or 0))
    busy = sum(job["end"] - job["start"] for job in record["jobs"] if _ran(job))
    return float(min(1.0, busy / (slots * wall)))


def summary_line(record: Mapping[str, Any]) -> str | None:
    """``critical path 18.3 s of 27.0 s wall: a 4.1 s > b 9.0 s; workers busy 81 %``, or
    None when no job ran."""
    chain = critical_path(record["jobs"])
    if not chain:
        return None
    total = sum(job["end"] - job["start"] for job in chain)
    wall = record["end"] - record["start"]
    steps = " > ".join(f"{job['id']} {job['end'] - job['start']:.1f} s" for job in chain)
    line = f"critical path {total:.1f} s of {wall:.1f} s wall: {steps}"
    share = busy_share(record)
    if share is not None:
        line += f"; workers busy {share * 100:.0f} %"
    return line
