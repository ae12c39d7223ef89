"""The demo DAG a newcomer runs: examples/buckaroo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent.parent / "examples" / "buckaroo"


@pytest.fixture
def demo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(DEMO, pytester.path / "demo", ignore=shutil.ignore_patterns(".cidag", "__pycache__"))
    monkeypatch.setenv("CIDAG_DEMO_SCALE", "0.002")
    return pytester.path / "demo"


def test_demo_scripts_match_the_dag_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(DEMO / "generate.py"), str(tmp_path)], check=True)
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.sh")}
    committed = {p.name: p.read_text() for p in (DEMO / "cijobs").glob("*.sh") if not p.name.startswith("_")}
    assert generated == committed


def test_demo_runs_green(pytester: pytest.Pytester, demo: Path) -> None:
    result = pytester.runpytest_subprocess(str(demo), "-p", "no:randomly")
    result.assert_outcomes(passed=16)


def test_demo_failure_on_request_skips_what_needs_it(
    pytester: pytest.Pytester, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "build-wheel")
    result = pytester.runpytest_subprocess(str(demo), "-rs")
    result.assert_outcomes(passed=8, failed=1, skipped=7)
    result.stdout.fnmatch_lines(["SKIPPED *cijobs/playwright-jupyter.sh:*: upstream job 'build-wheel' failed"])


def test_demo_testcases_narrow_the_suite(pytester: pytest.Pytester, demo: Path) -> None:
    result = pytester.runpytest_subprocess(
        str(demo), "-k", "test-python and 3.11", "--cidag-testcases", "summary", "-rA"
    )
    result.assert_outcomes(passed=1, deselected=15)
    result.stdout.fnmatch_lines(["1 passed, 2 deselected in *"])


def test_demo_runs_the_narrowed_suites_first(pytester: pytest.Pytester, demo: Path) -> None:
    result = pytester.runpytest_subprocess(
        str(demo),
        "-p",
        "no:randomly",
        "-k",
        "test-python",
        "--cidag-first-testcases",
        "summary",
        "--cidag-run-dir",
        "run",
    )
    # the four test jobs twice, and build-js and build-wheel, which two of them need, once
    result.assert_outcomes(passed=10, deselected=10)
    run = pytester.path / "run"
    for job in (
        "test-python@first[3.11]",
        "test-python@first[3.13]",
        "test-python-3.12@first",
        "test-python-3.14@first",
    ):
        assert "1 passed, 2 deselected" in (run / f"{job}.log").read_text()
        assert "3 passed" in (run / f"{job.replace('@first', '')}.log").read_text()


def test_demo_rerun_is_all_cached_and_one_source_change_reruns_what_it_reaches(
    pytester: pytest.Pytester, demo: Path
) -> None:
    pytester.runpytest_subprocess(str(demo), "-p", "no:randomly").assert_outcomes(passed=16)
    warm = pytester.runpytest_subprocess(str(demo), "-p", "no:randomly", "-q")
    warm.assert_outcomes(passed=16)
    warm.stdout.fnmatch_lines(["c" * 16 + " *"])
    with (demo / "src" / "js" / "grid.js").open("a") as f:
        f.write("// changed\n")
    result = pytester.runpytest_subprocess(str(demo), "-p", "no:randomly", "--cidag-why")
    result.assert_outcomes(passed=16)
    missed = sorted(line.split(":")[0] for line in result.outlines if ": miss: " in line)
    # what reads the JS sources (the build and its tests), and all that needs them: from the DAG
    needs = {j["name"]: j["needs"] for j in json.loads((demo / "buckaroo-dag.json").read_text())["jobs"]}
    reached = {"build-js", "test-js"}
    while grown := {n for n, ns in needs.items() if reached & set(ns)} - reached:
        reached |= grown
    assert missed == sorted(reached)
    assert len(missed) < 16  # and nothing else ran
