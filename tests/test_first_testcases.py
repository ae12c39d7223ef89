"""``--cidag-first-testcases``: a narrowed first pass, then the whole selection, one result.

The first pass's items are their own (``suite@first[3.11]``), run with CIDAG_TESTCASES set to
the expression, go first by priority (and, with -x, before anything of the full pass starts),
and fail the run on their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import junitparser
import pytest

from pytest_cidag.core.graph import GraphError, JobGraph, Node
from pytest_cidag.core.jobspec import FIRST_SUFFIX, MAX_ID_LENGTH, JobSpecError, parse_text
from pytest_cidag.core.plan import DagPlan, with_pass_locks
from pytest_cidag.core.scheduling import DagScheduling, SchedulerChoice
from tests.conftest import LOG, JobWriter, order_log
from tests.test_scheduling import TICK, FakeController, FakeNode, complete, running

XDIST = pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])

#: Each job says which CIDAG_TESTCASES it got, and fails when it is "broken".
SEEN = 'echo "$CIDAG_JOB ${CIDAG_TESTCASES-unset}" >> seen.log\n[ "${CIDAG_TESTCASES-}" = broken ] && exit 1; exit 0'

FIRST = ["suite@first[3.11]", "suite@first[3.12]", "unit@first"]
FULL = ["aa", "suite[3.11]", "suite[3.12]", "unit", "zz"]


@pytest.fixture
def project(job: JobWriter) -> None:
    """aa; build -> suite[3.11, 3.12] -> zz; unit. suite and unit narrow their suites."""
    job("aa", LOG)
    job("build", LOG)
    job("suite", f"{LOG}\n{SEEN}", needs='["build"]', testcases="true", matrix='{ py = ["3.11", "3.12"] }')
    job("unit", f"{LOG}\n{SEEN}", testcases="true")
    job("zz", LOG, needs='["suite"]')


def run(pytester: pytest.Pytester, n: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-n", n, "-p", "no:randomly", "--cidag-run-dir", "run", *args)


def record(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    """run.json's jobs by id."""
    data = json.loads((pytester.path / "run" / "run.json").read_text())
    return {job["id"]: job for job in data["jobs"]}


def seen(pytester: pytest.Pytester) -> set[str]:
    return set((pytester.path / "seen.log").read_text().splitlines())


def test_n0_runs_the_first_pass_then_the_rest(pytester: pytest.Pytester, project: None) -> None:
    run(pytester, "0", "--cidag-first-testcases", "login").assert_outcomes(passed=9)
    # the first pass and what it needs, then the rest in the usual order
    assert order_log(pytester) == ["build", *FIRST, *FULL]


def test_n2_dispatches_the_first_pass_first(pytester: pytest.Pytester, project: None) -> None:
    run(pytester, "2", "--cidag-first-testcases", "login").assert_outcomes(passed=9)
    jobs = record(pytester)
    queued = {job: jobs[job]["queued"] for job in jobs}
    # unit@first is ready from the start: nothing of the full pass is sent before it
    assert all(queued["unit@first"] < queued[job] for job in FULL)
    # suite's first-pass legs become ready with its full legs (when build passes): first
    for leg in ("suite@first[3.11]", "suite@first[3.12]"):
        assert all(queued[leg] < queued[job] for job in ("suite[3.11]", "suite[3.12]", "zz"))


@XDIST
def test_each_pass_gets_its_testcases(pytester: pytest.Pytester, project: None, n: str) -> None:
    run(pytester, n, "--cidag-first-testcases", "login").assert_outcomes(passed=9)
    first = {"suite@first[3.11] login", "suite@first[3.12] login", "unit@first login"}
    assert seen(pytester) == first | {"suite[3.11] unset", "suite[3.12] unset", "unit unset"}
    (pytester.path / "seen.log").unlink()
    run(pytester, n, "--cidag-first-testcases", "login", "--cidag-testcases", "all").assert_outcomes(passed=9)
    assert seen(pytester) == first | {"suite[3.11] all", "suite[3.12] all", "unit all"}


@XDIST
def test_a_first_pass_failure_fails_the_run(pytester: pytest.Pytester, project: None, n: str) -> None:
    """The old runner took the result from the second pass alone."""
    result = run(pytester, n, "--cidag-first-testcases", "broken")
    # the full pass passes, and what needs suite runs: it needs the full pass only
    result.assert_outcomes(passed=6, failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED cijobs/suite.sh::suite@first?3.11? - job failed: exit code 1"])
    assert {job: entry["outcome"] for job, entry in record(pytester).items()} == {
        "aa": "passed",
        "build": "passed",
        "suite@first[3.11]": "failed",
        "suite@first[3.12]": "failed",
        "suite[3.11]": "passed",
        "suite[3.12]": "passed",
        "unit@first": "failed",
        "unit": "passed",
        "zz": "passed",
    }


@XDIST
def test_x_stops_before_the_full_pass_starts(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # at -n 2, aa could start on the idle worker while build runs: with -x it must not
    job("aa", LOG)
    job("build", f"{LOG}\nsleep 0.5")
    job("suite", f"{LOG}\n{SEEN}", needs='["build"]', testcases="true")
    result = run(pytester, n, "-x", "--cidag-first-testcases", "broken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    assert order_log(pytester) == ["build", "suite@first"]  # nothing of the full pass started


@XDIST
def test_with_x_the_full_pass_starts_once_the_first_pass_passed(
    pytester: pytest.Pytester, project: None, n: str
) -> None:
    run(pytester, n, "-x", "--cidag-first-testcases", "login").assert_outcomes(passed=9)
    jobs = record(pytester)
    first_ended = max(jobs[job]["end"] for job in FIRST)
    # (queued: when the scheduler sent it; at -n 0 jobs run in order, none is queued)
    started = [jobs[job]["queued"] or jobs[job]["start"] for job in FULL]
    assert all(first_ended <= start for start in started), (first_ended, started)


@XDIST
def test_first_pass_items_show_alike_everywhere(pytester: pytest.Pytester, project: None, n: str) -> None:
    """--collect-only -q, the graph, JUnit XML and run.json name the same items; only jobs
    that declare testcases = true have a first-pass item."""
    ids = {f"cijobs/{name.split('@')[0].split('[')[0]}.sh::{name}" for name in ["build", *FIRST, *FULL]}
    option = ("--cidag-first-testcases", "login")
    collected = run(pytester, n, "--collect-only", "-q", *option).outlines
    assert {line for line in collected if "::" in line} == ids
    graph = json.loads("".join(run(pytester, n, "--cidag-graph=json", "-q", *option).outlines))
    assert {job["nodeid"] for job in graph["jobs"]} == ids
    first = next(job for job in graph["jobs"] if job["id"] == "suite@first[3.11]")
    assert first["needs"] == ["build"]
    assert [job["needs"] for job in graph["jobs"] if job["id"] == "zz"] == [["suite[3.11]", "suite[3.12]"]]
    run(pytester, n, "--junitxml=out.xml", *option).assert_outcomes(passed=9)
    xml = junitparser.JUnitXml.fromfile(str(pytester.path / "out.xml"))
    cases = {
        f"{case.classname.replace('.', '/').replace('/sh', '.sh')}::{case.name}" for suite in xml for case in suite
    }
    assert cases == ids
    assert {job["nodeid"] for job in record(pytester).values()} == ids
    assert (pytester.path / "run" / "suite@first[3.11].log").is_file()


@XDIST
def test_k_selects_both_passes_and_a_node_id_one(pytester: pytest.Pytester, project: None, n: str) -> None:
    run(pytester, n, "-k", "suite", "--cidag-first-testcases", "login").assert_outcomes(passed=5, deselected=4)
    assert sorted(order_log(pytester)) == sorted(["build", "suite@first[3.11]", "suite@first[3.12]", *FULL[1:3]])
    (pytester.path / "order.log").unlink()
    # what an IDE re-runs: the first-pass item, and what it needs
    run(pytester, n, "cijobs/suite.sh::suite@first[3.12]", "--cidag-first-testcases", "login").assert_outcomes(passed=2)
    assert order_log(pytester) == ["build", "suite@first[3.12]"]
    (pytester.path / "order.log").unlink()
    # ::NAME@first: every first-pass leg (as ::NAME is every full-pass leg)
    run(pytester, n, "cijobs/suite.sh::suite@first", "--cidag-first-testcases", "login").assert_outcomes(passed=3)
    assert sorted(order_log(pytester)) == ["build", "suite@first[3.11]", "suite@first[3.12]"]


@XDIST
def test_no_first_pass_selected_is_a_usage_error(pytester: pytest.Pytester, project: None, n: str) -> None:
    result = run(pytester, n, "-k", "aa", "--cidag-first-testcases", "login")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cidag: --cidag-first-testcases 'login': no selected job declares testcases = true, "
            "so nothing runs first; select one of those that do (suite, unit)"
        ]
    )
    assert order_log(pytester) == []


@XDIST
def test_the_passes_are_cached_apart(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("suite", f"{LOG}\n{SEEN}", testcases="true", inputs="[]")
    option = ("--cidag-first-testcases", "login", "--cidag-why")
    result = run(pytester, n, *option)
    result.assert_outcomes(passed=2)
    # the full pass runs second: the nearest stored entry is the first pass's, keyed on its expression
    result.stdout.fnmatch_lines(["suite: miss: env changed: CIDAG_TESTCASES", "suite@first: miss: never stored"])
    keys = {name: (pytester.path / "run" / f"{name}.key").read_text() for name in ("suite", "suite@first")}
    assert keys["suite"] != keys["suite@first"]
    result = run(pytester, n, *option)
    result.stdout.fnmatch_lines(["suite: hit", "suite@first: hit"])
    assert order_log(pytester) == ["suite@first", "suite"]  # from the first run only
    # the first pass is the job run with CIDAG_TESTCASES=login: so is this run
    result = run(pytester, n, "--cidag-testcases", "login", "--cidag-why")
    result.stdout.fnmatch_lines(["suite: hit"])
    assert (pytester.path / "run" / "suite.key").read_text() == keys["suite@first"]


# --- the parts, without pytest runs -----------------------------------------------------------


def test_testcases_in_the_block() -> None:
    spec = parse_text("# /// cidag\n# testcases = true\n# matrix = { py = ['3.12'] }\n# ///\n", Path("t.sh"))
    assert spec.testcases
    assert [leg.first_pass_id for leg in spec.legs()] == ["t@first[3.12]"]
    assert "testcases" not in spec.block_data()  # not part of a cache key: it changes nothing the job does
    with pytest.raises(JobSpecError, match=r"'testcases' must be true or false, got a string: 'yes'"):
        parse_text("# /// cidag\n# testcases = 'yes'\n# ///\n", Path("t.sh"))
    # a first-pass id is longer, and names files too
    name = "n" * (MAX_ID_LENGTH - len(FIRST_SUFFIX) + 1)  # fits alone, not as name@first
    parse_text(f"# /// cidag\n# name = '{name}'\n# ///\n", Path("t.sh"))
    with pytest.raises(JobSpecError, match=f"is {MAX_ID_LENGTH + 1} characters long"):
        parse_text(f"# /// cidag\n# name = '{name}'\n# testcases = true\n# ///\n", Path("t.sh"))


def test_nothing_needs_a_first_pass_node() -> None:
    nodes = [
        Node(key="t.sh::t@first", label="t@first", job="t", first_pass_of="t.sh::t"),
        Node(key="t.sh::t", label="t", job="t"),
        Node(key="d.sh::d", label="d", job="d", needs=("t",)),
    ]
    graph = JobGraph.build(nodes)
    assert graph.needs["d.sh::d"] == ("t.sh::t",)  # the full pass only
    for name in ("t@first", "t.sh::t@first"):
        with pytest.raises(GraphError, match=f"needs '{name}', which is not"):
            JobGraph.build([*nodes[:2], Node(key="e.sh::e", label="e", job="e", needs=(name,))])


def passes(maxfail: int) -> tuple[DagScheduling, FakeController]:
    """Two workers; up -> t@first and t (the two passes of t); other, alone."""
    nodes = [
        Node(key="up", label="up", job="up"),
        Node(key="t", label="t", job="t", needs=("up",)),  # before its first pass: only the tier puts that first
        Node(key="t@first", label="t@first", job="t", needs=("up",), first_pass_of="t"),
        Node(key="other", label="other", job="other"),
    ]
    graph = JobGraph.build(nodes)
    keys = list(graph.nodes)
    plan = DagPlan(graph=graph, run_keys=keys, tick=TICK, resources=with_pass_locks(graph, {}))
    controller = FakeController(plan, maxfail)
    choice = SchedulerChoice(controller)
    workers = [FakeNode(f"gw{i}", [*keys, TICK]) for i in range(2)]
    for worker in workers:
        choice.add_node(worker)
        choice.add_node_collection(worker, [*keys, TICK])
    sched = controller.used
    assert isinstance(sched, DagScheduling)
    sched.schedule()
    return sched, controller


def test_the_full_pass_fills_idle_workers_without_x() -> None:
    sched, controller = passes(maxfail=0)
    assert running(sched) == {"gw0": "up", "gw1": "other"}
    complete(sched, controller, "up")
    complete(sched, controller, "other")
    # both ready; the first pass goes first, and the two passes of t never run at once
    assert running(sched) == {"gw0": "t@first"}
    complete(sched, controller, "t@first", "failed")
    assert running(sched) == {"gw0": "t"}  # independent of its first pass


def test_with_x_only_the_first_pass_starts_until_it_ended() -> None:
    sched, controller = passes(maxfail=1)
    assert running(sched) == {"gw0": "up"}  # other waits, though a worker is idle
    complete(sched, controller, "up")
    assert running(sched) == {"gw0": "t@first"}
    complete(sched, controller, "t@first")
    assert sorted(running(sched).values()) == ["other", "t"]


def test_with_x_a_first_pass_failure_starts_nothing_more() -> None:
    sched, controller = passes(maxfail=1)
    complete(sched, controller, "up")
    complete(sched, controller, "t@first", "failed")
    assert running(sched) == {}
    assert sched.tests_finished
