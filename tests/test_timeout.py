"""Timeouts: every source pytest-timeout knows applies, and the job's whole tree is killed."""

from __future__ import annotations

import json
import signal

import pytest

from tests.conftest import JobWriter
from tests.helpers import alive, read_pids

# Background children, a grandchild, a setsid'd daemon and a double fork; TERM is ignored,
# so the KILL after the grace period is needed too.
TREE = """
sleep 101 & echo $! >> "$CIDAG_RUN_DIR/pids"
bash -c 'sleep 102 & echo $! >> "$CIDAG_RUN_DIR/pids"; wait' &
setsid sleep 103 & echo $! >> "$CIDAG_RUN_DIR/pids"
( ( sleep 104 & echo $! >> "$CIDAG_RUN_DIR/pids" ) & ) &
trap '' TERM
echo tree started
sleep 60
"""


def test_block_timeout_kills_every_descendant(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("hang", TREE, timeout="1")
    job("after", "echo still runs")
    result = pytester.runpytest("--cidag-kill-grace", "0.3", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "job 'hang' failed: Timeout (>1s): the job's process tree was killed",
            "*",
            "last 2 lines of output:",
            "  | tree started",
            "  | [[]cidag[]] job killed: timeout after 1s",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED cijobs/hang.sh::hang - job failed: Timeout (>1s)*"])
    run_dir = (pytester.path / ".cidag/runs/latest").resolve()
    pids = read_pids(run_dir / "pids")
    assert len(pids) == 4
    assert [pid for pid in pids if alive(pid)] == []


@pytest.mark.parametrize(
    "how",
    ["--timeout", "ini", "env", "marker"],
)
def test_every_timeout_source_applies(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    job("slow", "sleep 30")
    args = []
    if how == "--timeout":
        args = ["--timeout", "0.5"]
    elif how == "ini":
        pytester.makeini("[pytest]\ntimeout = 0.5\n")
    elif how == "env":
        monkeypatch.setenv("PYTEST_TIMEOUT", "0.5")
    else:
        pytester.makeconftest(
            """
            import pytest
            def pytest_collection_modifyitems(items):
                for item in items:
                    item.add_marker(pytest.mark.timeout(0.5))
            """
        )
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["job 'slow' failed: Timeout (>0.5s)*"])


def test_block_timeout_beats_the_command_line(pytester: pytest.Pytester, job: JobWriter) -> None:
    """The block's timeout is the job's own marker, so pytest-timeout's precedence makes it win."""
    job("long-but-allowed", "sleep 1.5", timeout="30")
    job("plain", "sleep 30")
    result = pytester.runpytest("--timeout", "1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["job 'plain' failed: Timeout (>1s)*"])


def test_timeout_zero_marker_disables(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("free", "sleep 1")
    pytester.makeconftest(
        """
        import pytest
        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.timeout(0))
        """
    )
    pytester.runpytest("--timeout", "0.3").assert_outcomes(passed=1)


def test_block_timeout_without_pytest_timeout(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("hang", "sleep 30", timeout="0.5")
    result = pytester.runpytest("-p", "no:timeout")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["job 'hang' failed: Timeout (>0.5s)*"])


def test_timeout_on_xdist_workers(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("hang", TREE, timeout="1")
    job("ok", "true")
    result = pytester.runpytest_subprocess("-n", "2", "--cidag-kill-grace", "0.3")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["job 'hang' failed: Timeout (>1s)*"])
    pids = read_pids((pytester.path / ".cidag/runs/latest").resolve() / "pids")
    assert [pid for pid in pids if alive(pid)] == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_job_that_ended_by_itself_is_never_a_timeout(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str]
) -> None:
    """One rule at every -n: "Timeout" only when the runner killed the job. A job that ended
    by itself (here, often right at its 1 ms deadline) is judged by its exit status."""
    names = [f"quick{i}" for i in range(30)]
    for name in names:
        job(name, "echo hi", timeout="0.001")
    result = pytester.runpytest("-rA", *xdist)
    run_dir = (pytester.path / ".cidag/runs/latest").resolve()
    codes = {r["job"]: r["returncode"] for r in map(json.loads, (run_dir / "timings.jsonl").read_text().splitlines())}
    assert sorted(codes) == sorted(names)
    passed = {line.split("::")[-1] for line in result.outlines if line.startswith("PASSED ")}
    timed_out = {line.split("::")[-1].split()[0] for line in result.outlines if "job failed: Timeout" in line}
    assert passed | timed_out == set(names)
    for name in names:
        if name in passed:
            assert codes[name] == 0
        else:  # the runner's TERM ended it
            assert codes[name] == -signal.SIGTERM, (name, codes[name])
