"""Retries: a failed job runs again; a job that passes on a later attempt is flaky (issue 18)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema
import yaml  # type: ignore[import-untyped]  # no stubs: the test only loads a workflow
from junitparser import xunit2

from pytest_cidag.core import junit
from tests.conftest import DATA, JobWriter, order_log
from tests.test_record import jobs_by_id, record_of

XDIST = pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])


def counting(passes_on: int | None, then: str = "") -> str:
    """A job body that counts its attempts (in ``<job>.count`` in the rootdir), says which
    it is, appends ``<job>-<attempt>`` to order.log, and passes from attempt ``passes_on``
    on (never when None); ``then`` runs before that verdict."""
    verdict = "exit 1" if passes_on is None else f'[ "$n" -ge {passes_on} ]'
    return f"""
        n=$(cat "$CIDAG_JOB.count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$CIDAG_JOB.count"
        echo "attempt $n"
        echo "$CIDAG_JOB-$n" >> order.log
        {then}
        {verdict}
        """


def attempts_run(pytester: pytest.Pytester, job_id: str) -> int:
    return int((pytester.path / f"{job_id}.count").read_text())


def junit_cases(pytester: pytest.Pytester) -> dict[str, xunit2.TestCase]:
    """The JUnit XML, valid against Jenkins' schema, read back by junitparser (xunit2 flavour:
    it knows Surefire's rerun and flaky elements)."""
    path = pytester.path / "junit.xml"
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(path))
    cases: dict[str, xunit2.TestCase] = {}
    for suite in xunit2.JUnitXml.fromfile(str(path)):
        for case in suite:
            assert isinstance(case, xunit2.TestCase)
            cases[case.name] = case
    assert not list(ET.parse(path).iter("properties")), "a carrier property was left in the XML"
    return cases


@XDIST
def test_a_job_that_passes_on_its_second_attempt_is_flaky(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("flaky", counting(passes_on=2), retries="2")
    job("steady", "echo steady")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--junitxml=junit.xml", "-v")
    assert result.ret == 0
    assert result.parseoutcomes() == {"passed": 1, "flaky": 1}
    verbose = "cijobs/flaky.sh::flaky FLAKY*" if n == "0" else "[[]gw?[]] [[]*[]] FLAKY cijobs/flaky.sh::flaky*"
    result.stdout.fnmatch_lines([verbose, "*= 1 passed, 1 flaky in *"])
    result.stdout.fnmatch_lines(
        [
            "*= flaky jobs =*",
            "FLAKY cijobs/flaky.sh::flaky - passed on attempt 2; attempt 1: exit code 1 (flaky@attempt1.log)",
        ]
    )
    assert attempts_run(pytester, "flaky") == 2  # not a third time
    run = pytester.path / "run"
    assert (run / "flaky@attempt1.log").read_text() == "attempt 1\n"
    assert (run / "flaky.log").read_text() == "attempt 2\n"
    assert not (run / "steady@attempt1.log").exists()

    cases = junit_cases(pytester)
    flaky = cases["flaky"]
    assert flaky.is_passed and flaky.is_flaky and not flaky.is_rerun
    [failure] = flaky.flaky_failures()
    assert (failure.message, failure.type) == ("job failed: exit code 1", "failed")
    assert failure.stack_trace is not None
    assert "job 'flaky' failed: exit code 1\n" in failure.stack_trace
    assert "run/flaky@attempt1.log\n" in failure.stack_trace  # where its log is now
    assert failure.stack_trace.endswith("  | attempt 1\n")
    assert not cases["steady"].is_flaky

    jobs = jobs_by_id(record_of(run))
    assert (jobs["flaky"]["outcome"], jobs["flaky"]["flaky"], jobs["flaky"]["log"]) == ("passed", True, "flaky.log")
    first, second = jobs["flaky"]["attempts"]
    assert (first["number"], first["outcome"], first["exit_code"], first["log"]) == (
        1,
        "failed",
        1,
        "flaky@attempt1.log",
    )
    assert (second["number"], second["outcome"], second["exit_code"], second["log"]) == (2, "passed", 0, "flaky.log")
    assert jobs["flaky"]["start"] == first["start"] < first["end"] <= second["start"] < second["end"]
    assert jobs["flaky"]["end"] == second["end"]
    assert (jobs["steady"]["flaky"], len(jobs["steady"]["attempts"])) == (False, 1)


@XDIST
def test_a_job_that_fails_every_attempt_fails_with_its_last(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("broken", counting(passes_on=None), retries="2")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    assert "flaky" not in result.parseoutcomes()
    result.stdout.fnmatch_lines(
        [
            "job 'broken' failed: exit code 1 (attempt 3 of 3)",
            "log: * run/broken.log",
            "earlier:  exit code 1 (broken@attempt1.log), exit code 1 (broken@attempt2.log)",
            "  | attempt 3",
            "FAILED cijobs/broken.sh::broken - job failed: exit code 1 (attempt 3 of 3)",
        ]
    )
    run = pytester.path / "run"
    assert [(run / name).read_text() for name in ("broken@attempt1.log", "broken@attempt2.log", "broken.log")] == [
        "attempt 1\n",
        "attempt 2\n",
        "attempt 3\n",
    ]
    case = junit_cases(pytester)["broken"]
    assert case.is_rerun and not case.is_flaky
    [final] = case.result  # pytest's own <failure>: the last attempt
    assert isinstance(final, junitparser.Failure)
    assert final.message == "job failed: exit code 1 (attempt 3 of 3)"
    reruns = case.rerun_failures()
    assert [r.stack_trace.splitlines()[-1] for r in reruns if r.stack_trace] == ["  | attempt 1", "  | attempt 2"]
    job_record = jobs_by_id(record_of(run))["broken"]
    assert (job_record["outcome"], job_record["flaky"], job_record["exit_code"]) == ("failed", False, 1)
    assert [a["outcome"] for a in job_record["attempts"]] == ["failed"] * 3


@XDIST
def test_dependents_start_after_the_final_attempt(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # The outputs of a failed attempt never reach the next: each attempt writes the same
    # name, which would collide (a failure) if the first attempt's line were still there.
    job("flaky", counting(passes_on=3, then='echo "try=$n" >> "$CIDAG_OUTPUT"'), retries="3", retry_delay="0.3")
    job("after", 'echo "after-$CIDAG_NEEDS_FLAKY_TRY" >> order.log', needs='["flaky"]')
    job("other", "sleep 0.5; echo other >> order.log")  # keeps a second worker busy meanwhile
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n)
    assert result.parseoutcomes() == {"passed": 2, "flaky": 1}
    order = order_log(pytester)
    assert order.index("after-3") > max(order.index(f"flaky-{i}") for i in (1, 2, 3))


@XDIST
def test_maxfail_counts_a_job_once_after_its_last_attempt(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # "flaky" fails twice, then passes: not a failure. "broken" fails three times: one.
    # "last" shares a resource with "broken" and comes after it, so it starts only once
    # "broken" has ended: with --maxfail=2 it runs, and "after" too.
    job("flaky", counting(passes_on=3), retries="2")
    job("after", "true", needs='["flaky"]')
    job("broken", counting(passes_on=None), retries="2", resources='["r"]')
    job("last", "echo last >> order.log", resources='["r"]')
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--maxfail=2")
    assert result.parseoutcomes() == {"failed": 1, "passed": 2, "flaky": 1}
    assert "last" in order_log(pytester)
    assert jobs_by_id(record_of(pytester.path / "run"))["last"]["outcome"] == "passed"


@XDIST
def test_x_stops_only_after_the_last_attempt(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("broken", counting(passes_on=None), retries="1")
    job("later", "echo later >> order.log", needs='["broken"]')
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "-x")
    assert attempts_run(pytester, "broken") == 2
    result.stdout.fnmatch_lines(["*stopping after 1 failure*"])
    record = record_of(pytester.path / "run")
    assert record["interrupted"]["by"] == "maxfail"
    assert record["interrupted"]["reason"].startswith("stopping after 1 failure")  # pytest's own at -n 0


@XDIST
def test_a_timed_out_attempt_is_retried(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("slow-once", counting(passes_on=2, then='[ "$n" -ge 2 ] || sleep 60'), retries="1", timeout="1")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "--junitxml=junit.xml")
    assert result.parseoutcomes() == {"flaky": 1}
    result.stdout.fnmatch_lines(["FLAKY * - passed on attempt 2; attempt 1: timed out (slow-once@attempt1.log)"])
    run = pytester.path / "run"
    assert (run / "slow-once@attempt1.log").read_text().endswith("[cidag] job killed: timeout after 1s\n")
    [failure] = junit_cases(pytester)["slow-once"].flaky_failures()
    assert (failure.type, failure.message) == (
        "timeout",
        "job failed: Timeout (>1s): the job's process tree was killed",
    )
    first, _ = jobs_by_id(record_of(run))["slow-once"]["attempts"]
    assert (first["outcome"], first["exit_code"], first["signal"]) == ("timeout", None, "SIGTERM")


@XDIST
def test_exit_77_and_a_job_that_cannot_start_are_not_retried(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("skips", counting(passes_on=None, then='echo "no browser here"; exit 77'), retries="3")
    job("nothing", "echo hi", shebang="/nonexistent/interpreter", retries="3")
    result = pytester.runpytest("--cidag-run-dir", "run", "-n", n, "-rs")
    result.assert_outcomes(skipped=1, failed=1)
    assert attempts_run(pytester, "skips") == 1
    result.stdout.fnmatch_lines(["*job 'nothing' failed: could not start*", "SKIPPED * no browser here"])
    assert sorted(p.name for p in (pytester.path / "run").glob("*@attempt*")) == []
    jobs = jobs_by_id(record_of(pytester.path / "run"))
    assert [a["outcome"] for a in jobs["skips"]["attempts"]] == ["skipped"]
    assert jobs["nothing"]["attempts"] == []  # no process ran


def test_cidag_retries_is_the_default_and_the_block_wins(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("flaky", counting(passes_on=2))
    job("never", counting(passes_on=2), retries="0")  # e.g. a deploy: never twice
    result = pytester.runpytest("--cidag-run-dir", "run", "--cidag-retries=1")
    assert result.parseoutcomes() == {"failed": 1, "flaky": 1}
    assert (attempts_run(pytester, "flaky"), attempts_run(pytester, "never")) == (2, 1)
    for name in ("flaky", "never"):
        (pytester.path / f"{name}.count").unlink()
    pytester.makeini("[pytest]\ncidag_retries = 1\n")
    assert pytester.runpytest("--cidag-run-dir", "run").parseoutcomes() == {"failed": 1, "flaky": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cidag-retries=x"], "ERROR: cidag_retries: 'x' from --cidag-retries must be a whole number from 0 to 10"),
        (
            ["-o", "cidag_retries=-1"],
            "ERROR: cidag_retries: '-1' from ini cidag_retries must be a whole number from 0 to 10",
        ),
    ],
)
def test_a_bad_retries_option_is_a_usage_error(
    pytester: pytest.Pytester, job: JobWriter, args: list[str], message: str
) -> None:
    job("a", "true")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_stale_attempt_logs_of_a_reused_run_directory_go(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("flaky", counting(passes_on=2), retries="1")
    assert pytester.runpytest("--cidag-run-dir", "run").parseoutcomes() == {"flaky": 1}
    assert (pytester.path / "run" / "flaky@attempt1.log").exists()
    assert pytester.runpytest("--cidag-run-dir", "run").parseoutcomes() == {"passed": 1}  # at once, this time
    assert not (pytester.path / "run" / "flaky@attempt1.log").exists()


def test_a_flaky_pass_is_not_cached(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("flaky", counting(passes_on=2), retries="1", inputs="[]")
    assert pytester.runpytest("--cidag-why").parseoutcomes() == {"flaky": 1}
    # a pass at the first attempt next time: it ran (not restored), and is stored now
    second = pytester.runpytest("--cidag-why")
    assert second.parseoutcomes() == {"passed": 1}
    assert attempts_run(pytester, "flaky") == 3
    third = pytester.runpytest("--cidag-why")
    assert third.parseoutcomes() == {"passed": 1}
    third.stdout.fnmatch_lines(["flaky: hit"])
    assert attempts_run(pytester, "flaky") == 3


def test_the_first_run_says_why_a_flaky_pass_was_not_stored(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("flaky", counting(passes_on=2), retries="1", inputs="[]")
    result = pytester.runpytest("--cidag-why")
    result.stdout.fnmatch_lines(
        ["flaky: miss: never stored; not stored: it passed only after a failed attempt (flaky)"]
    )


@pytest.mark.parametrize(
    ("report", "shown"),
    [([], True), (["-ra"], True), (["-rA"], True), (["-rf"], True), (["-rs"], False), (["-rN"], False)],
)
def test_the_flaky_section_goes_with_failures_and_passes(
    pytester: pytest.Pytester, job: JobWriter, report: list[str], shown: bool
) -> None:
    job("flaky", counting(passes_on=2), retries="1")
    result = pytester.runpytest("--cidag-run-dir", "run", *report)
    assert result.parseoutcomes() == {"flaky": 1}
    assert ("FLAKY cijobs/flaky.sh::flaky - passed on attempt 2" in result.stdout.str()) == shown
    result.stdout.fnmatch_lines(["cijobs/flaky.sh f *"])  # its letter in the progress line


# --- a cancel during the wait before a retry ---------------------------------------------


def _start(pytester: pytest.Pytester, *args: str) -> subprocess.Popen[bytes]:
    """pytest in the background, once the job's first attempt is over (its timing line is
    written after its tree is gone): it is in its retry wait."""
    proc: subprocess.Popen[bytes] = pytester.popen(
        [sys.executable, "-m", "pytest", "--cidag-run-dir", "run", *args], stdin=subprocess.DEVNULL
    )
    timings = pytester.path / "run" / "timings.jsonl"
    deadline = time.monotonic() + 60
    while not (timings.exists() and timings.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "the first attempt never ended"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize(
    ("n", "sig"),
    [("0", signal.SIGINT), ("0", signal.SIGTERM), ("2", signal.SIGINT), ("2", signal.SIGTERM)],
    ids=["n0-SIGINT", "n0-SIGTERM", "n2-SIGINT", "n2-SIGTERM"],
)
def test_a_signal_during_the_retry_wait_ends_the_run_at_once(
    pytester: pytest.Pytester, job: JobWriter, n: str, sig: signal.Signals
) -> None:
    job("waits", counting(passes_on=None), retries="1", retry_delay="3600")
    proc = _start(pytester, "-n", n)
    proc.send_signal(sig)  # to pytest alone (under xdist, the controller), as a CI cancel is sent
    out, err = proc.communicate(timeout=60)  # far less than the hour it would wait
    text = out.decode() + err.decode()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    assert attempts_run(pytester, "waits") == 1
    run = pytester.path / "run"
    assert (run / "waits.log").read_text() == "attempt 1\n"  # its log stays where it was
    assert not list(run.glob("*@attempt*"))


def test_x_elsewhere_cancels_a_retry_wait(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("waits", counting(passes_on=None), retries="1", retry_delay="3600")
    # fails once "waits" has failed (and is in its wait)
    job("fails", "while [ ! -e waits.count ]; do sleep 0.05; done; sleep 0.5; exit 1")
    result = pytester.runpytest_subprocess("--cidag-run-dir", "run", "-n", "2", "-x", timeout=120)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*job 'waits' failed: exit code 1 (attempt 1 of 2; not retried: cancelled: stopping after 1 failure*"]
    )
    assert attempts_run(pytester, "waits") == 1


# --- pytest-rerunfailures ------------------------------------------------------------------


@XDIST
def test_rerunfailures_reruns_become_retries(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    """--reruns reruns a job through its retries at every -n: the logs of both attempts are
    kept, and pytest-rerunfailures does not run the job's protocol again itself."""
    job("flaky", counting(passes_on=2))
    result = pytester.runpytest("-p", "rerunfailures", "--cidag-run-dir", "run", "-n", n, "--reruns", "1")
    assert result.parseoutcomes() == {"flaky": 1}  # no "rerun": not pytest-rerunfailures' own
    assert attempts_run(pytester, "flaky") == 2
    run = pytester.path / "run"
    assert ((run / "flaky@attempt1.log").read_text(), (run / "flaky.log").read_text()) == ("attempt 1\n", "attempt 2\n")


def test_rerunfailures_still_reruns_python_tests(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("flaky", counting(passes_on=2))
    pytester.makepyfile(
        test_once="""
        from pathlib import Path

        def test_once():
            count = Path("python.count")
            n = int(count.read_text()) if count.exists() else 0
            count.write_text(str(n + 1))
            assert n >= 1
        """
    )
    result = pytester.runpytest("-p", "rerunfailures", "--cidag-run-dir", "run", "--reruns", "1")
    assert result.parseoutcomes() == {"passed": 1, "flaky": 1, "rerun": 1}


@XDIST
def test_the_flaky_marker_and_the_block_come_before_reruns(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("marked", counting(passes_on=3))
    job("listed", counting(passes_on=2), markers='["flaky"]')  # the marker's default: one rerun
    job("never", counting(passes_on=2), retries="0")
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "marked":
                    item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=0.1))
        """
    )
    result = pytester.runpytest("-p", "rerunfailures", "--cidag-run-dir", "run", "-n", n, "--reruns", "5")
    assert result.parseoutcomes() == {"failed": 1, "flaky": 2}
    counts = {name: attempts_run(pytester, name) for name in ("marked", "listed", "never")}
    assert counts == {"marked": 3, "listed": 2, "never": 1}


def test_cidag_retries_comes_before_reruns_and_force_reruns_before_both(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    job("flaky", counting(passes_on=2))
    base = ["-p", "rerunfailures", "--cidag-run-dir", "run"]
    result = pytester.runpytest(*base, "--reruns", "1", "--cidag-retries", "0")
    assert result.parseoutcomes() == {"failed": 1}
    (pytester.path / "flaky.count").unlink()
    result = pytester.runpytest(*base, "--force-reruns", "1", "--cidag-retries", "0")
    assert result.parseoutcomes() == {"flaky": 1}


def test_reruns_beyond_what_a_job_gets_are_cut_with_a_warning(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("broken", counting(passes_on=None))
    result = pytester.runpytest("-p", "rerunfailures", "--cidag-run-dir", "run", "--reruns", "20")
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*cidag: --reruns 20 is more than a job is retried: jobs get 10*"])
    assert attempts_run(pytester, "broken") == 11


def test_the_exported_workflow_gives_a_retried_job_time_for_every_attempt(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    """GitHub's timeout-minutes is a backstop behind the job's own timeout: it must not end
    a job that is on its retries (3 attempts of 90 s and 2 waits of 30 s: 330 s)."""
    job("e2e", "true", timeout="90", retries="2", retry_delay="30")
    job("unit", "true", timeout="90")
    result = pytester.runpytest("--cidag-export=github-actions", "--cidag-export-file=cidag.yml")
    assert result.ret == 0
    workflow = yaml.safe_load((pytester.path / "cidag.yml").read_text())
    assert workflow["jobs"]["e2e"]["steps"][-1]["timeout-minutes"] == 7
    assert workflow["jobs"]["unit"]["steps"][-1]["timeout-minutes"] == 3


# --- the JUnit rewrite, alone --------------------------------------------------------------


def test_an_attempt_carried_to_the_xml_becomes_its_element(tmp_path: Path) -> None:
    """What a log holds that XML cannot (ANSI escapes) is written as pytest writes it."""
    name, value = junit.attempt_property(junit.FLAKY_FAILURE, "job failed: exit code 1", "failed", "red \x1b[31m!\n")
    xml = tmp_path / "junit.xml"
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name="pytest", tests="1", failures="0", errors="0")
    case = ET.SubElement(suite, "testcase", classname="cijobs.a.sh", name="a")
    ET.SubElement(ET.SubElement(case, "properties"), "property", name=name, value=value)
    ET.ElementTree(root).write(xml, encoding="utf-8", xml_declaration=True)
    assert junit.rewrite(xml) == 1
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(xml))
    [element] = ET.parse(xml).getroot().iter(junit.FLAKY_FAILURE)
    assert element.attrib == {"message": "job failed: exit code 1", "type": "failed"}
    assert element.findtext("stackTrace") == "red #x1B[31m!\n"
    with pytest.raises(ValueError, match="not an attempt's element"):
        junit.attempt_property("failure", "", "", "")
