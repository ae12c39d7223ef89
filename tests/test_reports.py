"""Reports for other tools: JUnit XML read by real consumers, IDE node ids, the entry point."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import junitparser
import pytest
import xmlschema

from tests.conftest import DATA, JobWriter


def test_junit_xml_validates_and_reads_back(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", r"printf 'plain \033[31mred\033[0m \x01\x02 ctrl \xff\xfe bytes\n'")
    job("broken", "echo 'error: <boom> & \"quotes\"'; exit 3")
    job("skipper", "echo 'no gpu here'; exit 77")
    job("hang", "echo started; sleep 30", timeout="0.5")
    job("legs", "true", matrix='{ py = ["3.11", "3.12"] }')
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(f"--junitxml={xml}", "-o", "junit_logging=system-out", "--cidag-kill-grace", "0.2")
    result.assert_outcomes(passed=3, failed=2, skipped=1)

    schema = xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd")
    schema.validate(str(xml))  # raises with the reason when invalid

    suite = next(iter(junitparser.JUnitXml.fromfile(str(xml))))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 2, 0, 1)
    cases = {case.name: case for case in suite}
    assert set(cases) == {"ok", "broken", "skipper", "hang", "legs[3.11]", "legs[3.12]"}
    assert cases["ok"].is_passed
    assert "plain" in cases["ok"].system_out and "ctrl" in cases["ok"].system_out
    (failure,) = cases["broken"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message == "job failed: exit code 3"
    assert 'error: <boom> & "quotes"' in (failure.text or "")
    (timeout,) = cases["hang"].result
    assert timeout.message == "job failed: Timeout (>0.5s): the job's process tree was killed"
    (skip,) = cases["skipper"].result
    assert isinstance(skip, junitparser.Skipped)
    assert skip.message == "no gpu here"
    assert cases["legs[3.12]"].classname == "cijobs.legs.sh"


def test_node_ids_run_one_job_like_an_ide(pytester: pytest.Pytester, job: JobWriter) -> None:
    """VS Code and PyCharm collect with --collect-only -q and run a job by its node id."""
    job("a", "true")
    job("legs", "echo leg $CIDAG_MATRIX_PY", matrix='{ py = ["3.11", "3.12"] }')
    ids = [line for line in pytester.runpytest("--collect-only", "-q").outlines if "::" in line]
    assert ids == ["cijobs/a.sh::a", "cijobs/legs.sh::legs[3.11]", "cijobs/legs.sh::legs[3.12]"]
    result = pytester.runpytest("cijobs/legs.sh::legs[3.12]", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["leg 3.12"])


def test_entry_point_is_installed() -> None:
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "cidag"]
    assert ep.value == "pytest_cidag.plugin"
    assert ep.load().pytest_configure


PURE = sorted(
    p.stem for p in (Path(__file__).parent.parent / "pytest_cidag" / "core").glob("*.py") if p.stem != "__init__"
)


CORE = Path(__file__).parent.parent / "pytest_cidag" / "core"
PURE = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")

#: What only pytest_cidag/internals.py may touch: pytest's private modules, private
#: attributes of pytest's and xdist's objects, plugins found by their internal names.
PRIVATE = re.compile(
    r"\b_pytest\b|_setupstate|_use_item_location|lfplugin|\bdsession\b|\._session\b|\.sched\b|\._file\b"
)


def test_private_internals_are_used_in_one_place_only() -> None:
    package = CORE.parent
    offenders = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []
    assert PRIVATE.search((package / "internals.py").read_text())  # the pattern finds what it should


def test_the_pure_package_holds_the_pure_modules() -> None:
    assert {"jobspec", "graph", "outputs", "runner", "settings", "signals", "scheduling"} <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_not_import_pytest(pytester: pytest.Pytester, module: str) -> None:
    # Each in a fresh interpreter: one module importing pytest must not hide behind another.
    code = (
        "import sys\n"
        f"import pytest_cidag.core.{module}\n"
        "glue = {'pytest', '_pytest', 'pluggy', 'xdist', 'execnet'} & set(sys.modules)\n"
        "assert not glue, glue\n"
    )
    result = pytester.run(__import__("sys").executable, "-c", code)
    assert result.ret == 0, result.stderr.str()
