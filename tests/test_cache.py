"""Content-hash caching, end to end: real jobs, real runs, the real cache on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import JobWriter
from tests.test_catalogue import entry

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["n0", "n2"])

BUILD = """
echo build >> ran
mkdir -p dist && cat src/*.txt > dist/out.txt
echo "artifact=dist/out.txt" >> "$CIDAG_OUTPUT"
"""
TEST = """
echo test >> ran
echo "$CIDAG_NEEDS_BUILD_ARTIFACT $(tr -d '\\n' < dist/out.txt) ${PYV:-}" >> seen
"""


def _project(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "a.txt").write_text("a\n")
    job("build", BUILD, inputs='["src/*.txt"]', outputs='["dist/*"]')
    job("test", TEST, needs='["build"]', inputs="[]", env_inputs='["PYV"]')
    job("lint", "echo lint >> ran")


def _ran(pytester: pytest.Pytester) -> list[str]:
    ran = pytester.path / "ran"
    lines = ran.read_text().split() if ran.exists() else []
    ran.unlink(missing_ok=True)
    return sorted(lines)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-v", *args)


def _cold(pytester: pytest.Pytester, job: JobWriter, *args: str) -> list[str]:
    """The project's first run (an empty cache): what ran."""
    _project(pytester, job)
    _run(pytester, *args).assert_outcomes(passed=3)
    return _ran(pytester)


@XDIST
def test_an_unchanged_dag_runs_no_cached_job_and_gives_dependents_the_same(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str]
) -> None:
    assert _cold(pytester, job, *xdist) == ["build", "lint", "test"]  # lint has no inputs: never cached
    (pytester.path / "dist" / "out.txt").unlink()  # restored from the cache
    result = _run(pytester, *xdist, "--junitxml=junit.xml")
    result.assert_outcomes(passed=3)
    assert _ran(pytester) == ["lint"]
    for nodeid in ("cijobs/build.sh::build", "cijobs/test.sh::test"):  # "id CACHED", or "CACHED id" at -n 2
        assert any(nodeid in line and "CACHED" in line for line in result.outlines), nodeid
    assert (pytester.path / "dist" / "out.txt").read_text() == "a\n"
    assert (pytester.path / "seen").read_text() == "dist/out.txt a \n"  # only the first run wrote
    latest = (pytester.path / ".cidag" / "runs" / "latest").resolve()
    assert (latest / "build.log").read_text() == ""  # the stored log, copied into this run
    assert (latest / "build.outputs").read_text() == "artifact=dist/out.txt\n"
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"cidag_cache_hits": "cijobs/build.sh::build cijobs/test.sh::test"}


@XDIST
def test_a_changed_input_reruns_that_job_and_what_needs_it(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str]
) -> None:
    _cold(pytester, job, *xdist)
    (pytester.path / "src" / "b.txt").write_text("b\n")
    result = _run(pytester, *xdist, "--cidag-why")
    result.assert_outcomes(passed=3)
    assert _ran(pytester) == ["build", "lint", "test"]
    why = [
        "build: miss: file added: src/b.txt",
        "lint: not cacheable: no inputs",
        "test: miss: upstream key changed: build",
    ]
    result.stdout.fnmatch_lines(why)
    assert (pytester.path / "seen").read_text().splitlines()[-1] == "dist/out.txt ab "


def test_an_env_input_change_reruns_the_job(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(pytester, job)
    _run(pytester).assert_outcomes(passed=3)
    _ran(pytester)
    monkeypatch.setenv("PYV", "3.12")
    result = _run(pytester, "--cidag-why=test")
    assert _ran(pytester) == ["lint", "test"]
    result.stdout.fnmatch_lines(["test: miss: env changed: PYV"])
    assert "3.12" not in result.stdout.str().split("cidag cache: why")[1]  # a name, never a value


@pytest.mark.parametrize(
    ("body", "block", "outcome"),
    [
        ("exit 1", {}, {"failed": 1}),
        ("echo 'no docker'\nexit 77", {}, {"skipped": 1}),  # a skip
        ("sleep 30", {"timeout": "1"}, {"failed": 1}),
    ],
    ids=["failure", "skip", "timeout"],
)
def test_only_a_pass_is_ever_cached(
    pytester: pytest.Pytester, job: JobWriter, body: str, block: dict[str, str], outcome: dict[str, int]
) -> None:
    pytester.makeini("[pytest]\n")
    job("flaky", f"echo flaky >> ran\n{body}", inputs="[]", **block)
    for _ in range(2):
        _run(pytester).assert_outcomes(**outcome)
    assert _ran(pytester) == ["flaky", "flaky"]


def test_an_input_edited_while_the_job_runs_is_not_stored(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "in.txt").write_text("before\n")
    job("edit", "echo edit >> ran\necho during > in.txt", inputs='["in.txt"]')
    result = _run(pytester, "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(entry("Inputs edited while the job ran").expected)
    _run(pytester).assert_outcomes(passed=1)
    assert _ran(pytester) == ["edit", "edit"]


def test_cache_off_neither_reads_nor_writes(pytester: pytest.Pytester, job: JobWriter) -> None:
    _project(pytester, job)
    _run(pytester, "--cidag-cache=off").assert_outcomes(passed=3)
    assert not (pytester.path / ".cidag" / "cache").exists()
    _run(pytester).assert_outcomes(passed=3)
    assert _ran(pytester) == ["build", "build", "lint", "lint", "test", "test"]


def test_a_corrupted_entry_is_a_miss_with_a_warning(pytester: pytest.Pytester, job: JobWriter) -> None:
    _project(pytester, job)
    _run(pytester).assert_outcomes(passed=3)
    _ran(pytester)
    stored = [p for p in (pytester.path / ".cidag" / "cache").rglob("files/*") if p.is_file()]
    assert stored
    for path in stored:
        path.write_bytes(b"tampered")
    result = _run(pytester, "-W", "default")
    result.assert_outcomes(passed=3)
    assert _ran(pytester) == ["build", "lint"]  # build ran again, the same: test's key held
    result.stdout.fnmatch_lines(entry("A cache entry that fails its check").expected)
    assert (pytester.path / "dist" / "out.txt").read_text() == "a\n"


def test_dependents_see_the_same_outputs_cached_or_not(pytester: pytest.Pytester, job: JobWriter) -> None:
    _project(pytester, job)
    _run(pytester).assert_outcomes(passed=3)
    first = (pytester.path / "seen").read_text()
    (pytester.path / "seen").unlink()
    job("test", TEST, needs='["build"]', inputs='["nothing-here"]', env_inputs='["PYV"]')  # its key changes
    _run(pytester).assert_outcomes(passed=3)
    assert _ran(pytester) == ["build", "lint", "lint", "test", "test"]
    assert (pytester.path / "seen").read_text() == first  # build was a hit: same outputs handed on
    assert Path(pytester.path / "dist" / "out.txt").read_text() == "a\n"


def test_outputs_that_match_nothing_are_not_stored(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\n")
    job("wheel", 'echo wheel >> ran\necho "forgot to build"', inputs="[]", outputs='["dist/*.whl"]')
    result = _run(pytester, "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(entry("Outputs that match no file").expected)
    _run(pytester).assert_outcomes(passed=1)
    assert _ran(pytester) == ["wheel", "wheel"]


def test_the_critical_path_counts_a_likely_hit_as_no_time(pytester: pytest.Pytester, job: JobWriter) -> None:
    """A hit's duration is a restore's: the job's run time is kept, and what was a hit or
    was stored last time is planned as taking ~0 s."""
    _cold(pytester, job, "-n", "2")
    cache = pytester.path / ".pytest_cache" / "v" / "cidag"
    ran_for = json.loads((cache / "durations").read_text())["cijobs/build.sh::build"]
    assert json.loads((cache / "likely-hits").read_text()) == ["cijobs/build.sh::build", "cijobs/test.sh::test"]
    _run(pytester, "-n", "2").assert_outcomes(passed=3)
    assert json.loads((cache / "durations").read_text())["cijobs/build.sh::build"] == ran_for
    assert json.loads((cache / "likely-hits").read_text()) == ["cijobs/build.sh::build", "cijobs/test.sh::test"]


def test_why_reports_an_input_pattern_that_matches_nothing(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\n")
    job("gen", "true", inputs='["proto/*.proto"]')
    _run(pytester).assert_outcomes(passed=1)
    result = _run(pytester, "--cidag-why")
    result.stdout.fnmatch_lines(["gen: hit: input pattern 'proto/*.proto' matches nothing"])


def test_signed_entries_need_the_key_that_signed_them(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIDAG_CACHE_SIGNATURE_KEY", "main-branch-secret")
    assert _cold(pytester, job) == ["build", "lint", "test"]
    monkeypatch.setenv("CIDAG_CACHE_SIGNATURE_KEY", "a-pull-requests-guess")
    result = _run(pytester, "-W", "default")
    result.assert_outcomes(passed=3)
    assert _ran(pytester) == ["build", "lint", "test"]
    result.stdout.fnmatch_lines(["*cidag: job 'build': cache entry build@* signature does not match: it runs"])
    for path in (pytester.path / ".cidag").rglob("*"):
        if path.is_file():
            assert b"main-branch-secret" not in path.read_bytes()
            assert b"a-pull-requests-guess" not in path.read_bytes()


def test_two_concurrent_runs_share_one_cache(pytester: pytest.Pytester, job: JobWriter) -> None:
    _project(pytester, job)
    argv = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q"]
    runs = [pytester.popen(argv, stdin=subprocess.DEVNULL) for _ in range(2)]
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode() + err.decode()
    _ran(pytester)
    result = _run(pytester, "--cidag-why")
    result.assert_outcomes(passed=3)
    assert _ran(pytester) == ["lint"]
    result.stdout.fnmatch_lines(["build: hit", "lint: not cacheable: no inputs", "test: hit"])


def test_testcases_are_part_of_the_key(pytester: pytest.Pytester, job: JobWriter) -> None:
    """A pass narrowed by --cidag-testcases is not the full suite's pass, nor the reverse."""
    pytester.makeini("[pytest]\n")
    job("suite", "echo suite >> ran", inputs="[]")
    _run(pytester).assert_outcomes(passed=1)
    result = _run(pytester, "--cidag-testcases", "slow", "--cidag-why")
    result.stdout.fnmatch_lines(["suite: miss: env changed: CIDAG_TESTCASES"])
    _run(pytester).assert_outcomes(passed=1)
    assert _ran(pytester) == ["suite", "suite"]
