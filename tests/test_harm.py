"""Do no harm: a run without jobs behaves exactly as if the plugin were not installed.

Installed, the plugin loads in every pytest process of the environment. Each case below runs
a small suite that has no jobs twice, with the plugin and with ``-p no:cidag``, and requires
the same outcomes, exit code and observed behaviour. Each runs in two projects: one with no
job directory at all, and one whose job directory exists but is not collected (``pytest
tests``), where the plugin is loaded in full and must still stay out of the way. The cases
are copies of what running pytest-xdist's, pytest-dependency's and pytest-timeout's own
suites with the plugin installed found.
"""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest

from tests.conftest import JobWriter

PROJECTS = ["no-job-dir", "job-dir-not-collected"]


@pytest.fixture(params=PROJECTS)
def project(request: pytest.FixtureRequest, pytester: pytest.Pytester, job: JobWriter) -> Path:
    """The directory of the suite; in the second project a job directory sits beside it."""
    suite = pytester.path / "tests"
    suite.mkdir()
    if request.param == "job-dir-not-collected":
        job("lint", "echo linting")
    return suite


def run_both(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, pytest.RunResult]:
    """The same command with the plugin and without it (in fresh processes: signals)."""
    with_it = pytester.runpytest_subprocess(*args)
    without = pytester.runpytest_subprocess("-p", "no:cidag", *args)
    return with_it, without


def same_outcome(with_it: pytest.RunResult, without: pytest.RunResult) -> None:
    assert with_it.ret == without.ret, (with_it.stdout.str(), without.stdout.str())
    assert with_it.parseoutcomes() == without.parseoutcomes()


def test_signal_handlers_are_left_alone(pytester: pytest.Pytester, project: Path) -> None:
    (project / "test_signals.py").write_text(
        textwrap.dedent(
            """
            import signal

            def test_sigterm_and_sighup_are_default():
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
            """
        )
    )
    for args in ([], ["-n", "2"]):
        with_it, without = run_both(pytester, "tests", *args)
        same_outcome(with_it, without)
        assert with_it.parseoutcomes() == {"passed": 1}


def test_a_worker_killed_by_sigterm_is_a_crash_not_an_interrupt(pytester: pytest.Pytester, project: Path) -> None:
    # pytest-xdist's own acceptance_test.py::TestDistribution::test_dist_tests_with_crash
    (project / "test_crash.py").write_text(
        textwrap.dedent(
            """
            import os, time
            import pytest

            def test_fail0():
                assert 0
            def test_fail1():
                raise ValueError()
            def test_ok():
                pass
            def test_skip():
                pytest.skip("hello")
            def test_crash():
                time.sleep(0.5)
                os.kill(os.getpid(), 15)
            """
        )
    )
    with_it, without = run_both(pytester, "tests", "-v", "-n", "1")
    same_outcome(with_it, without)
    assert with_it.ret == 1
    with_it.stdout.fnmatch_lines(["*node*down*", "*3 failed, 1 passed, 1 skipped*"])


def test_a_plain_pytest_killed_by_sigterm_dies_of_it(pytester: pytest.Pytester, project: Path) -> None:
    (project / "test_term.py").write_text("import os\n\ndef test_term():\n    os.kill(os.getpid(), 15)\n")
    with_it, without = run_both(pytester, "tests")
    assert with_it.ret == without.ret == -signal.SIGTERM


def test_the_users_scheduler_hook_and_dist_mode_are_kept(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "conftest.py").write_text(
        textwrap.dedent(
            """
            import json, os
            from xdist.scheduler import LoadScheduling

            class MyScheduling(LoadScheduling):
                def add_node_collection(self, node, collection):
                    with open(os.path.join(os.path.dirname(__file__), "made.log"), "a") as f:
                        f.write(json.dumps(len(collection)) + "\\n")
                    super().add_node_collection(node, collection)

            def pytest_xdist_make_scheduler(config, log):
                if os.environ.get("MY_SCHEDULER"):
                    return MyScheduling(config, log)
            """
        )
    )
    (project / "test_some.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    monkeypatch.setenv("MY_SCHEDULER", "1")
    with_it, without = run_both(pytester, "tests", "-n", "2", "-v")
    same_outcome(with_it, without)
    with_it.stdout.fnmatch_lines(["scheduling tests via MyScheduling"])
    made = (project / "made.log").read_text().split()
    assert made == ["2"] * 4  # two workers, each run
    monkeypatch.delenv("MY_SCHEDULER")
    for dist, name in (("load", "LoadScheduling"), ("loadfile", "LoadFileScheduling"), ("worksteal", "Work*")):
        with_it, without = run_both(pytester, "tests", "-n", "2", "-v", "--dist", dist)
        same_outcome(with_it, without)
        with_it.stdout.fnmatch_lines([f"scheduling tests via {name}"])
        assert "DagScheduling" not in with_it.stdout.str()


def test_a_deselecting_plugins_list_is_not_changed(pytester: pytest.Pytester, project: Path) -> None:
    (project / "conftest.py").write_text(
        textwrap.dedent(
            """
            import json, os

            def pytest_collection_modifyitems(config, items):
                deselected = [item for item in items if "drop" in item.name]
                config.hook.pytest_deselected(items=deselected)
                with open(os.path.join(os.path.dirname(__file__), "seen.json"), "w") as f:
                    json.dump([item.name for item in deselected], f)
                items[:] = [item for item in items if item not in deselected]
            """
        )
    )
    (project / "test_some.py").write_text("def test_keep():\n    pass\n\ndef test_drop():\n    pass\n")
    for args in ([], ["-n", "2"]):
        with_it, without = run_both(pytester, "tests", *args)
        same_outcome(with_it, without)
        # (under xdist the controller shows no deselected count, with or without the plugin)
        assert with_it.parseoutcomes() == ({"passed": 1, "deselected": 1} if not args else {"passed": 1})
        assert json.loads((project / "seen.json").read_text()) == ["test_drop"]


def test_without_a_job_directory_nothing_beyond_the_entry_point_is_imported(pytester: pytest.Pytester) -> None:
    # What a run without jobs imports is what it pays for, in every process.
    (pytester.path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys

            def pytest_sessionfinish(session):
                loaded = sorted(m for m in sys.modules if m.startswith("pytest_cidag"))
                workerinput = getattr(session.config, "workerinput", None)
                name = workerinput["workerid"] if workerinput else "controller"
                with open(os.path.join(os.path.dirname(__file__), f"modules-{name}.json"), "w") as f:
                    json.dump(loaded, f)
            """
        )
    )
    pytester.makepyfile(test_some="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "1")
    assert result.ret == 0
    for process in ("controller", "gw0"):
        loaded = json.loads((pytester.path / f"modules-{process}.json").read_text())
        assert loaded == ["pytest_cidag", "pytest_cidag.plugin"], process


def test_last_failed_collects_as_pytest_does(pytester: pytest.Pytester, project: Path) -> None:
    (project / "test_a.py").write_text("def test_fails():\n    assert 0\n")
    (project / "test_b.py").write_text("def test_passes():\n    pass\n")
    pytester.runpytest_subprocess("tests")
    with_it, without = run_both(pytester, "tests", "--lf")
    same_outcome(with_it, without)
    for result in (with_it, without):
        result.stdout.fnmatch_lines(["collected 1 item", "run-last-failure: rerun previous 1 failure (skipped 1 file)"])


def test_markers_declared_by_jobs_it_does_not_reach_are_not_registered(
    pytester: pytest.Pytester, job: JobWriter
) -> None:
    # A job declares "slow"; a Python test uses it. --strict-markers rejects it when the run
    # does not reach the jobs, as without the plugin (a run with the jobs accepts it).
    job("nightly", "true", markers='["slow"]')
    suite = pytester.path / "tests"
    suite.mkdir()
    (suite / "test_m.py").write_text("import pytest\n\n@pytest.mark.slow\ndef test_x():\n    pass\n")
    with_it, without = run_both(pytester, "tests", "--strict-markers")
    assert with_it.ret == without.ret == pytest.ExitCode.INTERRUPTED
    with_it.stdout.fnmatch_lines(["*'slow' not found in `markers` configuration option*"])
    assert pytester.runpytest_subprocess("cijobs", "tests", "--strict-markers").ret == 0
