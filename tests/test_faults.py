"""Faults and hostile jobs: no orphan processes, no lost output, a clear answer for every file.

Each test starts real processes and then looks at the process table, the log files and
what consumers (JUnit's XSD, the terminal) get.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xmlschema

from tests.conftest import DATA, JobWriter
from tests.helpers import alive, read_pids


def latest(pytester: pytest.Pytester) -> Path:
    return (pytester.path / ".cidag/runs/latest").resolve()


# --- no process left behind ------------------------------------------------------------------

ESCAPERS = """
sleep 101 & echo $! >> "$CIDAG_RUN_DIR/pids"
setsid sleep 102 & echo $! >> "$CIDAG_RUN_DIR/pids"
( ( sleep 103 & echo $! >> "$CIDAG_RUN_DIR/pids" ) & ) &
nohup sleep 104 >/dev/null 2>&1 & echo $! >> "$CIDAG_RUN_DIR/pids"
sleep 0.2
"""


@pytest.mark.parametrize("ending", ["pass", "fail", "skip"])
def test_daemons_die_with_the_job_however_it_ends(pytester: pytest.Pytester, job: JobWriter, ending: str) -> None:
    code = {"pass": "exit 0", "fail": "exit 3", "skip": "echo skipping; exit 77"}[ending]
    job("escaper", ESCAPERS + code)
    pytester.runpytest("--cidag-kill-grace", "0.3")
    pids = read_pids(latest(pytester) / "pids")
    assert len(pids) == 4
    assert [p for p in pids if alive(p)] == []


def spawn_pytest(pytester: pytest.Pytester, *args: str) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = pytester.popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "--cidag-run-dir",
            "run",
            "--cidag-kill-grace",
            "0.3",
            *args,
        ],
        stdin=subprocess.DEVNULL,
    )
    return proc


def wait_for_pids(path: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not (path.exists() and len(path.read_text().split()) >= count):
        assert time.monotonic() < deadline, "the job never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_sigterm_to_pytest_leaves_no_process(
    pytester: pytest.Pytester, job: JobWriter, xdist: list[str], sig: signal.Signals
) -> None:
    job("long", ESCAPERS + 'echo $$ >> "$CIDAG_RUN_DIR/pids"\nsleep 100')
    job("other", "sleep 100")
    proc = spawn_pytest(pytester, *xdist)
    pids_file = pytester.path / "run" / "pids"
    wait_for_pids(pids_file, 5, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert [p for p in read_pids(pids_file) if alive(p)] == []
    if not xdist:
        assert (
            (pytester.path / "run" / "long.log").read_text().endswith(f"[cidag] job killed: terminated by {sig.name}\n")
        )


def test_an_escaped_server_does_not_poison_the_next_run(pytester: pytest.Pytester, job: JobWriter) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"setsid {sys.executable} -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &\n"
    probe = f"{sys.executable} -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}))'"
    wait = f"for i in $(seq 100); do {probe} 2>/dev/null && break; sleep 0.05; done\n"
    job("serve", server + wait + "echo started")
    for _ in range(2):  # the second run binds the same port: the first run's server is gone
        result = pytester.runpytest("--cidag-kill-grace", "0.3")
        result.assert_outcomes(passed=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --- no output lost ---------------------------------------------------------------------------

HOSTILE = r"""
printf 'plain line\n'
printf 'bad utf-8: \xff\xfe\xc3\x28 end\n'
printf 'nul: a\000b end\n'
printf '\033[31mred\033[0m and a bell \a and a form feed \f\n'
head -c 3000000 /dev/zero | tr '\0' 'L'; echo
read -r line && echo "stdin gave: $line" || echo "stdin: eof"
head -c 20000 /dev/zero | tr '\0' 'W'; echo
echo "to stderr" >&2
"""


def test_hostile_output_is_kept_and_reports_stay_valid(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("hostile-pass", HOSTILE)
    job("hostile-fail", HOSTILE + "exit 1")
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(f"--junitxml={xml}", "-o", "junit_logging=system-out", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    log = (latest(pytester) / "hostile-fail.log").read_bytes()
    assert b"bad utf-8: \xff\xfe\xc3\x28 end\n" in log
    assert b"nul: a\x00b end\n" in log
    assert b"L" * 3_000_000 + b"\n" in log
    assert log.endswith(b"stdin: eof\n" + b"W" * 20000 + b"\nto stderr\n")
    xmlschema.XMLSchema(DATA / "jenkins-junit-10.xsd").validate(str(xml))
    # the failure's tail lines are cut, not 3 MB wide
    result.stdout.fnmatch_lines(["  | WWWW*[[]cidag: line cut, 20000 characters[]]"])
    assert max(len(line) for line in result.outlines if line.startswith("  | ")) < 1200
    assert "Traceback" not in result.stdout.str()


def test_job_closing_its_stdout_early(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("closer", "echo before; exec 1>&-; echo 'after, on stderr' >&2; sleep 0.1; echo gone 2>/dev/null; exit 0")
    pytester.runpytest().assert_outcomes(passed=1)
    assert (latest(pytester) / "closer.log").read_text() == "before\nafter, on stderr\n"


def test_killed_mid_write_keeps_what_was_written(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("writer", 'i=0; while true; do i=$((i+1)); echo "line $i"; done', timeout="0.5")
    pytester.runpytest("--cidag-kill-grace", "0.2").assert_outcomes(failed=1)
    lines = (latest(pytester) / "writer.log").read_text().splitlines()
    assert lines[-1] == "[cidag] job killed: timeout after 0.5s"
    numbered = [line for line in lines[:-1] if line.startswith("line ")]
    assert len(numbered) > 100
    assert [int(x.split()[1]) for x in numbered[:100]] == list(range(1, 101))


def test_200_mb_of_output_with_flat_memory(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("firehose", "yes 'the quick brown fox jumps over the lazy dog' | head -c 200000000; exit 1")
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:randomly', '-q'])\n"
        "print('maxrss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    result = pytester.run(sys.executable, "-c", code, timeout=300)
    maxrss_mb = int(result.outlines[-1].split()[1]) / 1024
    assert (latest(pytester) / "firehose.log").stat().st_size == 200_000_000
    assert maxrss_mb < 150, f"pytest grew to {maxrss_mb:.0f} MB for a 200 MB log"
    result.stdout.fnmatch_lines(["job 'firehose' failed: exit code 1", "*1 failed*"])


# --- a clear per-job error for every kind of broken file ---------------------------------------


def test_broken_files_fail_alone(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("no-interpreter", "true", shebang="/opt/nowhere/bash")
    job("not-executable", "print('ran through its shebang')", filename="tool.sh", shebang="/usr/bin/env python3")
    empty = pytester.path / "cijobs" / "empty.sh"
    empty.write_text("\n\n")
    job("fine", "echo fine")
    job("after-fine", "echo after", needs='["fine"]')
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["job 'empty' failed: the job file cijobs/empty.sh is empty"], consecutive=False)
    result.stdout.fnmatch_lines(
        ["job 'no-interpreter' failed: could not start: *No such file or directory*"], consecutive=False
    )
    result.stdout.fnmatch_lines(["ran through its shebang"], consecutive=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("body", None),
        ("block", "the job file cijobs/target.sh changed since collection (its cidag block differs): run pytest again"),
        ("bad-block", "the job file changed since collection: cijobs/target.sh:2: unknown key 'tiemout'*"),
        ("directory", "the job file cijobs/target.sh is not a file any more"),
        ("removed", "the job file cijobs/target.sh is gone (removed after collection)"),
    ],
)
def test_changed_between_collection_and_run(
    pytester: pytest.Pytester, job: JobWriter, change: str, message: str | None
) -> None:
    path = job("target", "echo original", timeout="30")
    job("bystander", "echo unaffected")
    new = {
        "body": "# /// cidag\n# timeout = 30\n# ///\necho edited\n",
        "block": "# /// cidag\n# timeout = 5\n# ///\necho edited\n",
        "bad-block": "# /// cidag\n# tiemout = 5\n# ///\n",
    }
    if change in new:
        action = f"p.write_text({new[change]!r})"
    elif change == "directory":
        action = "p.unlink(); p.mkdir()"
    else:
        action = "p.unlink()"
    pytester.makeconftest(
        f"""
        import pathlib
        def pytest_collection_finish(session):
            p = pathlib.Path({str(path)!r})
            {action}
        """
    )
    result = pytester.runpytest("-rA")
    if message is None:
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["edited"])
    else:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines([f"job 'target' failed: {message}"])


def test_concurrent_runs_do_not_clobber_each_other(pytester: pytest.Pytester, job: JobWriter) -> None:
    for i in range(4):
        job(
            f"job{i}",
            f'for n in $(seq 200); do echo "$CIDAG_RUN_DIR {i} $n"; done\necho "v=$$" >> "$CIDAG_OUTPUT"\nsleep 0.3',
        )
    procs = [spawn_pytest_default(pytester) for _ in range(3)]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    runs = [p for p in (pytester.path / ".cidag" / "runs").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 3
    for run in runs:
        for i in range(4):
            lines = (run / f"job{i}.log").read_text().splitlines()
            assert lines == [f"{run} {i} {n}" for n in range(1, 201)]
            assert (run / f"job{i}.outputs").read_text().startswith("v=")


def spawn_pytest_default(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q"], stdin=subprocess.DEVNULL
    )
    return proc


def test_signal_while_leftovers_get_their_grace(pytester: pytest.Pytester, job: JobWriter) -> None:
    """SIGTERM during the TERM grace of a finished job's leftovers still ends in KILL."""
    # The leftover notes the TERM that starts the grace, and lives on; the job exits once
    # the leftover's trap is set.
    job(
        "leaves-one",
        '(trap \'echo got-term >> "$CIDAG_RUN_DIR/term"\' TERM; echo $BASHPID >> "$CIDAG_RUN_DIR/pids";'
        " while :; do sleep 0.05; done) &\n"
        'until [ -s "$CIDAG_RUN_DIR/pids" ]; do sleep 0.01; done\nexit 0',
    )
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "--cidag-run-dir", "run", "--cidag-kill-grace", "30"],
        stdin=subprocess.DEVNULL,
    )
    pids_file = pytester.path / "run" / "pids"
    wait_for_pids(pids_file, 1, proc)
    wait_for_pids(pytester.path / "run" / "term", 1, proc)  # in the grace: the job has exited
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)  # the 30 s grace is cut short: KILL at once
    assert [p for p in read_pids(pids_file) if alive(p)] == []
    log = (pytester.path / "run" / "leaves-one.log").read_text()
    assert log.endswith("[cidag] leftover processes killed: terminated by SIGTERM\n")  # it had ended by itself


def test_an_old_job_file_changed_in_place_after_collection_is_caught(pytester: pytest.Pytester, job: JobWriter) -> None:
    # A job file unchanged since collection is not read again (one stat per job); the stat
    # includes ctime, which no edit can keep, so even a same-size edit that restores the
    # mtime is caught. Files changed in the last second are always read again (coarse file
    # times), so this file must be older than that.
    path = job("target", "echo original", timeout="30")
    job("bystander", "echo unaffected")
    time.sleep(1.1)
    pytester.makeconftest(
        f"""
        import os, pathlib
        def pytest_collection_finish(session):
            p = pathlib.Path({str(path)!r})
            before = p.stat()
            p.write_text(p.read_text().replace("timeout = 30", "timeout = 50"))
            os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
            assert p.stat().st_size == before.st_size
        """
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["job 'target' failed: the job file cijobs/target.sh changed since collection*"])
