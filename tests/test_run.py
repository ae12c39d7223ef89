"""Running jobs for real: outcomes, failure reports, environment, logs, cwd, shebangs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import JobWriter


def latest(pytester: pytest.Pytester) -> Path:
    return (pytester.path / ".cidag" / "runs" / "latest").resolve()


def test_pass_fail_and_skip_outcomes(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ok", "echo fine")
    job("broken", "echo compiling; echo 'error: no such file' >&2; exit 3")
    job("no-docker", "echo checking docker; echo 'docker is not installed'; exit 77")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # the skip is located at the job file, not in the plugin
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] cijobs/no-docker.sh:1: docker is not installed"])


def test_failure_report_is_a_few_plain_lines(pytester: pytest.Pytester, job: JobWriter) -> None:
    body = "for i in $(seq 1 40); do echo line $i; done\necho 'error: boom' >&2\nexit 3"
    job("broken", body, shebang="/bin/bash")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*_ job.broken _*",
            "job 'broken' failed: exit code 3",
            "  at cijobs.Job.broken(broken.sh:1)",  # for JUnit consumers (tests/test_junit_consumers.py)
            "command:  /bin/bash cijobs/broken.sh",
            "duration: *s",
            "log:      .cidag/runs/*/broken.log",
            "last 15 lines of output:",
            "  | line 27",
            "*",
            "  | line 40",
            "  | error: boom",
            "*- Captured stdout call -*",
            "line 1",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "pytest_cidag" not in out
    assert "  | line 26" not in out  # only the tail in the failure lines
    result.stdout.fnmatch_lines(["FAILED cijobs/broken.sh::broken - job failed: exit code 3"])


def test_signal_is_named_in_the_failure(pytester: pytest.Pytester, job: JobWriter) -> None:
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"
    job("segv", body, filename="segv", shebang="/usr/bin/env python3", executable=True)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["job 'segv' failed: killed by SIGSEGV", "(no output)"])


def test_tail_lines_ini(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\ncidag_tail_lines = 2\n")
    job("broken", "echo a; echo b; echo c; exit 1")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["last 2 lines of output:", "  | b", "  | c"])


def test_environment(pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "caller")
    tags = 'grep -vE "CIDAG_R?TAG_"'  # the job's and the run's reaper's
    body = f'env | grep -E "^(CIDAG_|FROM_CALLER|NODE_ENV)" | {tags} | sort >"$CIDAG_RUN_DIR/env-$CIDAG_JOB"'
    job("envjob", body, env='{ NODE_ENV = "test" }', matrix='{ python = ["3.12"], os = ["linux"] }')
    pytester.runpytest().assert_outcomes(passed=1)
    run_dir = latest(pytester)
    lines = (run_dir / "env-envjob[3.12-linux]").read_text().splitlines()
    assert lines == [
        "CIDAG_JOB=envjob[3.12-linux]",
        "CIDAG_MATRIX_OS=linux",
        "CIDAG_MATRIX_PYTHON=3.12",
        f"CIDAG_OUTPUT={run_dir}/envjob[3.12-linux].outputs",
        f"CIDAG_PYTHON={sys.executable}",
        f"CIDAG_RUN_DIR={run_dir}",
        "FROM_CALLER=caller",
        "NODE_ENV=test",
    ]


def test_outputs_file_is_writable_and_kept(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", 'echo "wheel=dist/x.whl" >> "$CIDAG_OUTPUT"')
    pytester.runpytest().assert_outcomes(passed=1)
    assert (latest(pytester) / "build.outputs").read_text() == "wheel=dist/x.whl\n"


def test_cwd_defaults_to_rootdir_and_is_settable(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.mkdir("web")
    job("root", 'pwd > "$CIDAG_RUN_DIR/root.pwd"')
    job("web", 'pwd > "$CIDAG_RUN_DIR/web.pwd"', cwd='"web"')
    job("nowhere", "true", cwd='"missing"')
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["job 'nowhere' failed: the job's cwd 'missing' is not a directory under the rootdir"])
    assert (latest(pytester) / "root.pwd").read_text().strip() == str(pytester.path)
    assert (latest(pytester) / "web.pwd").read_text().strip() == str(pytester.path / "web")


def test_shebang_decides_the_interpreter(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("bashisms", "[[ 1 == 1 ]] && echo bash-ok")  # no shebang: bash, even from sh-only shells
    job("py", "import sys; print('python', sys.version_info[0])", filename="py.sh", shebang="/usr/bin/env python3")
    job("direct", "print('exec')", filename="direct", shebang="/usr/bin/env python3", executable=True)
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["bash-ok", "exec", "python 3"], consecutive=False)


def test_nice_stdin_and_process_group(pytester: pytest.Pytester, job: JobWriter) -> None:
    body = """
    read -r x && echo "stdin: got $x" || echo "stdin: eof"
    echo "nice: $(ps -o ni= $$ | tr -d ' ')"
    [ "$(ps -o pgid= $$ | tr -d ' ')" = "$$" ] && echo "own process group"
    """
    job("probe", body, nice="5")
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["stdin: eof", f"nice: {os.nice(0) + 5}", "own process group"])


def test_log_file_and_latest_link(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", "echo out; echo err >&2")
    result = pytester.runpytest()
    run_dir = latest(pytester)
    assert run_dir.parent == pytester.path / ".cidag" / "runs"
    assert (run_dir / "a.log").read_text() == "out\nerr\n"
    assert (pytester.path / ".cidag" / ".gitignore").read_text().splitlines()[-1] == "*"
    result.stdout.fnmatch_lines([f"cidag: job logs in .cidag/runs/{run_dir.name}"])


def test_run_dir_option_and_ini(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", "echo hi")
    pytester.runpytest("--cidag-run-dir", "artifacts/ci").assert_outcomes(passed=1)
    assert (pytester.path / "artifacts/ci/a.log").read_text() == "hi\n"
    assert not (pytester.path / ".cidag").exists()
    pytester.makeini("[pytest]\ncidag_run_dir = from-ini\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert (pytester.path / "from-ini/a.log").read_text() == "hi\n"


def test_old_runs_are_pruned(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\ncidag_keep_runs = 2\n")
    job("a", "true")
    runs = pytester.path / ".cidag" / "runs"
    for i in range(4):
        (runs / f"2020010{i}-000000-1").mkdir(parents=True)
    pytester.runpytest().assert_outcomes(passed=1)
    kept = sorted(p.name for p in runs.iterdir() if p.name != "latest")
    assert kept == ["20200103-000000-1", latest(pytester).name]


def test_no_run_dir_without_running_a_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", "true")
    pytester.runpytest("--collect-only")
    assert not (pytester.path / ".cidag").exists()


def test_full_output_in_report_sections_and_a_cut_for_huge_logs(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\ncidag_report_limit = 2000\n")
    job("small", "echo small-output")
    job("huge", "echo first-line; for i in $(seq 1 2000); do echo filler $i; done; echo last-line")
    result = pytester.runpytest("-rA")
    result.stdout.fnmatch_lines(
        [
            "*_ job.huge _*",
            "first-line",
            "[[]cidag[]] ... * bytes omitted; the full output is in *huge.log ...",
            "*last-line",
            "*_ job.small _*",
            "small-output",
        ]
    )
    assert (latest(pytester) / "huge.log").read_text().count("filler") == 2000


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", "true")
    result = pytester.runpytest("--cidag-kill-grace", "-1")
    result.stderr.fnmatch_lines(["ERROR: cidag_kill_grace: -1.0 from --cidag-kill-grace must be at least 0"])
    pytester.makeini("[pytest]\ncidag_tail_lines = many\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["ERROR: cidag_tail_lines: 'many' from ini cidag_tail_lines is not a valid int"])


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--cidag-kill-grace=inf"], "", "ERROR: cidag_kill_grace: inf from --cidag-kill-grace must be a finite*"),
        (["--cidag-kill-grace=nan"], "", "ERROR: cidag_kill_grace: nan from --cidag-kill-grace must be a finite*"),
        ([], "cidag_kill_grace = NaN", "ERROR: cidag_kill_grace: 'NaN' from ini cidag_kill_grace must be a finite*"),
        ([], "cidag_kill_grace = -inf", "ERROR: cidag_kill_grace: '-inf' from ini cidag_kill_grace must be a finite*"),
        ([], "cidag_report_limit = inf", "ERROR: cidag_report_limit: 'inf' from ini cidag_report_limit is not a*"),
    ],
    ids=["option-inf", "option-nan", "ini-nan", "ini-minus-inf", "int-ini-inf"],
)
def test_non_finite_numbers_are_usage_errors(
    pytester: pytest.Pytester, job: JobWriter, args: list[str], ini: str, message: str
) -> None:
    job("a", "true")
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest(*args)
    result.stderr.fnmatch_lines([message])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_job_file_removed_after_collection(pytester: pytest.Pytester, job: JobWriter) -> None:
    path = job("vanishing", "true")
    job("other", "true")
    pytester.makeconftest(
        f"""
        import pathlib
        def pytest_collection_finish(session):
            pathlib.Path({str(path)!r}).unlink()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["job 'vanishing' failed: the job file cijobs/vanishing.sh is gone (removed after collection)"]
    )


def test_cwd_made_a_symlink_out_of_the_rootdir_after_collection(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("escape", "pwd > where.txt", cwd='"web"')  # web does not exist yet: fine at collection
    pytester.makeconftest(
        """
        import pathlib
        def pytest_collection_finish(session):
            (session.config.rootpath / "web").symlink_to(session.config.rootpath.parent)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["job 'escape' failed: the job's cwd 'web' is not a directory under the rootdir"])
    assert not (pytester.path.parent / "where.txt").exists()


def test_missing_interpreter_is_a_clear_failure(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("ghost", "true", shebang="/no/such/interpreter")
    job("fine", "true")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["job 'ghost' failed: could not start: *No such file or directory*"])


def test_s_streams_output_live(pytester: pytest.Pytester, job: JobWriter) -> None:
    # A subprocess, because -s hands the job the real terminal stream.
    job("talk", "echo streamed-line-1; echo streamed-line-2 >&2")
    result = pytester.runpytest_subprocess("-s")
    result.stdout.fnmatch_lines(["*streamed-line-1", "streamed-line-2*"])
    assert (latest(pytester) / "talk.log").read_text() == "streamed-line-1\nstreamed-line-2\n"


def test_runs_with_xdist_disabled_and_under_xdist(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", 'echo "$CIDAG_RUN_DIR" > "$CIDAG_RUN_DIR/a.where"')
    job("b", 'echo "$CIDAG_RUN_DIR" > "$CIDAG_RUN_DIR/b.where"')
    job("c", "exit 1", timeout="30")
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=2, failed=1)
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=2, failed=1)
    run_dir = latest(pytester)
    # every worker writes into the controller's one run directory
    assert (run_dir / "a.where").read_text().strip() == (run_dir / "b.where").read_text().strip() == str(run_dir)
    result.stdout.fnmatch_lines(["job 'c' failed: exit code 1"])


def test_tail_lines_zero_shows_no_output_lines(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\ncidag_tail_lines = 0\n")
    job("broken", "seq 1 500; exit 2")
    result = pytester.runpytest()
    assert "lines of output" not in result.stdout.str()
    assert "(no output)" not in result.stdout.str()
    result.stdout.fnmatch_lines(["job 'broken' failed: exit code 2"])
