"""The critical path of a finished run, from its record (``run.json``). Pure: no pytest import.

The path ends at the job that ended last; each link before it is, among the jobs it needs
that ran, the one that ended last (what it waited for longest). Jobs that never ran (blocked,
not started) have no times and take no part.
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
    """
    ran = {job["nodeid"]: job for job in jobs if _ran(job)}
    if not ran:
        return []
    last = max(ran.values(), key=lambda job: job["end"])
    chain = [last]
    seen = {last["nodeid"]}
    while True:
        needs = [ran[n] for n in chain[-1].get("needs", ()) if n in ran and n not in seen]
        if not needs:
            break
        link = max(needs, key=lambda job: job["end"])
        chain.append(link)
        seen.add(link["nodeid"])
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
