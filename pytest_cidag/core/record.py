"""The run record's pure parts: CPU samples, git facts, atomic writes, the Chrome trace.

No pytest import. The pytest glue that gathers jobs from reports is
:mod:`pytest_cidag.record`; the format is docs/run-record.md and
``pytest_cidag/schemas/run-record.schema.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Bumped when a field changes meaning or goes away (adding a field keeps it).
FORMAT_VERSION = 1
RECORD_NAME = "run.json"
TRACE_NAME = "trace.json"
#: Seconds between two CPU samples (the old runner logged about twice a second).
SAMPLE_INTERVAL = 0.5
PROC_STAT = Path("/proc/stat")


def _cpu_times(path: Path) -> tuple[int, int, int] | None:
    """(total, idle, iowait) jiffies of all CPUs, from the ``cpu`` line of /proc/stat."""
    try:
        with open(path, "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != b"cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest and guest_nice are inside user/nice)
    values = [int(x) for x in fields[1:9]]
    return sum(values), values[3], values[4]


class CpuSampler:
    """Samples the machine's CPU busy and iowait shares about twice a second, on a daemon
    thread, from :meth:`start` to :meth:`stop` (which takes a last sample, so a short run
    has one). Where /proc/stat is missing, :attr:`available` is False and nothing runs.

    Attributes:
        samples: ``{"t": epoch seconds, "busy": percent, "iowait": percent}``, each over
            the interval that ends at ``t``.
    """

    def __init__(self, path: Path = PROC_STAT, interval: float = SAMPLE_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._last = _cpu_times(path)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._last is not None

    def start(self) -> None:
        if self.available and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cidag-cpu-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> list[dict[str, float]] | None:
        """Stop sampling; the samples, or None where /proc/stat is missing."""
        if not self.available:
            return None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sample()
        with self._lock:
            return list(self.samples)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        now = _cpu_times(self.path)
        with self._lock:
            last, self._last = self._last, now or self._last
            if now is None or last is None or now[0] <= last[0]:
                return  # no tick since the last sample
            total = now[0] - last[0]
            idle, iowait = now[1] - last[1], now[2] - last[2]
            self.samples.append(
                {
                    "t": round(time.time(), 3),
                    "busy": round(100 * (total - idle - iowait) / total, 1),
                    "iowait": round(100 * iowait / total, 1),
                }
            )


def git(directory: Path, *args: str) -> tuple[str | None, str]:
    """``git args`` run in ``directory``: (its output, stripped; ``""``) or (None, why not:
    the first line git wrote to stderr, or why git could not run)."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"git could not run: {exc}"
    if out.returncode != 0:
        said = out.stderr.strip().splitlines()
        return None, said[0] if said else f"git {' '.join(args)} exited with {out.returncode}"
    return out.stdout.strip(), ""


def git_facts(directory: Path) -> dict[str, str | None] | None:
    """``{"commit", "branch"}`` of the git checkout holding ``directory`` (branch None when
    detached), or None outside a checkout, without commits, or without git. One ``git`` run."""
    out, _ = git(directory, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    lines = (out or "").split()
    if len(lines) != 2:
        return None
    commit, branch = lines
    return {"commit": commit, "branch": None if branch == "HEAD" else branch}


def write_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file renamed over it: a reader
    sees the old file or the whole new one. ``OSError`` when it cannot."""
    # No indent: json's C encoder only serves compact output, ~15x faster than indented
    # (a 200-job record: 1.6 ms against 22 ms); `python -m json.tool run.json` shows it indented.
    text = json.dumps(data) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def to_trace(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as Chrome trace events (chrome://tracing, Perfetto, speedscope): one lane
    (thread) per worker with a complete event (``X``) per job that has times, and counter
    events (``C``) for CPU busy and iowait. Times in microseconds from the run's start."""
    origin = record["start"]
    pid = 1
    lanes: dict[str, int] = {}
    for job in record["jobs"]:
        if job.get("start") is not None and job.get("end") is not None:
            lanes.setdefault(job.get("worker") or "main", len(lanes) + 1)
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"pytest-cidag {record['name']}"}}
    ]
    events += [
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": worker}}
        for worker, tid in lanes.items()
    ]
    for job in record["jobs"]:
        if job.get("start") is None or job.get("end") is None:
            continue
        keys = ("nodeid", "outcome", "reason", "exit_code", "signal", "log", "queued", "flaky")
        args = {k: job[k] for k in keys if k in job}
        args["on_critical_path"] = job["on_critical_path"]
        events.append(
            {
                "name": job["id"],
                "cat": job["outcome"],
                "ph": "X",
                "ts": _us(job["start"] - origin),
                "dur": max(0, _us(job["end"] - job["start"])),
                "pid": pid,
                "tid": lanes[job.get("worker") or "main"],
                "args": args,
            }
        )
    for sample in record.get("cpu") or ():
        events.append(
            {
                "name": "cpu %",
                "ph": "C",
                "ts": _us(sample["t"] - origin),
                "pid": pid,
                "tid": 0,
                "args": {"busy": sample["busy"], "iowait": sample["iowait"]},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"version": f"run record {FORMAT_VERSION}"}}
