"""The process runner: real processes, real signals, no pytest in the code under test."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cidag.core import runner
from pytest_cidag.core.runner import (
    TAG_PREFIX,
    JobProcess,
    JobResult,
    read_for_report,
    resolve_env_shebang,
    tail,
    wait_for_exit,
)
from tests.helpers import alive, read_pids


@pytest.fixture(params=["probe", "list"])
def pid_search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of finding a job's processes: probing the pid window, or listing /proc.

    The probe's window is made wide, so pids other tests take meanwhile cannot turn it into
    a listing."""
    monkeypatch.setattr(runner, "DIRECT_WINDOW", 10_000 if request.param == "probe" else 0)
    return str(request.param)


def run(tmp_path: Path, script: str, **kwargs: object) -> tuple[JobProcess, JobResult]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    proc = JobProcess(["bash", str(path)], log_path=tmp_path / "job.log", cwd=tmp_path, kill_grace=0.5, **kwargs)  # type: ignore[arg-type]
    return proc, proc.run()


def test_exit_code_and_interleaved_log(tmp_path: Path) -> None:
    _, result = run(tmp_path, "echo out; echo err >&2; echo out2; exit 3\n")
    assert result.returncode == 3
    assert result.describe_exit() == "exit code 3"
    assert (tmp_path / "job.log").read_text() == "out\nerr\nout2\n"


def test_stdin_is_closed(tmp_path: Path) -> None:
    run(tmp_path, "if read -r line; then echo got; else echo eof; fi\n")
    assert (tmp_path / "job.log").read_text() == "eof\n"


def test_own_session_and_process_group(tmp_path: Path) -> None:
    run(tmp_path, 'echo "$$ $(ps -o pgid= $$) $(ps -o sid= $$)"\n')
    pid, pgid, sid = (tmp_path / "job.log").read_text().split()
    assert pid == pgid == sid
    assert int(pgid) != os.getpgid(0)


def test_nice_is_applied(tmp_path: Path) -> None:
    run(tmp_path, "ps -o ni= $$\n", nice=7)
    assert (tmp_path / "job.log").read_text().strip() == str(os.nice(0) + 7)


def test_signal_is_named(tmp_path: Path) -> None:
    path = tmp_path / "k.py"
    path.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    result = JobProcess([sys.executable, str(path)], log_path=tmp_path / "k.log").run()
    assert result.returncode < 0
    assert result.describe_exit() == "killed by SIGSEGV"
    _, result = run(tmp_path, "bash -c 'kill -9 $$'\n")
    assert result.describe_exit() == "exit code 137 (128 + SIGKILL)"


def test_timeout_kills_the_whole_tree(tmp_path: Path, pid_search: str) -> None:
    """Background children, grandchildren, setsid'd and double-forked daemons: none survive."""
    script = """
    sleep 101 & echo $! >> pids
    bash -c 'sleep 102 & echo $! >> pids; wait' &
    setsid sleep 103 & echo $! >> pids
    ( ( sleep 104 & echo $! >> pids ) & ) &
    nohup sleep 105 >/dev/null 2>&1 & echo $! >> pids
    trap '' TERM
    for i in 1 2 3 4 5 6 7 8; do sleep 0.1; done; sleep 60
    """
    started = time.monotonic()
    _, result = run(tmp_path, script, timeout=1.5)
    assert result.timed_out
    assert time.monotonic() - started < 30
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 5
    assert [p for p in pids if alive(p)] == []
    assert "[cidag] job killed: timeout after 1.5s" in (tmp_path / "job.log").read_text()


def test_leftovers_are_killed_after_a_passing_job(tmp_path: Path, pid_search: str) -> None:
    _, result = run(tmp_path, "setsid sleep 100 & echo $! > pids\nsleep 100 & echo $! >> pids\nexit 0\n")
    assert result.returncode == 0
    assert result.leftovers >= 1  # a count for the report; the guarantee is the line below
    assert [p for p in read_pids(tmp_path / "pids") if alive(p)] == []


def test_a_daemon_whose_first_variable_is_the_tag_is_killed(tmp_path: Path, pid_search: str) -> None:
    # bash passes its environment on in its own order, so the job's tag can come first in a
    # child's environment, with no NUL before it. (Seen as a rare fresh-clone CI flake: a
    # setsid'd daemon survived, depending on the random tag's place in bash's table.)
    (tmp_path / "job.sh").write_text('env -i "$OWN_TAG=1" PATH="$PATH" setsid sleep 100 & echo $! > pids\nsleep 0.2\n')
    proc = JobProcess(["bash", str(tmp_path / "job.sh")], log_path=tmp_path / "job.log", cwd=tmp_path, kill_grace=0.5)
    # its own tag by name: when the suite runs as a job, an outer job's tag is there too
    proc.env["OWN_TAG"] = TAG_PREFIX + proc.token
    assert proc.run().returncode == 0
    assert [p for p in read_pids(tmp_path / "pids") if alive(p)] == []


def test_a_short_job_is_cleaned_up_without_listing_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # After a job that started few processes, the pids it may have left are probed one by
    # one; listing all of /proc is for wide windows only.
    scandir = os.scandir

    def no_proc_listing(path: str = ".") -> Iterator[os.DirEntry[str]]:
        assert path != "/proc", "listed /proc after a job that started two processes"
        return scandir(path)

    monkeypatch.setattr(os, "scandir", no_proc_listing)
    # Wide enough that pids taken meanwhile by other tests' processes keep it a probe.
    monkeypatch.setattr(runner, "DIRECT_WINDOW", 10_000)
    _, result = run(tmp_path, "setsid sleep 100 & echo $! > pids\n")
    assert result.leftovers == 1
    assert [p for p in read_pids(tmp_path / "pids") if alive(p)] == []


def test_abort_from_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "job.sh"
    path.write_text("echo started > started\nsleep 100 & echo $! > pids\nwait\n")
    proc = JobProcess(["bash", str(path)], log_path=tmp_path / "job.log", cwd=tmp_path, kill_grace=0.5)
    threading.Timer(0.5, proc.abort, args=("fast-fail: 'x' failed",)).start()
    result = proc.run()
    assert result.aborted == "fast-fail: 'x' failed"
    assert not result.timed_out
    assert not alive(read_pids(tmp_path / "pids")[0])
    assert (tmp_path / "job.log").read_text().endswith("[cidag] job killed: fast-fail: 'x' failed\n")


def test_tee_copies_output_as_it_arrives(tmp_path: Path) -> None:
    tee = io.BytesIO()
    run(tmp_path, "echo one; echo two >&2\n", tee=tee)
    assert tee.getvalue() == b"one\ntwo\n"
    assert (tmp_path / "job.log").read_bytes() == b"one\ntwo\n"


def test_missing_interpreter_is_an_oserror_with_a_log(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        JobProcess(["/nonexistent/interp", "x"], log_path=tmp_path / "x.log").run()
    assert "could not start" in (tmp_path / "x.log").read_text()


def test_tail_and_report_text_of_a_big_binary_log(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    with open(log, "wb") as f:
        f.write(b"\xff\x00start\n")
        f.write(b"x" * 100 + b"\n")
        for i in range(100000):
            f.write(f"line {i}\n".encode())
    assert tail(log, 2) == ["line 99998", "line 99999"]
    text = read_for_report(log, 4096)
    assert text.startswith("\ufffd\x00start\n")
    assert "bytes omitted; the full output is in" in text
    assert text.endswith("line 99999\n")
    assert len(text) < 4096 + 200


def test_processes_forked_while_the_job_ends_are_killed(tmp_path: Path, pid_search: str) -> None:
    """A background loop still forking when the job exits: every child is found and killed."""
    for _ in range(5):
        (tmp_path / "pids").unlink(missing_ok=True)
        script = (
            "( echo $BASHPID >> pids; for i in $(seq 300); do sleep 100 & echo $! >> pids; done ) &\n"
            "until [ -s pids ] && [ $(wc -l < pids) -ge 20 ]; do :; done\n"  # exit mid-loop
            "exit 0\n"
        )
        run(tmp_path, script)
        # the forking loop itself is listed first: alive, it would still fork
        pids = read_pids(tmp_path / "pids")
        assert [p for p in pids if alive(p)] == [], f"{len(pids)} started"


def tool_on_path(tmp_path: Path, name: str, text: str) -> tuple[Path, dict[str, str]]:
    """An executable ``name`` in a directory of its own, and an environment with it first on PATH."""
    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / name
    tool.write_text(text)
    tool.chmod(0o755)
    return tool, {"PATH": f"{tools}:/usr/bin:/bin"}


def test_env_shebang_is_resolved_on_the_jobs_path(tmp_path: Path) -> None:
    # ``#!/usr/bin/env NAME`` costs an extra exec per job (~1 ms, paid by no other tool that
    # runs ``bash job.sh``): the runner looks NAME up itself, on the job's PATH as env would.
    tool, env = tool_on_path(tmp_path, "mytool", '#!/bin/sh\necho "mytool ran $1"\n')
    tools = tool.parent
    assert resolve_env_shebang(["/usr/bin/env", "mytool", "job"], env) == [str(tool), "job"]
    assert resolve_env_shebang(["/usr/bin/env", "mytool", "job"], {"PATH": "/usr/bin:/bin"}) == [
        "/usr/bin/env",
        "mytool",
        "job",
    ]  # not found: env itself runs and prints its own error
    for argv in (
        ["/usr/bin/env", "-S mytool -u", "job"],  # options: left to env
        ["/usr/bin/env", "A=1", "job"],  # an assignment, not a program
        ["/bin/sh", "job"],  # not env
        ["env", "mytool", "job"],  # a relative env: whatever PATH finds first
    ):
        assert resolve_env_shebang(argv, env) == argv
    # a relative PATH entry is searched from the job's cwd by env, not from ours: left to env
    assert resolve_env_shebang(["/usr/bin/env", "mytool", "job"], {"PATH": f"bin:{tools}"})[0] == "/usr/bin/env"

    script = tmp_path / "job"
    script.write_text("#!/usr/bin/env mytool\n")
    proc = JobProcess(["/usr/bin/env", "mytool", str(script)], log_path=tmp_path / "job.log", cwd=tmp_path, env=env)
    assert proc.run().returncode == 0
    assert (tmp_path / "job.log").read_text() == f"mytool ran {script}\n"


def test_waiting_for_a_job_with_a_timeout_does_not_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # subprocess's wait(timeout) sleeps in a loop (up to 50 ms a turn), so a job with a
    # timeout would be noticed up to 50 ms after it ended, on every dependency hop. The
    # runner waits on a pidfd instead: no sleep at all while a job runs and ends.
    sleeps: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    _, result = run(tmp_path, "sleep 0.3; echo done\n", timeout=60)
    assert result.returncode == 0 and not result.timed_out
    assert sleeps == []
    _, result = run(tmp_path, "sleep 5\n", timeout=0.2)
    assert result.timed_out


def test_wait_for_exit_has_subprocess_semantics(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "5"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_exit(proc, 0.05)
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_exit(proc, 0)
    finally:
        proc.kill()
    assert wait_for_exit(proc, 10**7) == -9  # beyond poll()'s range: still fine
    assert wait_for_exit(proc, None) == -9  # already reaped


def test_env_shebang_leaves_what_only_env_can_run_to_env(tmp_path: Path) -> None:
    # An executable without '#!' is run by env (execvp) through /bin/sh; execve refuses it.
    _, env = tool_on_path(tmp_path, "plain", 'echo "plain ran $1"\n')
    argv = ["/usr/bin/env", "plain", "job"]
    assert resolve_env_shebang(argv, env) == argv
    proc = JobProcess(argv, log_path=tmp_path / "job.log", cwd=tmp_path, env=env)
    assert proc.run().returncode == 0
    assert (tmp_path / "job.log").read_text() == "plain ran job\n"


def test_an_infinite_timeout_is_no_timeout(tmp_path: Path) -> None:
    _, result = run(tmp_path, "echo ok\n", timeout=math.inf)
    assert result.returncode == 0 and not result.timed_out
    assert (tmp_path / "job.log").read_text() == "ok\n"
