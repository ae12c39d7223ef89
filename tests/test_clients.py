"""IDE clients: what VS Code's and PyCharm's pytest integrations see of jobs, at every -n.

VS Code's Python adapter (``vscode_pytest``, loaded in every pytest process) learns an
item's path in ``pytest_runtest_protocol`` and reports from ``pytest_report_teststatus`` in
the same process; a result whose item it never saw is sent with a made-up id and dropped.
The conftest below does what the adapter does. PyCharm reads pytest through the real
``teamcity-messages`` plugin.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from tests.conftest import DATA, JobWriter

ADAPTER = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pytest

    PATHS = {}  # node id -> path, per process, as vscode_pytest keeps it


    def _process(config):
        workerinput = getattr(config, "workerinput", None)
        return workerinput["workerid"] if workerinput else "main"


    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_protocol(item, nextitem):
        PATHS[item.nodeid] = str(item.path)
        yield


    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_report_teststatus(report, config):
        yield
        if report.when == "call" or (report.when == "setup" and report.skipped):
            record = {
                "nodeid": report.nodeid,
                "path": PATHS.get(report.nodeid),  # None: the adapter drops the result
                "outcome": report.outcome,
                "process": _process(config),
            }
            with open(Path(str(config.rootpath)) / "adapter.jsonl", "a") as f:
                f.write(json.dumps(record) + "\\n")


    def pytest_runtest_logreport(report):
        # What the controller (the process that writes JUnit and the terminal) gets for a
        # skip: the same at every -n.
        if report.skipped and report.when == "setup" and not hasattr(report, "worker_id"):
            pass
    """
)

REPORTS = textwrap.dedent(
    """
    import json, os

    IS_WORKER = False


    def pytest_configure(config):
        global IS_WORKER
        IS_WORKER = hasattr(config, "workerinput")


    def pytest_runtest_logreport(report):
        # What the process that writes JUnit and the terminal gets for a blocked skip.
        if IS_WORKER or report.when != "setup" or not report.skipped:
            return
        longrepr = report.longrepr
        shape = [type(longrepr).__name__, *(list(longrepr) if isinstance(longrepr, tuple) else [str(longrepr)])]
        record = {
            "nodeid": report.nodeid,
            "location": list(report.location),
            "longrepr": shape,
            "sections": [list(s) for s in report.sections],
            "user_properties": [list(p) for p in report.user_properties],
        }
        with open(os.path.join(os.path.dirname(__file__), "reports.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\\n")
    """
)


def dag(job: JobWriter) -> set[str]:
    """A failing build, a chain and a matrix behind it, and unrelated work; returns the
    node ids of the jobs the failure blocks."""
    job("build", "echo compiling; exit 1")
    job("unit", "echo ok", needs='["build"]')
    job("e2e", "echo ok", needs='["unit"]')
    job("matrix", "echo $CIDAG_MATRIX_PY", needs='["build"]', matrix='{ py = ["py311", "py312"] }')
    job("docs", "echo docs")
    job("lint", "echo lint")
    return {
        "cijobs/unit.sh::unit",
        "cijobs/e2e.sh::e2e",
        "cijobs/matrix.sh::matrix[py311]",
        "cijobs/matrix.sh::matrix[py312]",
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("n", ["0", "2"])
def test_vscode_gets_every_blocked_dependent_with_its_path(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    blocked = dag(job)
    pytester.makeconftest(ADAPTER)
    result = pytester.runpytest_subprocess("-n", n, "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    records = read_jsonl(pytester.path / "adapter.jsonl")
    delivered = {r["nodeid"]: r for r in records if r["path"] is not None}
    for nodeid in sorted(blocked):
        assert nodeid in delivered, f"{nodeid} never reached the adapter with its path: {records}"
        record = delivered[nodeid]
        assert record["outcome"] == "skipped"
        assert record["path"] == str(pytester.path / nodeid.split("::")[0])
        assert (record["process"] == "main") == (n == "0")
    # every result of a job that ran reaches it too
    assert {"cijobs/build.sh::build", "cijobs/docs.sh::docs", "cijobs/lint.sh::lint"} <= set(delivered)


@pytest.mark.parametrize("n", ["0", "2"])
def test_vscode_run_button_on_a_blocked_job(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    # The IDE runs one job by its node id: what it needs is pulled in, fails, and the job
    # itself must still come back to the IDE as skipped.
    dag(job)
    pytester.makeconftest(ADAPTER)
    result = pytester.runpytest_subprocess("-n", n, "cijobs/e2e.sh::e2e")
    result.assert_outcomes(failed=1, skipped=2)
    delivered = {r["nodeid"]: r for r in read_jsonl(pytester.path / "adapter.jsonl") if r["path"] is not None}
    assert delivered["cijobs/e2e.sh::e2e"]["outcome"] == "skipped"
    assert delivered["cijobs/e2e.sh::e2e"]["path"] == str(pytester.path / "cijobs" / "e2e.sh")


def test_a_blocked_skip_is_the_same_report_at_every_n(pytester: pytest.Pytester, job: JobWriter) -> None:
    dag(job)
    pytester.makeconftest(REPORTS)
    reports = {}
    for n in ("0", "2"):
        path = pytester.path / "reports.jsonl"
        path.unlink(missing_ok=True)
        result = pytester.runpytest_subprocess("-n", n, "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2, failed=1, skipped=4)
        reports[n] = sorted(read_jsonl(path), key=lambda r: r["nodeid"])
    assert len(reports["0"]) == 4
    assert reports["0"] == reports["2"]
    e2e = next(r for r in reports["0"] if r["nodeid"] == "cijobs/e2e.sh::e2e")
    assert e2e["longrepr"] == [
        "tuple",
        str(pytester.path / "cijobs" / "e2e.sh"),
        1,
        "Skipped: upstream job 'build' failed (through 'unit')",
    ]


def teamcity_lines(result: pytest.RunResult) -> dict[str, str]:
    """testStarted's name -> metainfo."""
    started = {}
    for line in result.stdout.lines:
        if "##teamcity[testStarted" in line:
            fields = dict(re.findall(r"(\w+)='((?:[^'|]|\|.)*)'", line))
            started[fields["name"]] = fields["metainfo"].replace("|[", "[").replace("|]", "]")
    return started


def test_pycharm_gets_the_jobs_name_as_teamcity_metainfo(pytester: pytest.Pytester, job: JobWriter) -> None:
    # teamcity-messages sends the last dotted part of an item's domain (reportinfo's third
    # element) as metainfo, which PyCharm uses to re-run a test (-k) and to find its
    # parameters; a Python test's domain gives its name, so must a job's.
    job("build-wheel", "echo ok")
    job("test", "echo ok", matrix='{ py = ["py311", "py312"] }')
    job("lint", "echo ok", name='"lint.py"')
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--teamcity", "cijobs", "test_plain.py", "-v")
    assert result.ret == 0
    started = teamcity_lines(result)
    assert started == {
        "cijobs.build-wheel_sh.build-wheel": "build-wheel",
        "cijobs.test_sh.test(py311)": "test[py311]",
        "cijobs.test_sh.test(py312)": "test[py312]",
        "cijobs.lint_sh.lint_py": "py",  # teamcity-messages keeps what follows the last dot
        "test_plain.test_x": "test_x",
    }
    # pytest's own -v line shows a dotted job name as it is (a bare name would read lint::py)
    plain = pytester.runpytest_subprocess("cijobs", "-v")
    plain.stdout.fnmatch_lines(["cijobs/lint.sh::lint.py PASSED*"])
    # what PyCharm's re-run by metainfo does selects exactly that job
    rerun = pytester.runpytest_subprocess("cijobs", "-k", "test[py312]", "-q")
    rerun.assert_outcomes(passed=1, deselected=3)


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_cache_hit_reaches_every_consumer_as_a_pass(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    """VS Code's adapter, PyCharm's teamcity-messages and JUnit consumers see a hit as the
    pass it stands for, with its path; the JUnit file still validates against Jenkins' XSD."""
    job("build", "echo built", inputs="[]")
    job("test", "echo tested", needs='["build"]', inputs="[]")
    pytester.makeconftest(ADAPTER)
    pytester.runpytest_subprocess("-n", n).assert_outcomes(passed=2)
    (pytester.path / "adapter.jsonl").unlink()
    result = pytester.runpytest_subprocess("-n", n, "--teamcity", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2)
    delivered = {r["nodeid"]: r for r in read_jsonl(pytester.path / "adapter.jsonl") if r["path"] is not None}
    for name in ("build", "test"):
        nodeid = f"cijobs/{name}.sh::{name}"
        assert delivered[nodeid]["outcome"] == "passed"
        assert delivered[nodeid]["path"] == str(pytester.path / "cijobs" / f"{name}.sh")
        assert any(
            "##teamcity[testFinished" in line and f"name='cijobs.{name}_sh.{name}'" in line
            for line in result.stdout.lines
        ), name
    text = result.stdout.str()
    assert "testFailed" not in text and "testIgnored" not in text
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(pytester.path / "junit.xml"))
    root = ET.parse(pytester.path / "junit.xml").getroot()
    assert {c.get("name") for c in root.iter("testcase") if c.find("failure") is None} == {"build", "test"}
    hits = [p.get("value") for p in root.iter("property") if p.get("name") == "cidag_cache_hits"]
    assert hits == ["cijobs/build.sh::build cijobs/test.sh::test"]


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_flaky_job_and_a_first_pass_reach_every_consumer(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    """A job that passed on its retry, and its first-pass item (``--cidag-first-testcases``):
    VS Code's adapter and PyCharm's teamcity-messages get passes with the job's path, the
    JUnit file carries the failed attempts as ``flakyFailure`` and validates."""
    count = pytester.path / "count"
    job(
        "e2e",
        f'echo "$CIDAG_JOB" >> {count}; [ "$(grep -c "^$CIDAG_JOB$" {count})" -ge 2 ] || exit 4',
        retries="1",
        testcases="true",
    )
    pytester.makeconftest(ADAPTER)
    result = pytester.runpytest_subprocess(
        "-n", n, "--teamcity", "--junitxml=junit.xml", "--cidag-first-testcases=smoke", "-p", "no:randomly"
    )
    assert result.parseoutcomes() == {"flaky": 2}
    delivered = {r["nodeid"]: r for r in read_jsonl(pytester.path / "adapter.jsonl") if r["path"] is not None}
    for name in ("e2e", "e2e@first"):
        nodeid = f"cijobs/e2e.sh::{name}"
        assert delivered[nodeid]["outcome"] == "passed"
        assert delivered[nodeid]["path"] == str(pytester.path / "cijobs" / "e2e.sh")
        assert any(
            "##teamcity[testFinished" in line and f"name='cijobs.e2e_sh.{name}'" in line for line in result.outlines
        )
    assert "testFailed" not in result.stdout.str()
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(pytester.path / "junit.xml"))
    root = ET.parse(pytester.path / "junit.xml").getroot()
    flaky = {c.get("name"): len(c.findall("flakyFailure")) for c in root.iter("testcase")}
    assert flaky == {"e2e": 1, "e2e@first": 1}
