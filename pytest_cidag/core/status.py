"""What happened to a graph node in a run, and how a dependent's skip names it. Pure.

The values are plain strings on the wire (a report's ``cidag_status`` attribute crosses
xdist's channel, which serializes only built-in types): use ``.value`` there.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A node's outcome, from the reports of its phases (or the controller's crash report)."""

    PENDING = "pending"  # not ended (not started, or running)
    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"  # setup or teardown failed
    TIMEOUT = "timeout"  # a job killed by its timeout
    SKIPPED = "skipped"  # skipped by itself (exit 77, a skip marker, cancelled by -x)
    BLOCKED = "blocked"  # skipped because something it needs did not pass
    CRASHED = "crashed"  # its xdist worker died while it ran


#: Outcomes that count for -x / --maxfail and that --lf reruns what they held back.
FAILURES = frozenset({Status.FAILED, Status.ERRORED, Status.TIMEOUT, Status.CRASHED})

#: How a need that did not pass is named in a dependent's skip reason.
PHRASES = {
    Status.FAILED: "failed",
    Status.ERRORED: "errored",
    Status.TIMEOUT: "timed out",
    Status.SKIPPED: "was skipped",
    Status.CRASHED: "crashed its worker",
}
