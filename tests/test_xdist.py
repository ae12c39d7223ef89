"""The DAG across xdist workers: real workers, real jobs, order checked from a timestamped log."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest

from tests.conftest import JobWriter
from tests.helpers import alive, read_pids


def timed(body: str = "", sleep: float = 0.0) -> str:
    """A job body that logs its start and end with timestamps to times.log."""
    return (
        'echo "start $CIDAG_JOB $(date +%s.%N)" >> times.log\n'
        + (f"sleep {sleep}\n" if sleep else "")
        + body
        + '\necho "end $CIDAG_JOB $(date +%s.%N)" >> times.log'
    )


def intervals(pytester: pytest.Pytester) -> dict[str, tuple[float, float]]:
    starts: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for line in (pytester.path / "times.log").read_text().splitlines():
        what, job, ts = line.split()
        if what == "start":
            starts[job] = float(ts)
        else:
            out[job] = (starts[job], float(ts))
    return out


def max_concurrency(spans: dict[str, tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "--cidag-kill-grace", "0.3", *args)


def module_with_teardown(pytester: pytest.Pytester, teardown: str) -> None:
    """test_m.py: test_one, using a module-scoped fixture whose teardown runs ``teardown``."""
    pytester.makepyfile(
        test_m=f"""
        import os, signal, pytest

        @pytest.fixture(scope="module")
        def res():
            yield 1
            {teardown}

        def test_one(res):
            assert res == 1
        """
    )


@pytest.fixture
def diamond(job: JobWriter) -> dict[str, list[str]]:
    edges = {
        "a": [],
        "b": ["a"],
        "c": ["a"],
        "d": ["b", "c"],
        "e": [],
        "f": ["e", "b"],
        "g": ["d", "f"],
    }
    for name, needs in edges.items():
        job(name, timed(sleep=0.2), needs=json.dumps(needs))
    return edges


@pytest.mark.parametrize("n", ["2", "3"])
def test_nothing_starts_before_its_needs_passed(
    pytester: pytest.Pytester, diamond: dict[str, list[str]], n: str
) -> None:
    result = run(pytester, "-n", n)
    result.assert_outcomes(passed=7)
    spans = intervals(pytester)
    for job, needs in diamond.items():
        for need in needs:
            assert spans[need][1] <= spans[job][0], f"{job} started before {need} ended"
    assert max_concurrency(spans) <= int(n)


def test_dispatch_is_immediate(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("long", timed(sleep=4))
    job("first", timed())
    job("then", timed(), needs='["first"]')
    job("last", timed(), needs='["then"]')
    run(pytester, "-n", "2").assert_outcomes(passed=4)
    spans = intervals(pytester)
    # the chain ran to its end on the other worker while the long job was still running
    assert spans["last"][1] < spans["long"][1]


def test_a_worker_takes_work_while_another_still_starts(pytester: pytest.Pytester, job: JobWriter) -> None:
    # xdist asks the scheduler to schedule only once every worker that said "ready" has
    # collected. Worker gw1 here says "ready", then finishes collecting only after the job
    # has run (or gives up after 15 s): the job must start on gw0 meanwhile.
    pytester.makeconftest(
        """
        import os, time

        def wait_for(path, seconds):
            deadline = time.monotonic() + seconds
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.02)

        def pytest_collection_modifyitems(config, items):  # before the worker hands in its collection
            worker = getattr(config, "workerinput", {}).get("workerid")
            if worker == "gw0":
                # gw1 has said "ready" (at its session start) before gw0 hands in its collection
                wait_for("gw1-collecting", 15)
                return
            if worker != "gw1":
                return
            with open("gw1-collecting", "w"):
                pass
            deadline = time.monotonic() + 15
            while not os.path.exists("ran") and time.monotonic() < deadline:
                time.sleep(0.02)
            with open("gw1.log", "w") as f:
                f.write("job ran first" if os.path.exists("ran") else "gave up")
        """
    )
    job("first", timed("touch ran"))
    job("second", timed(), needs='["first"]')
    run(pytester, "-n", "2").assert_outcomes(passed=2)
    assert (pytester.path / "gw1.log").read_text() == "job ran first"


def test_concurrency_limit_and_resources(pytester: pytest.Pytester, job: JobWriter) -> None:
    for i in range(6):
        job(f"free{i}", timed(sleep=0.3))
    job("port-a", timed(sleep=0.5), resources='["port:8701"]')
    job("port-b", timed(sleep=0.5), resources='["port:8701", "gpu"]')
    job("gpu", timed(sleep=0.5), resources='["gpu"]')
    run(pytester, "-n", "3").assert_outcomes(passed=9)
    spans = intervals(pytester)
    assert max_concurrency(spans) == 3
    for x, y in [("port-a", "port-b"), ("port-b", "gpu")]:
        assert spans[x][1] <= spans[y][0] or spans[y][1] <= spans[x][0], f"{x} and {y} overlapped"


def test_outputs_and_skips_across_workers(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", 'echo "wheel=pkg.whl" >> "$CIDAG_OUTPUT"')
    job("use", '[ "$CIDAG_NEEDS_BUILD_WHEEL" = pkg.whl ]', needs='["build"]')
    job("broken", "exit 1")
    job("after-broken", "true", needs='["broken"]')
    job("after-after", "true", needs='["after-broken"]')
    result = run(pytester, "-n", "2", "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] cijobs/after-broken.sh:1: upstream job 'broken' failed",
            "SKIPPED [[]1[]] cijobs/after-after.sh:1: upstream job 'broken' failed (through 'after-broken')",
        ],
        consecutive=False,
    )


def test_selection_and_deselected_count(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build-js", timed())
    job("build-wheel", timed(), needs='["build-js"]')
    job("playwright-server", timed(), needs='["build-wheel"]')
    job("lint", timed())
    job("docs", timed())
    result = run(pytester, "-n", "2", "-k", "playwright-server")
    result.assert_outcomes(passed=3, deselected=2)
    assert set(intervals(pytester)) == {"build-js", "build-wheel", "playwright-server"}


def test_maxfail_kills_running_jobs_on_other_workers(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a-slow", "echo $$ > slow.pid; sleep 60 & echo $! >> slow.pid; wait")
    job("breaks", "until [ -s slow.pid ]; do sleep 0.05; done; sleep 0.5; exit 1")  # while a-slow runs
    job("later", "true", needs='["breaks"]')
    job("queued", "true")  # waits for a free worker, and none frees up before the stop
    result = run(pytester, "-n", "2", "-x", "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # as without xdist, not xdist's 2
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/a-slow.sh:1: cancelled: stopping after 1 failure ('breaks' failed)"])
    assert [p for p in read_pids(pytester.path / "slow.pid") if alive(p)] == []
    timings = [json.loads(line) for line in (latest(pytester) / "timings.jsonl").read_text().splitlines()]
    slow = next(t for t in timings if t["job"] == "a-slow")
    assert slow["end"] - slow["start"] < 30  # killed, not run for its 60 seconds
    assert "[cidag] job killed: stopping after 1 failure" in (latest(pytester) / "a-slow.log").read_text()


@pytest.mark.parametrize(
    "plugins",
    [[], ["-p", "rerunfailures"], ["-p", "rerunfailures", "--reruns", "1"]],
    ids=["alone", "rerunfailures", "rerunfailures-reruns"],
)
def test_worker_crash_fails_the_job_and_the_run_goes_on(
    pytester: pytest.Pytester, job: JobWriter, plugins: list[str]
) -> None:
    """Also with pytest-rerunfailures, whose crash hook reads ``sched.config`` (it was an
    INTERNALERROR) and asks the scheduler to queue the crashed job again (it cannot)."""
    job(
        "crash",
        "sleep 100 & echo $! > crash.pid\nsetsid sleep 100 & echo $! >> crash.pid\nkill -9 $PPID\nsleep 100",
    )
    job("after-crash", "true", needs='["crash"]')
    for i in range(4):
        job(f"other{i}", timed(sleep=0.2))
    result = run(pytester, "-n", "2", "-rs", *plugins)
    assert "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running 'cijobs/crash.sh::crash'*"], consecutive=False)
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/after-crash.sh:1: upstream job 'crash' crashed its worker"])
    assert [p for p in read_pids(pytester.path / "crash.pid") if alive(p)] == []


def outcomes_by_id(xml: Path) -> dict[str, tuple[str, str]]:
    """classname::name -> (kind, message); a skip's message is its whole text (path:line: reason)."""
    suite = next(iter(junitparser.JUnitXml.fromfile(str(xml))))
    out = {}
    for case in suite:
        kind = type(case.result[0]).__name__ if case.result else "Passed"
        message = case.result[0].message if case.result else ""
        if kind == "Skipped":
            message = case.result[0].text or message
        out[f"{case.classname}::{case.name}"] = (kind, message or "")
    return out


def test_outcomes_match_the_single_process_run(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build-js", "true")
    job("build-wheel", "exit 1", needs='["build-js"]')
    job("test", "true", matrix='{ py = ["3.11", "3.12"] }', needs='["build-js"]')
    job("e2e", "true", needs='["build-wheel", "test"]')
    job("docs", "echo 'nothing to build'; exit 77")
    job("publish", "true", needs='["docs", "test[3.12]"]')
    job("slowpoke", "sleep 30", timeout="0.5")
    job("after-slow", "true", needs='["slowpoke"]')
    run(pytester, "-p", "no:xdist", "--junitxml=single.xml")
    run(pytester, "-n", "3", "--junitxml=multi.xml")
    single = outcomes_by_id(pytester.path / "single.xml")
    multi = outcomes_by_id(pytester.path / "multi.xml")
    assert single == multi
    e2e = pytester.path / "cijobs" / "e2e.sh"
    assert single["cijobs.e2e.sh::e2e"] == ("Skipped", f"{e2e}:1: upstream job 'build-wheel' failed")
    assert single["cijobs.after-slow.sh::after-slow"][1].endswith("upstream job 'slowpoke' timed out")


def test_critical_path_first_with_recorded_durations(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a-quick", timed(sleep=0.1))
    job("b-quick", timed(sleep=0.1))
    job("z-head", timed(sleep=0.1))
    job("z-tail", timed(sleep=1.0), needs='["z-head"]')
    run(pytester, "-n", "1").assert_outcomes(passed=4)  # warm-up: durations are recorded
    (pytester.path / "times.log").unlink()
    run(pytester, "-n", "1").assert_outcomes(passed=4)
    spans = intervals(pytester)
    order = sorted(spans, key=lambda j: spans[j][0])
    # declared last, but the longest path: first (declaration order alone would run it last)
    assert order[:2] == ["z-head", "z-tail"]
    (pytester.path / "times.log").unlink()
    run(pytester, "-n", "1", "--cidag-first", "b-quick").assert_outcomes(passed=4)
    spans = intervals(pytester)
    assert min(spans, key=lambda j: spans[j][0]) == "b-quick"


def test_python_tests_with_dependency_markers(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", timed(sleep=0.3))
    pytester.makepyfile(
        test_api="""
        import pytest, pathlib

        @pytest.mark.dependency(depends=["build"])
        def test_after_build():
            assert "end build" in pathlib.Path("times.log").read_text()

        def test_free():
            pass
        """
    )
    run(pytester, "-n", "2").assert_outcomes(passed=3)


def test_plain_python_suite_keeps_xdist_scheduling(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="import pytest\n@pytest.mark.parametrize('i', range(6))\ndef test_x(i): pass\n")
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            dsession = session.config.pluginmanager.getplugin("dsession")
            if dsession is not None:
                sched = dsession.sched
                name = type(getattr(sched, "fallback", None) or sched).__name__
                open("scheduler.txt", "w").write(name)
        """
    )
    run(pytester, "-n", "2").assert_outcomes(passed=6)
    assert (pytester.path / "scheduler.txt").read_text() == "LoadScheduling"


def latest(pytester: pytest.Pytester) -> Path:
    return (pytester.path / ".cidag/runs/latest").resolve()


def test_no_tick_in_counts(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", "true")
    job("b", "true")
    result = run(pytester, "-n", "2", "-v")
    # the hidden tick item is not counted: two items make 50% each
    result.stdout.fnmatch_lines(["[[]gw?[]] [[] 50%[]] PASSED cijobs/*", "[[]gw?[]] [[]100%[]] PASSED cijobs/*"])
    assert "cidag-tick" not in result.stdout.str()


def test_lf_and_no_deps_under_xdist(pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    job("build", timed('echo "version=v$$" >> "$CIDAG_OUTPUT"'))
    job("test-a", timed('[ -z "$FAIL_A" ] || exit 1'), needs='["build"]')
    job("deploy", timed('echo "$CIDAG_NEEDS_BUILD_VERSION" > deployed'), needs='["test-a", "build"]')
    job("docs", timed())
    monkeypatch.setenv("FAIL_A", "1")
    run(pytester, "-n", "2").assert_outcomes(passed=2, failed=1, skipped=1)
    monkeypatch.delenv("FAIL_A")
    (pytester.path / "times.log").unlink()
    run(pytester, "-n", "2", "--lf").assert_outcomes(passed=3, deselected=1)
    assert set(intervals(pytester)) == {"build", "test-a", "deploy"}
    version = (pytester.path / "deployed").read_text()
    (pytester.path / "times.log").unlink()
    run(pytester, "-n", "2", "-k", "deploy", "--cidag-no-deps").assert_outcomes(passed=1, deselected=3)
    assert set(intervals(pytester)) == {"deploy"}
    assert (pytester.path / "deployed").read_text() == version  # the latest run's outputs


def test_fast_fail_kills_a_term_ignoring_job_at_once(pytester: pytest.Pytester, job: JobWriter) -> None:
    """A cancelled job gets TERM then KILL within 0.3 s, whatever the kill grace (here 30 s)."""
    job("a-stubborn", "trap '' TERM; echo $$ > stubborn.pid; sleep 60 & wait; sleep 60")
    job("breaks", "until [ -s stubborn.pid ]; do sleep 0.02; done; exit 1")  # once the other runs
    result = pytester.runpytest_subprocess("-n", "2", "-x", "-p", "no:randomly", "--cidag-kill-grace", "30")
    result.assert_outcomes(failed=1, skipped=1)
    timings = [json.loads(line) for line in (latest(pytester) / "timings.jsonl").read_text().splitlines()]
    by_job = {t["job"]: t for t in timings}
    # KILL came after the short abort grace, not after the 30 s grace: a gap of ~0.3 s
    # against one of 30 s, so no load can blur the two
    assert by_job["a-stubborn"]["end"] - by_job["breaks"]["end"] < 15
    assert not alive(read_pids(pytester.path / "stubborn.pid")[0])


@pytest.mark.parametrize("n", ["0", "2"])
def test_graph_errors_under_xdist_name_the_problem(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # The same usage error with and without xdist: said once, exit code 4.
    job("a", "true", needs='["b"]')
    job("b", "true", needs='["a"]')
    result = run(pytester, "-n", n)
    result.stderr.fnmatch_lines(["ERROR: cidag: the jobs' needs form a cycle: a -> b -> a"])
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    assert output.count("form a cycle") == 1
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_job_that_ended_by_itself_is_not_cancelled_late(pytester: pytest.Pytester, job: JobWriter) -> None:
    """A fast-fail abort arriving while a passed job's leftovers get their grace changes nothing."""
    # a-fails fails once b-passes has ended, while b's TERM-ignoring leftover gets its grace
    # (whenever each worker started)
    job("a-fails", "until [ -e b-done ]; do sleep 0.05; done; sleep 0.2; exit 1")
    job("b-passes", "(trap '' TERM; sleep 30) & sleep 0.3; touch b-done; exit 0")
    result = pytester.runpytest_subprocess("-n", "2", "-x", "-p", "no:randomly", "--cidag-kill-grace", "2")
    result.assert_outcomes(passed=1, failed=1)


def test_module_fixtures_are_not_rebuilt_under_xdist(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a-job", "true")
    pytester.makepyfile(
        test_mod="""
        import pytest
        calls = []

        @pytest.fixture(scope="module")
        def res():
            calls.append(1)
            yield
            open("teardown.log", "a").write("module teardown\\n")

        class TestC:
            def test_1(self, res): assert calls == [1]
            def test_2(self, res): assert calls == [1]
            def test_3(self, res): assert calls == [1]
        """
    )
    run(pytester, "-n", "1").assert_outcomes(passed=4)
    assert (pytester.path / "teardown.log").read_text() == "module teardown\n"


def test_a_dependent_starts_while_the_controller_is_busy_with_reports(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    # The worker says "passed" as soon as the need has passed: the dependent does
    # not wait for the controller to work through the need's reports. Here the controller
    # will not finish the need's call report until the dependent has started (or a minute
    # has passed: then the dependent waited for it).
    pytester.makeconftest(
        """
        import pathlib, time

        def pytest_configure(config):
            global ON_WORKER
            ON_WORKER = hasattr(config, "workerinput")

        def pytest_runtest_logreport(report):
            if ON_WORKER or report.when != "call" or not report.nodeid.endswith("::need"):
                return
            log = pathlib.Path("times.log")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if "start dependent" in log.read_text():
                    pathlib.Path("controller.log").write_text("the dependent started meanwhile")
                    return
                time.sleep(0.02)
            pathlib.Path("controller.log").write_text("the dependent waited")
        """
    )
    job("need", timed())
    job("dependent", timed(), needs='["need"]')
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "controller.log").read_text() == "the dependent started meanwhile"
    spans = intervals(pytester)
    assert spans["need"][1] <= spans["dependent"][0]


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_job_whose_teardown_fails_holds_back_its_dependents(
    pytester: pytest.Pytester, job: JobWriter, n: str
) -> None:
    # A job has passed only when its teardown has: under xdist as without it, and -x counts it.
    pytester.makeconftest(
        """
        def pytest_runtest_teardown(item):
            if item.name == "a":
                raise RuntimeError("teardown of a broke")
        """
    )
    job("a", timed())
    job("b", timed(), needs='["a"]')
    job("c", timed(), needs='["b"]')
    job("other", timed(sleep=0.5))
    result = run(pytester, "-n", n, "-rs")
    result.assert_outcomes(passed=2, errors=1, skipped=2)
    result.stdout.fnmatch_lines(["*b*upstream job 'a' errored*"])
    assert set(intervals(pytester)) == {"a", "other"}
    result = run(pytester, "-n", n, "-x")
    assert result.ret == 1
    assert "b" not in intervals(pytester)


def test_no_job_is_sent_to_a_worker_xdist_shuts_down(pytester: pytest.Pytester, job: JobWriter) -> None:
    # With restarts disabled, xdist shuts the run down after a crash. A job that passes
    # afterwards must not release work to a worker that is shutting down: xdist would
    # then find that work unfinished and stop with an INTERNALERROR.
    job("crash", "until [ -e a-started ]; do sleep 0.05; done; kill -9 $PPID; sleep 10")  # while a runs
    job("after-crash", "true", needs='["crash"]')
    job("a", timed("touch a-started; sleep 1.5"))
    job("d", timed())
    result = run(pytester, "-n", "2", "--max-worker-restart=0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*crashed*crash*"])
    assert "a" in intervals(pytester)


def test_a_crash_stops_the_run_at_once_under_x(pytester: pytest.Pytester, job: JobWriter) -> None:
    # The crash is the first failure: nothing starts after it, not even on the worker
    # that replaces the crashed one, and the job running elsewhere is cancelled.
    job("crash", "until [ -e a-started ]; do sleep 0.05; done; kill -9 $PPID; sleep 10")  # while a runs
    job("after-crash", "true", needs='["crash"]')
    job("a", timed("touch a-started; sleep 20"))
    job("d", timed())
    result = run(pytester, "-n", "2", "-x", "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=1)  # the crash, and "a" cancelled; "d" never sent
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/a.sh:* cancelled: stopping after 1 failure ('crash' crashed)"])
    spans = intervals(pytester)
    assert "a" not in spans or spans["a"][1] - spans["a"][0] < 15  # killed, not run out


@pytest.mark.parametrize("n", ["0", "1"])
def test_maxfail_counts_failed_reports_as_pytest_does(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # A test whose call fails and whose teardown errors counts twice, as in pytest's Session.
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.fixture
        def fx():
            yield
            raise RuntimeError("teardown boom")

        def test_a(fx):
            assert False
        """
    )
    for name in ("z1", "z2", "z3"):
        job(name, timed())
    result = run(pytester, "-n", n, "--maxfail=2", "--cidag-first", "test_x.py::test_a")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, errors=1)
    assert not (pytester.path / "times.log").exists()


def test_a_worker_dying_right_after_a_pass_treats_all_dependents_alike(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    # The worker dies just after job a's reports (as an OOM kill could). xdist reports a
    # crash against a; whether or not its dependents already started, they all get the
    # same treatment: never one run and the other skipped.
    pytester.makeconftest(
        """
        import os, signal, time

        def pytest_configure(config):
            global ON_WORKER  # not the environment: this run's controller may inherit it
            ON_WORKER = hasattr(config, "workerinput")

        def pytest_runtest_logfinish(nodeid, location):
            if ON_WORKER and nodeid.endswith("::a"):
                time.sleep(0.2)
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    job("a", timed())
    job("b", timed(sleep=0.5), needs='["a"]')
    job("c", timed(sleep=0.5), needs='["a"]')
    result = run(pytester, "-n", "2", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED cijobs/a.sh::a - worker 'gw*' crashed while running*"])
    ran = set(intervals(pytester)) - {"a"}
    assert ran in (set(), {"b", "c"})


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_module_fixture_teardown_error_is_an_error(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # Under xdist the module's teardown happens in the tick after the test (only then is
    # the worker's next item known); its error is still the test's teardown error.
    module_with_teardown(pytester, 'raise RuntimeError("module teardown boom")')
    job("a", timed(sleep=0.3))
    result = run(pytester, "-n", n, "--junitxml=out.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_one*", "*RuntimeError: module teardown boom*"])
    cases = junitparser.JUnitXml.fromfile(str(pytester.path / "out.xml"))
    errors = [c.name for suite in cases for c in suite if any(isinstance(r, junitparser.Error) for r in c.result)]
    assert errors == ["test_one"]


def test_a_crash_in_the_deferred_teardown_is_the_previous_items(pytester: pytest.Pytester, job: JobWriter) -> None:
    # The module fixture's teardown kills the worker. It runs in the tick after test_one,
    # once job z was sent: the crash is test_one's (as plain xdist says), and z, which
    # never started, runs on the replacement worker.
    module_with_teardown(pytester, "os.kill(os.getpid(), signal.SIGKILL)")
    job("z", timed())
    job("y", timed(), needs='["z"]')
    result = run(pytester, "-n", "1", "--cidag-first", "test_m.py::test_one", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED test_m.py::test_one - worker 'gw0' crashed while running 'test_m.py::t*"])
    assert set(intervals(pytester)) == {"z", "y"}


@pytest.mark.parametrize("n", ["0", "2", "3"])
def test_dependencies_between_python_tests_hold_across_workers(
    pytester: pytest.Pytester, job: JobWriter, n: str
) -> None:
    # pytest-dependency's names in each scope (module, class, a name=, session node ids)
    # are edges of the graph: a test never starts before the test it depends on passed,
    # whichever worker ran that one. A test that depends on a failed one is skipped.
    pytester.makepyfile(
        test_x="""
        import time, pytest

        @pytest.mark.dependency()
        def test_a():
            time.sleep(0.3)

        @pytest.mark.dependency(depends=["test_a"])
        def test_b():
            pass

        class TestC:
            @pytest.mark.dependency()
            def test_x(self):
                time.sleep(0.3)

            @pytest.mark.dependency(depends=["TestC::test_x"])
            def test_y(self):
                pass

        @pytest.mark.dependency(name="named")
        def test_named():
            time.sleep(0.3)

        @pytest.mark.dependency(depends=["named"])
        def test_after_named():
            pass

        @pytest.mark.dependency()
        def test_broken():
            assert False

        @pytest.mark.dependency(depends=["test_broken"])
        def test_after_broken():
            pass
        """,
        test_y="""
        import pytest

        @pytest.mark.dependency(depends=["test_x.py::test_a"], scope="session")
        def test_session():
            pass
        """,
    )
    job("a", timed())
    result = run(pytester, "-n", n, "test_x.py", "test_y.py", "cijobs")
    result.assert_outcomes(passed=8, failed=1, skipped=1)


@pytest.mark.parametrize("n", ["0", "2"])
def test_lf_keeps_a_passed_test_that_a_job_needs(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch, n: str
) -> None:
    # pytest's --lf keeps only the failed tests of a file at collection; a job's need on a
    # test that passed in that file must still resolve (and the test pulled in if needed).
    (pytester.path / "unit").mkdir()
    (pytester.path / "unit" / "test_a.py").write_text(
        """
import os, pytest

@pytest.mark.dependency(name="unit_ok")
def test_unit():
    assert not os.environ.get("FAIL_UNIT")

def test_bad():
    assert 0
"""
    )
    pytester.makeini("[pytest]\ncidag_paths = cijobs\ntestpaths = cijobs unit\n")  # the file is not named itself
    job("deploy", timed(), needs='["unit_ok"]')
    job("lint", timed("exit 1"))
    monkeypatch.setenv("FAIL_UNIT", "1")
    run(pytester, "-n", n).assert_outcomes(passed=0, failed=3, skipped=1)
    monkeypatch.delenv("FAIL_UNIT")
    (pytester.path / "times.log").unlink()
    result = run(pytester, "-n", n, "--lf")
    result.assert_outcomes(passed=2, failed=2)  # test_unit, deploy; test_bad, lint
    result = run(pytester, "-n", n, "--lf")
    result.assert_outcomes(failed=2, deselected=2)


def test_a_crash_in_the_last_deferred_teardown_fails_the_run(pytester: pytest.Pytester, job: JobWriter) -> None:
    # Nothing is sent after test_one: its module is torn down in the worker's last tick,
    # which dies there. As in plain xdist, that is test_one's crash.
    module_with_teardown(pytester, "os._exit(3)")
    job("j", timed())
    result = run(pytester, "-n", "1", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED test_m.py::test_one - worker 'gw0' crashed while running*"])


@pytest.mark.parametrize("n", ["0", "2"])
def test_pytest_exit_in_a_test_ends_the_run(
    pytester: pytest.Pytester, job: JobWriter, n: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under xdist the test exits once a job has started on the other worker: that job is
    # cancelled and reported, not dropped. Without xdist nothing else has started.
    pytester.makepyfile(
        test_e="""
        import os, pathlib, time
        import pytest

        def test_exit():
            deadline = time.monotonic() + 60
            log = pathlib.Path("times.log")
            while os.environ.get("WAIT_FOR_A_JOB") and not (log.exists() and "start" in log.read_text()):
                assert time.monotonic() < deadline, "no job started on the other worker"
                time.sleep(0.02)
            pytest.exit("bye", returncode=3)
        """
    )
    job("a", timed(sleep=20))
    job("long", timed(sleep=20))
    if n == "2":
        monkeypatch.setenv("WAIT_FOR_A_JOB", "1")
    result = run(pytester, "-n", n, "--cidag-first", "test_e.py::test_exit", "--junitxml=out.xml")
    assert result.ret == 3
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*Exit:*"])
    times = pytester.path / "times.log"
    if n == "0":
        assert not times.exists()
        return
    started = {line.split()[1] for line in times.read_text().splitlines()}
    reported = {c.name for suite in junitparser.JUnitXml.fromfile(str(pytester.path / "out.xml")) for c in suite}
    assert started and started <= reported


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_skip_names_the_same_blocker_with_and_without_xdist(
    pytester: pytest.Pytester, job: JobWriter, n: str
) -> None:
    # x needs f and early-skip, which is skipped first; f fails after it. Without xdist x's
    # skip names f (the first of its needs that did not pass); under xdist too, not
    # whichever ended first.
    job("f", "for i in $(seq 200); do [ -e s-done ] && break; sleep 0.05; done; exit 1")
    job("early-skip", "touch s-done; echo no GPU; exit 77")
    job("x", "true", needs='["f", "early-skip"]')
    job("y", "true", needs='["x"]')
    result = run(pytester, "-n", n, "-rs")
    result.assert_outcomes(failed=1, skipped=3)
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/x.sh:1: upstream job 'f' failed"])


def test_a_scheduler_hook_that_would_take_a_run_with_jobs_is_refused(pytester: pytest.Pytester, job: JobWriter) -> None:
    # A tryfirst pytest_xdist_make_scheduler answers before pytest-cidag's: the jobs would
    # run with no regard for their graph. A plain one is not used, and the run says so.
    job("f", "exit 1")
    job("d", "true", needs='["f"]')
    pytester.makeconftest(
        """
        import os
        import pytest
        from xdist.scheduler import LoadScheduling

        @pytest.hookimpl(tryfirst=os.environ.get("FIRST") == "1")
        def pytest_xdist_make_scheduler(config, log):
            return LoadScheduling(config, log)
        """
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIRST", "1")
        result = run(pytester, "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cidag: the run has jobs, but another plugin's pytest_xdist_make_scheduler*"])
    result = run(pytester, "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "cidag: the run has jobs, so they are scheduled by their graph; not used: "
            "pytest_xdist_make_scheduler in */conftest.py, --dist loadfile"
        ]
    )
