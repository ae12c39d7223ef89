"""The run record (run.json, trace.json) and the critical-path line, from real runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs: the tests only call it
import pytest

from pytest_cidag.core import critpath
from pytest_cidag.core.record import CpuSampler, to_trace
from tests.conftest import JobWriter

SCHEMA = json.loads(resources.files("pytest_cidag").joinpath("schemas/run-record.schema.json").read_text())
XDIST = pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])


def record_of(run_dir: Path) -> dict[str, Any]:
    """The run's record, validated against the shipped schema, and its trace checked."""
    record: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(record)
    check_trace(json.loads((run_dir / "trace.json").read_text()), record)
    return record


def check_trace(trace: dict[str, Any], record: dict[str, Any]) -> None:
    """trace.json is Chrome trace-event JSON (object form): named lanes, one complete event
    per job that has times, counters for the CPU samples; integer microseconds."""
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"}
    events = trace["traceEvents"]
    for event in events:
        assert event["ph"] in ("M", "X", "C"), event
        assert isinstance(event["name"], str)
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
    lanes = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    complete = [e for e in events if e["ph"] == "X"]
    timed = [j for j in record["jobs"] if j["start"] is not None]
    assert sorted(e["name"] for e in complete) == sorted(j["id"] for j in timed)
    assert set(lanes.values()) == {j["worker"] for j in timed}
    by_id = {j["id"]: j for j in timed}
    for event in complete:
        job = by_id[event["name"]]
        assert lanes[event["tid"]] == job["worker"]
        assert isinstance(event["ts"], int) and event["ts"] >= 0
        assert isinstance(event["dur"], int) and event["dur"] >= 0
        assert abs(event["ts"] - (job["start"] - record["start"]) * 1e6) <= 1
        assert event["cat"] == job["outcome"]
    counters = [e for e in events if e["ph"] == "C"]
    assert len(counters) == len(record["cpu"] or [])
    for event in counters:
        assert set(event["args"]) == {"busy", "iowait"}
        assert all(isinstance(v, int | float) for v in event["args"].values())


def jobs_by_id(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in record["jobs"]}


@XDIST
def test_a_passing_dag_is_recorded_with_its_critical_path(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("build", "sleep 0.3", timeout="60")
    job("lint", "true")
    job("unit", "sleep 0.1", needs='["build"]')
    job("docs", "true", needs='["build"]')
    job("package", "echo packed", needs='["unit", "docs"]')
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["cidag: critical path * s of * s wall: build * s > * > package * s; workers busy * %"])
    record = record_of(pytester.path / "run")
    assert record["version"] == 1
    assert record["workers"] == int(n)
    assert record["interrupted"] is None
    assert record["exit_status"] == 0
    assert record["argv"][:2] == ["--cidag-run-dir", "run"]
    assert Path(record["rootdir"]) == pytester.path
    jobs = jobs_by_id(record)
    assert set(jobs) == {"build", "lint", "unit", "docs", "package"}
    assert all(j["outcome"] == "passed" and j["exit_code"] == 0 for j in jobs.values())
    assert jobs["build"]["timeout"] == 60
    assert jobs["package"]["needs"] == ["cijobs/unit.sh::unit", "cijobs/docs.sh::docs"]
    for j in jobs.values():
        assert record["start"] <= j["start"] <= j["end"] <= record["end"]
        assert (pytester.path / "run" / j["log"]).is_file()
        assert j["worker"] == "main" if n == "0" else j["worker"].startswith("gw")
        if n == "0":
            assert j["queued"] is None
        else:
            assert j["queued"] <= j["start"]
        for need in j["needs"]:
            assert jobs[need.rsplit("::", 1)[1]]["end"] <= j["start"]
    # the chain ends at the job that ended last, each link the need that ended last
    path = record["critical_path"]
    assert path[0] == "cijobs/build.sh::build" and path[-1] == "cijobs/package.sh::package"
    assert path[1] in ("cijobs/unit.sh::unit", "cijobs/docs.sh::docs")
    later = max(("unit", "docs"), key=lambda k: jobs[k]["end"])
    assert path[1] == jobs[later]["nodeid"]
    assert {j["nodeid"] for j in jobs.values() if j["on_critical_path"]} == set(path)
    assert (pytester.path / "run" / "run.json").stat().st_size > 0
    assert not list((pytester.path / "run").glob(".run.json*"))  # no temporary file left


@XDIST
def test_failures_skips_timeouts_and_blocked_dependents_are_recorded(
    pytester: pytest.Pytester, job: JobWriter, n: str
) -> None:
    job("broken", "echo compiling; exit 3")
    job("after", "true", needs='["broken"]')
    job("after-after", "true", needs='["after"]')
    job("no-docker", "echo 'docker is not installed'; exit 77")
    job("slow", "sleep 60", timeout="0.5")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--cidag-kill-grace", "0.2")
    result.assert_outcomes(failed=2, skipped=3)
    record = record_of(pytester.path / "run")
    jobs = jobs_by_id(record)
    assert record["exit_status"] == 1
    assert record["interrupted"] is None
    assert (jobs["broken"]["outcome"], jobs["broken"]["exit_code"], jobs["broken"]["signal"]) == ("failed", 3, None)
    assert jobs["broken"]["reason"] == "exit code 3"  # the failure report's headline, from any worker
    assert jobs["after"]["outcome"] == "blocked"
    assert jobs["after"]["reason"] == "upstream job 'broken' failed"
    assert jobs["after-after"]["reason"] == "upstream job 'broken' failed (through 'after')"
    assert jobs["after"]["log"] is None
    assert (jobs["no-docker"]["outcome"], jobs["no-docker"]["reason"]) == ("skipped", "docker is not installed")
    assert jobs["no-docker"]["exit_code"] == 77
    slow = jobs["slow"]
    assert (slow["outcome"], slow["signal"], slow["exit_code"], slow["timeout"]) == ("timeout", "SIGTERM", None, 0.5)
    assert slow["reason"] == "Timeout (>0.5s): the job's process tree was killed"
    # blocked jobs never ran: not on the path
    assert not jobs["after"]["on_critical_path"]
    assert not jobs["after-after"]["on_critical_path"]
    assert record["critical_path"] == ["cijobs/slow.sh::slow"]


def test_x_at_n2_records_the_running_job_as_cancelled(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("long", 'touch "$CIDAG_RUN_DIR/long-started"; sleep 60')
    job("fails", 'while [ ! -e "$CIDAG_RUN_DIR/long-started" ]; do sleep 0.01; done; exit 1')
    job("later", "true", needs='["fails"]')
    job("waits", "true", needs='["long"]')
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", "2", "-x", "--cidag-kill-grace", "0.2")
    assert result.ret == 1
    record = record_of(pytester.path / "run")
    jobs = jobs_by_id(record)
    assert record["interrupted"] == {"by": "maxfail", "reason": "stopping after 1 failure ('fails' failed)"}
    assert jobs["fails"]["outcome"] == "failed"
    long = jobs["long"]
    assert long["outcome"] == "cancelled"
    assert long["reason"] == "cancelled: stopping after 1 failure ('fails' failed)"
    assert long["signal"] == "SIGTERM"
    assert long["start"] is not None and long["end"] is not None
    waits = jobs["waits"]
    assert (waits["outcome"], waits["start"], waits["worker"]) == ("cancelled", None, None)
    assert waits["reason"].startswith("not started: stopping after 1 failure")


@pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])
def test_sigint_writes_a_record_that_says_so(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("long", 'touch "$CIDAG_RUN_DIR/long-started"; sleep 60')
    job("after", "true", needs='["long"]')
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", "0.2", "-n", n],
        stdin=subprocess.DEVNULL,
    )
    started = pytester.path / "run" / "long-started"
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the job never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # the controller alone (n2), as a CI cancel reaches it
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert b"cidag: critical path" in out
    record = record_of(pytester.path / "run")
    assert record["interrupted"] is not None and record["interrupted"]["by"] == "signal"
    assert record["exit_status"] == pytest.ExitCode.INTERRUPTED
    jobs = jobs_by_id(record)
    assert jobs["long"]["outcome"] == "cancelled"
    assert jobs["long"]["start"] is not None and jobs["long"]["end"] is not None
    assert jobs["after"]["outcome"] == "cancelled"
    assert jobs["after"]["start"] is None


def test_a_cache_hit_is_recorded_as_cached(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "echo built", inputs="[]")
    pytester.runpytest("--cidag-run-dir", "first").assert_outcomes(passed=1)
    pytester.runpytest("--cidag-run-dir", "second").assert_outcomes(passed=1)
    assert jobs_by_id(record_of(pytester.path / "first"))["build"]["outcome"] == "passed"
    cached = jobs_by_id(record_of(pytester.path / "second"))["build"]
    assert (cached["outcome"], cached["exit_code"]) == ("cached", None)


def test_git_commit_and_branch_are_recorded(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", "true")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], cwd=pytester.path, check=True)
    subprocess.run([*git, "add", "cijobs"], cwd=pytester.path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "jobs"], cwd=pytester.path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pytester.path, capture_output=True, text=True, check=True)
    pytester.runpytest("--cidag-run-dir", "run").assert_outcomes(passed=1)
    assert record_of(pytester.path / "run")["git"] == {"commit": head.stdout.strip(), "branch": "trunk"}


def test_record_off_writes_nothing_and_prints_no_line(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", "true")
    pytester.makeini("[pytest]\ncidag_record = off\n")
    result = pytester.runpytest("--cidag-run-dir", "run")
    result.assert_outcomes(passed=1)
    assert "critical path" not in result.stdout.str()
    assert not (pytester.path / "run" / "run.json").exists()
    assert not (pytester.path / "run" / "trace.json").exists()
    result = pytester.runpytest("--cidag-run-dir", "run2", "--cidag-record", "on")
    assert (pytester.path / "run2" / "run.json").exists()


def test_a_run_without_jobs_loads_no_record(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", "true")  # a job directory the run does not reach
    pytester.makepyfile(
        test_some="""
        import sys

        def test_a():
            assert "pytest_cidag.record" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("test_some.py")
    result.assert_outcomes(passed=1)
    assert "critical path" not in result.stdout.str()
    assert not (pytester.path / ".cidag").exists()


# --- the pure parts ---------------------------------------------------------------------------


def _job(
    name: str, start: float | None, end: float | None, needs: tuple[str, ...] = (), outcome: str = "passed"
) -> Any:
    return {"id": name, "nodeid": name, "start": start, "end": end, "needs": list(needs), "outcome": outcome}


def test_the_critical_path_is_the_longest_chain_of_needs() -> None:
    jobs = [
        _job("a", 0, 4),
        _job("b", 0, 2),
        _job("c", 4, 13, ("a", "b")),
        _job("d", 4, 5, ("a",)),
        _job("e", 13, 18, ("c", "d")),
        _job("f", 18, 18, ("e",), outcome="blocked"),  # never ran: not its end
    ]
    assert [j["id"] for j in critpath.critical_path(jobs)] == ["a", "c", "e"]
    record = {"start": 0, "end": 20, "workers": 2, "jobs": jobs}
    assert critpath.summary_line(record) == (
        "critical path 18.0 s of 20.0 s wall: a 4.0 s > c 9.0 s > e 5.0 s; workers busy 52 %"
    )
    assert critpath.critical_path([_job("x", None, None)]) == []
    # the job that ended last is not on it when a longer chain ended before (workers were busy)
    jobs = [_job("build", 0, 5), _job("long", 5, 15, ("build",)), _job("late", 14, 16, ())]
    assert [j["id"] for j in critpath.critical_path(jobs)] == ["build", "long"]
    assert critpath.summary_line({"start": 0, "end": 1, "workers": 0, "jobs": []}) is None


def test_cpu_samples_are_shares_of_the_interval(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4 5\n")
    sampler = CpuSampler(stat, interval=3600)
    assert sampler.available
    stat.write_text("cpu  150 0 150 750 150 0 0 0 0 0\n")  # 200 ticks: 100 busy, 50 idle, 50 iowait
    samples = sampler.stop()
    assert samples is not None and [(s["busy"], s["iowait"]) for s in samples] == [(50.0, 25.0)]
    assert CpuSampler(tmp_path / "missing").stop() is None


def test_trace_has_one_lane_per_worker() -> None:
    record = {
        "name": "r",
        "start": 100.0,
        "end": 110.0,
        "cpu": [{"t": 101.0, "busy": 50.0, "iowait": 1.5}],
        "jobs": [
            {**_job("a", 100.5, 102.0), "worker": "gw0", "on_critical_path": True},
            {**_job("b", 100.5, 101.0), "worker": "gw1", "on_critical_path": False},
            {**_job("c", None, None), "worker": None, "on_critical_path": False},
        ],
    }
    trace = to_trace(record)
    events = trace["traceEvents"]
    assert [(e["ph"], e["name"]) for e in events] == [
        ("M", "process_name"),
        ("M", "thread_name"),
        ("M", "thread_name"),
        ("X", "a"),
        ("X", "b"),
        ("C", "cpu %"),
    ]
    a, b = events[3], events[4]
    assert (a["ts"], a["dur"], a["tid"]) == (500_000, 1_500_000, 1)
    assert (b["ts"], b["dur"], b["tid"]) == (500_000, 500_000, 2)
    assert events[5]["ts"] == 1_000_000 and events[5]["args"] == {"busy": 50.0, "iowait": 1.5}
