"""The cache against what its users' complaints about other tools' caches say goes wrong:
a hit where a real run would differ, lost or clobbered files, a traceback instead of a line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cidag.core.cachekey import EXECUTABLE, FileHasher
from tests.conftest import JobWriter
from tests.test_cache import _ran
from tests.test_catalogue import entry

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["n0", "n2"])


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-v", "-W", "default", *args)


def test_a_restore_never_replaces_a_directory_the_user_made_where_a_file_was(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    pytester.makeini("[pytest]\n")
    job("gen", "mkdir -p out && echo v > out/x", inputs="[]", outputs='["out/*"]')
    _run(pytester).assert_outcomes(passed=1)
    (pytester.path / "out" / "x").unlink()
    (pytester.path / "out" / "x").mkdir()
    (pytester.path / "out" / "x" / "mine.txt").write_text("user file\n")
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*cidag: job 'gen': cache entry not restored (cannot restore *): it runs"])
    assert (pytester.path / "out" / "x" / "mine.txt").read_text() == "user file\n"
    assert "Traceback" not in result.stdout.str()


def test_a_restore_never_replaces_a_file_the_user_made_where_a_directory_was(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    pytester.makeini("[pytest]\n")
    job("gen", "mkdir -p out && echo v > out/x", inputs="[]", outputs='["out/*"]')
    _run(pytester).assert_outcomes(passed=1)
    shutil.rmtree(pytester.path / "out")
    (pytester.path / "out").write_text("user file\n")
    result = _run(pytester)
    result.stdout.fnmatch_lines(entry("A restore that would replace what is there").expected)
    assert (pytester.path / "out").read_text() == "user file\n"
    assert "Traceback" not in result.stdout.str()


def test_an_empty_signature_key_is_said_not_taken_for_signed(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork's pull request gets an empty secret: unsigned entries, but never silently."""
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("CIDAG_CACHE_SIGNATURE_KEY", "")
    job("gen", "echo gen >> ran", inputs="[]")
    for _ in range(2):  # a store, then a lookup: each says it
        result = _run(pytester)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(entry("A signature key that is set but empty").expected)
    assert _ran(pytester) == ["gen"]


def test_an_input_that_is_no_longer_executable_is_a_miss(pytester: pytest.Pytester, job: JobWriter) -> None:
    """A job running ./tool.sh fails once tool.sh lost its execute bit: a hit would pass."""
    pytester.makeini("[pytest]\n")
    tool = pytester.path / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    job("use", "./tool.sh", inputs='["tool.sh"]')
    _run(pytester).assert_outcomes(passed=1)
    tool.chmod(0o644)
    result = _run(pytester, "--cidag-why")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["use: miss: file changed: tool.sh"])


@pytest.mark.parametrize("use_git", [True, False], ids=["git-index", "hashed"])
def test_the_execute_bit_is_in_a_digest_with_or_without_git(tmp_path: Path, use_git: bool) -> None:
    for name, mode in (("plain.sh", 0o644), ("tool.sh", 0o755)):
        (tmp_path / name).write_text("echo same bytes\n")
        (tmp_path / name).chmod(mode)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    hasher = FileHasher(tmp_path, None, use_git=use_git)
    digests = hasher.digests(["plain.sh", "tool.sh"])
    assert hasher.from_git == (2 if use_git else 0)
    assert digests["tool.sh"] == digests["plain.sh"] + EXECUTABLE


@XDIST
def test_files_an_uncached_upstream_makes_count_when_listed_in_inputs(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str]
) -> None:
    """An uncached need has no key: its files reach a dependent's key only through the
    dependent's own inputs, which the README says and --cidag-why repeats."""
    pytester.makeini("[pytest]\n")
    (pytester.path / "version").write_text("1\n")
    job("make", "cp version made")
    job("blind", "cp made blind", needs='["make"]', inputs="[]", outputs='["blind"]')
    job("use", "cp made used", needs='["make"]', inputs='["made"]', outputs='["used"]')
    _run(pytester, *xdist).assert_outcomes(passed=3)
    (pytester.path / "version").write_text("2\n")
    result = _run(pytester, *xdist, "--cidag-why")
    result.assert_outcomes(passed=3)
    assert (pytester.path / "used").read_text() == "2\n"
    assert (pytester.path / "blind").read_text() == "1\n"  # as documented: it did not list made
    result.stdout.fnmatch_lines(
        [
            "blind: hit: needs make, which has no key: only its outputs are in this one (list its files in inputs)",
            "make: not cacheable: no inputs",
            "use: miss: file changed: made*",
        ]
    )


def test_a_hit_never_writes_back_a_file_another_job_made(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "version").write_text("1\n")
    job("first", "mkdir -p out && cp version out/first.txt")
    job("second", "mkdir -p out && echo 2 > out/second.txt", needs='["first"]', inputs="[]", outputs='["out/*"]')
    _run(pytester).assert_outcomes(passed=2)
    (pytester.path / "version").write_text("2\n")
    _run(pytester).assert_outcomes(passed=2)  # first ran again; second was a hit
    assert (pytester.path / "out" / "first.txt").read_text() == "2\n"


def test_a_file_the_job_did_not_write_is_restored_where_it_is_missing(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    """... and only there: a fresh checkout gets what a real run would have found."""
    pytester.makeini("[pytest]\n")
    (pytester.path / "version").write_text("1\n")
    job("first", "mkdir -p out && cp version out/first.txt")
    job("second", "mkdir -p out && echo 2 > out/second.txt", needs='["first"]', inputs="[]", outputs='["out/*"]')
    _run(pytester).assert_outcomes(passed=2)
    shutil.rmtree(pytester.path / "out")
    _run(pytester, "--cidag-no-deps", "-k", "second").assert_outcomes(passed=1, deselected=1)
    assert (pytester.path / "out" / "second.txt").read_text() == "2\n"
    assert (pytester.path / "out" / "first.txt").read_text() == "1\n"


def test_a_checkout_elsewhere_sharing_the_cache_gets_its_own_paths(pytester: pytest.Pytester) -> None:
    cache = pytester.path / "shared-cache"
    for name in ("one", "two"):
        root = pytester.path / name
        (root / "cijobs").mkdir(parents=True)
        (root / "pytest.ini").write_text(f"[pytest]\ncidag_cache_dir = {cache}\n")
        up = '# /// cidag\n# inputs = []\n# ///\necho "where=$PWD" >> "$CIDAG_OUTPUT"\n'
        (root / "cijobs" / "up.sh").write_text(up)
        down = '# /// cidag\n# needs = ["up"]\n# ///\necho "$CIDAG_NEEDS_UP_WHERE" > seen\n'
        (root / "cijobs" / "down.sh").write_text(down)
        result = pytester.runpytest_subprocess(
            "-p", "no:randomly", "--rootdir", str(root), "-c", str(root / "pytest.ini"), str(root)
        )
        result.assert_outcomes(passed=2)
        assert (root / "seen").read_text() == f"{root}\n"
