"""JUnit XML as the GitHub tools that annotate a pull request read it: each form, at -n 0 and 2.

The tools are GitHub Actions, not on PyPI or npm, so they cannot run here. Each is
represented by a port of the few lines that find a failure's file and line, named after the
function it ports (their sources: dorny/test-reporter, EnricoMi/publish-unit-test-result-action,
mikepenz/action-junit-report). README "JUnit consumers" has the results of the real tools.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema

from pytest_cidag import plugin
from pytest_cidag.core.junit import FILE_PROPERTY, LINE_PROPERTY, frame, properties, rewrite
from pytest_cidag.junitform import FORMS
from tests.conftest import DATA, JobWriter

# --- ports of the consumers' code ------------------------------------------------------------

#: dorny/test-reporter, src/parsers/java-junit/java-stack-trace-element-parser.ts
DORNY_FRAME = re.compile(r"^\s*at (\S+/\S*/)?(.*)\((.*):(\d+)\)$")


def dorny(text: str, tracked: list[str]) -> tuple[str, int] | None:
    """``JavaJunitParser.exceptionThrowSource`` with ``getFilePath``: the first frame line
    whose file name a tracked file has, in directories that end with the frame's package."""
    for line in text.splitlines():
        match = DORNY_FRAME.match(line)
        if match is None:
            continue
        trace_path, file_name, number = match.group(2), match.group(3), match.group(4)
        parts = trace_path.split(".")
        # the package ends before the first part that starts with a capital (JS: part[0] <= 'Z')
        first_class = next((i for i, part in enumerate(parts) if part[:1] and part[0] <= "Z"), None)
        package = parts[:first_class]
        if not package:
            continue
        for path in (p for p in tracked if os.path.basename(p) == file_name):
            dirs = os.path.dirname(path).split("/")
            if len(package) <= len(dirs) and dirs[len(dirs) - len(package) :] == package:
                return path, int(number)
    return None


def enricomi(case: ET.Element) -> tuple[str, int]:
    """``process_junit_xml_elems`` reads ``file`` and ``line``; ``get_case_annotation``
    annotates ``test_file or class_name or '/'`` at ``line or 0``."""
    line = case.get("line")
    return case.get("file") or case.get("classname") or "/", int(line) if line else 0


def mikepenz(case: ET.Element, text: str) -> tuple[str, int]:
    """``resolveFileAndLine`` as ``createTestCaseAnnotation`` calls it (the testcase's
    ``file`` and ``line``, the classname, the failure's text); its later glob for a file
    that does not exist is left out: here every path it returns exists or is ``sh``."""
    file_name = case.get("file") or case.get("classname", "").split(".")[-1]
    line = int(case.get("line") or 0)  # safeParseInt; 0 counts as missing
    if file_name and line:
        return file_name, line
    matches = re.findall(rf" [^ ]*{re.escape(file_name)}.*?:\d+", text)
    if not matches:
        return file_name, line or 1
    return file_name, int(matches[-1].split(":")[-1])


# --- the runs ---------------------------------------------------------------------------------


def project(pytester: pytest.Pytester, job: JobWriter) -> dict[str, tuple[str, int]]:
    """Jobs that fail, in cijobs/ and below it, one that passes, and a failing Python test;
    returns each job's testcase name -> its file and the 1-based line of its block."""
    job("build-wheel", "echo 'error: foo.c:3: boom' >&2; exit 3", shebang="/usr/bin/env bash", timeout="30")
    job("deep", "exit 1", directory="cijobs/sub", matrix='{ py = ["3.11", "3.12"] }')
    job("lint", "echo fine")
    pytester.makepyfile(test_plain="def test_x():\n    assert False\n")
    return {
        "build-wheel": ("cijobs/build-wheel.sh", 2),
        "deep[3.11]": ("cijobs/sub/deep.sh", 1),
        "deep[3.12]": ("cijobs/sub/deep.sh", 1),
        "lint": ("cijobs/lint.sh", 1),
    }


def run(pytester: pytest.Pytester, n: str, *args: str) -> dict[str, ET.Element]:
    result = pytester.runpytest_subprocess("-n", n, "--junitxml=junit.xml", "cijobs", "test_plain.py", *args)
    result.assert_outcomes(passed=1, failed=4)
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    return {case.get("name", ""): case for case in suite.iter("testcase")}


def failure_text(case: ET.Element) -> str:
    failure = case.find("failure")
    return "" if failure is None else failure.text or ""


@pytest.mark.parametrize("n", ["0", "2"])
def test_the_jenkins_form_is_valid_and_dorny_finds_the_job(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    where = project(pytester, job)
    cases = run(pytester, n)  # the default form
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(pytester.path / "junit.xml"))
    suite = next(iter(junitparser.JUnitXml.fromfile(str(pytester.path / "junit.xml"))))
    assert (suite.tests, suite.failures) == (5, 4)
    tracked = [path for path, _ in where.values()]
    for name, (path, line) in where.items():
        case = cases[name]
        assert case.get("file") is None and case.get("line") is None  # the schema has no place for them
        assert case.find("properties") is None
        if name == "lint":
            continue
        assert dorny(failure_text(case), tracked) == (path, line)
        # what the other two make of it (README): the classname's path, and a dotted tail
        assert enricomi(case) == (path.replace("/", "."), 0)
        assert mikepenz(case, failure_text(case)) == ("sh", line)


@pytest.mark.parametrize("n", ["0", "2"])
def test_the_github_form_gives_every_consumer_the_jobs_file_and_line(
    pytester: pytest.Pytester, job: JobWriter, n: str
) -> None:
    where = project(pytester, job)
    cases = run(pytester, n, "--cidag-junit-form=github")
    tracked = [path for path, _ in where.values()]
    for name, (path, line) in where.items():
        case = cases[name]
        assert (case.get("file"), case.get("line")) == (path, str(line))  # passed jobs too
        assert case.find("properties") is None  # the carriers are gone
        if name == "lint":
            continue
        assert enricomi(case) == (path, line)
        assert mikepenz(case, failure_text(case)) == (path, line)
        assert dorny(failure_text(case), tracked) == (path, line)
    # a Python test keeps pytest's own testcase (its line would be its def, not its failure)
    assert cases["test_x"].get("file") is None
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="'file'"):
        xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(pytester.path / "junit.xml"))


def test_the_github_form_corrects_xunit1s_zero_based_lines(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "exit 1", shebang="/bin/sh", timeout="30")
    xml = pytester.path / "junit.xml"
    pytester.runpytest("-o", "junit_family=xunit1", f"--junitxml={xml}").assert_outcomes(failed=1)
    assert ET.parse(xml).getroot().find("*/testcase").get("line") == "1"  # type: ignore[union-attr]
    pytester.runpytest("-o", "junit_family=xunit1", f"--junitxml={xml}", "-o", "cidag_junit_form=github")
    case = ET.parse(xml).getroot().find("*/testcase")
    assert case is not None
    assert (case.get("file"), case.get("line")) == ("cijobs/build.sh", "2")


def test_a_failure_shows_where_its_job_is(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("top", "exit 3")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["job 'top' failed: exit code 3", "  at cijobs.Job.top(top.sh:1)", "command:  *"])


# --- the pure module --------------------------------------------------------------------------


def test_frame_names_the_directories_as_the_package() -> None:
    assert frame("cijobs/build-wheel.sh", 3, "build-wheel") == "  at cijobs.Job.build-wheel(build-wheel.sh:3)"
    assert frame("ci/jobs/test", 1, "test[3.12]") == "  at ci.jobs.Job.test[3.12](test:1)"
    assert frame("top.sh", 7, "top") == "  at Job.top(top.sh:7)"  # dorny needs a directory
    assert dorny(frame("ci/jobs/test", 1, "t"), ["ci/jobs/test", "other/test"]) == ("ci/jobs/test", 1)
    assert dorny(frame("top.sh", 7, "top"), ["top.sh"]) is None


def test_rewrite_moves_only_its_own_properties(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    ours = "".join(f'<property name="{n}" value="{v}"/>' for n, v in properties("ci/a.sh", 4))
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3" failures="0" errors="0">'
        f'<testcase classname="ci.a.sh" name="a"><properties>{ours}</properties></testcase>'
        f'<testcase classname="ci.b.sh" name="b"><properties>{ours}<property name="mine" value="1"/></properties>'
        "</testcase>"
        '<testcase classname="test_x" name="test_x"><properties><property name="mine" value="2"/></properties>'
        "</testcase></testsuite></testsuites>"
    )
    assert rewrite(xml) == 2
    a, b, x = ET.parse(xml).getroot().iter("testcase")
    assert (a.get("file"), a.get("line"), a.find("properties")) == ("ci/a.sh", "4", None)
    assert (b.get("file"), b.get("line")) == ("ci/a.sh", "4")
    assert [p.get("name") for p in b.iter("property")] == ["mine"]
    assert x.get("file") is None and [p.get("value") for p in x.iter("property")] == ["2"]
    assert {FILE_PROPERTY, LINE_PROPERTY}.isdisjoint(p.get("name") for p in ET.parse(xml).iter("property"))
    before = xml.stat().st_mtime_ns
    assert rewrite(xml) == 0  # nothing left to move: the file is not written again
    assert xml.stat().st_mtime_ns == before
    assert list(tmp_path.iterdir()) == [xml]


def test_the_option_offers_the_forms_the_plugin_knows() -> None:
    assert plugin.JUNIT_FORMS == FORMS
