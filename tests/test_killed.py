"""pytest itself is killed (a CI cancel, the OOM killer, ``kill -9``): no job process survives.

No code of a killed process runs, so these tests kill pytest for real with SIGKILL and check
that every process its jobs started (daemons that called ``setsid``, ``nohup`` children)
is gone soon after, and that each job's log says why it ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import JobWriter
from tests.helpers import PROC_MISSING, alive, read_pids
from tests.test_catalogue import entry

pytestmark = pytest.mark.skipif(PROC_MISSING, reason="the reaper finds a job's processes in /proc")

#: How long the tests wait for the kernel and the reaper: generous, since the box may be loaded.
#: Not a performance bound: the reaper acts at once; a grace of 0.5 s is given below.
PATIENCE = 60


def _write_jobs(job: JobWriter, parallel: bool) -> list[str]:
    """The issue's two jobs: a daemon-starting one and, when they can run at once, a plain one."""
    job(
        "daemon",
        """
        setsid sleep 6001 & echo $! >> "$CIDAG_RUN_DIR/pids"
        nohup sleep 6002 >/dev/null 2>&1 & echo $! >> "$CIDAG_RUN_DIR/pids"
        sleep 6003 & echo $! >> "$CIDAG_RUN_DIR/pids"
        echo $$ >> "$CIDAG_RUN_DIR/pids"
        echo started daemon
        wait
        """,
    )
    if not parallel:
        return ["daemon"]
    job("fg", 'echo $$ >> "$CIDAG_RUN_DIR/pids"\necho started fg\nexec sleep 6004')
    return ["daemon", "fg"]


def _as_nobody(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> tuple[list[str], Path, dict[str, str]]:
    """(argv that starts Python as an unprivileged user, project copy, environment), from root."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run pytest as another user")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = dict(os.environ)
    python = sys.executable
    # The reaper runs sys.executable: the user must be able to, as any user running pytest
    # can. A Python under root's home is not; then use the system's of the same version,
    # with this environment's packages on its path.
    if subprocess.run([*prefix, "test", "-x", python], check=False).returncode != 0:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        python = shutil.which(version, path="/usr/local/bin:/usr/bin") or ""
        if not python or subprocess.run([*prefix, "test", "-x", python], check=False).returncode != 0:
            pytest.skip(f"no {version} that an unprivileged user may run")
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, *site.getsitepackages()])
    project = Path(tempfile.mkdtemp(prefix="cidag-nobody-"))  # root's temporary tree is closed to it
    request.addfinalizer(lambda: shutil.rmtree(project, ignore_errors=True))
    shutil.copytree(pytester.path, project, dirs_exist_ok=True)
    for path in [project, *project.rglob("*")]:
        path.chmod(0o777 if path.is_dir() or os.access(path, os.X_OK) else 0o666)
    # pytester points temporary files at root's; this user needs its own.
    env.update(TMPDIR=str(project), HOME=str(project))
    env.pop("PYTEST_DEBUG_TEMPROOT", None)
    return [*prefix, python], project, env


def _start(
    pytester: pytest.Pytester, count: int, *args: str, as_nobody: pytest.FixtureRequest | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """pytest in the background (as user nobody given a request to clean up after), once
    its jobs have written ``count`` pids."""
    if as_nobody is not None:
        python, project, env = _as_nobody(pytester, as_nobody)
    else:
        python, project, env = [sys.executable], pytester.path, None
    proc = subprocess.Popen(
        [*python, "-m", "pytest", "--cidag-run-dir", "run", "--cidag-kill-grace", "0.5", *args],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(pytester.path / "out.txt").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a CI runner's job is
    )
    pids_file = project / "run" / "pids"
    deadline = time.monotonic() + PATIENCE
    while not (pids_file.exists() and len(pids_file.read_text().split()) == count):
        if time.monotonic() > deadline or proc.poll() is not None:
            _kill_group(proc)
            out = (pytester.path / "out.txt").read_text()
            pytest.fail(f"the jobs never all started (pytest exit {proc.poll()}):\n{out}")
        time.sleep(0.05)
    return proc, pids_file


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _survivors(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + PATIENCE
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # do not leave them behind for the rest of the suite
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(([], False, False), id="n0-pytest"),
        pytest.param(([], True, False), id="n0-group"),
        pytest.param((["-n", "2"], True, False), id="n2-group"),
        pytest.param((["-n", "2"], False, False), id="n2-controller"),
        # The reaper needs no privilege; these show it (reading /proc as that user).
        pytest.param(([], True, True), id="n0-group-unprivileged"),
        pytest.param((["-n", "2"], True, True), id="n2-group-unprivileged"),
    ],
)
def test_sigkill_of_pytest_leaves_no_job_process(
    pytester: pytest.Pytester, job: JobWriter, request: pytest.FixtureRequest, case: tuple[list[str], bool, bool]
) -> None:
    args, whole_group, unprivileged = case
    names = _write_jobs(job, parallel=bool(args))
    count = 4 * names.count("daemon") + names.count("fg")
    proc, pids_file = _start(pytester, count, *args, as_nobody=request if unprivileged else None)
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and, at -n 2, its workers
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pids = read_pids(pids_file)
    assert _survivors(pids) == []
    if whole_group:  # (a controller killed alone leaves its workers to end the jobs)
        # The reaper writes the line once the job's processes are gone: wait for it.
        trailer = entry("pytest killed while jobs run").expected[0] + "\n"
        for name in names:
            log_path = pids_file.parent / f"{name}.log"
            deadline = time.monotonic() + PATIENCE
            while not (log := log_path.read_text()).endswith(trailer) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert log == f"started {name}\n{trailer}"


def test_a_reaper_that_cannot_start_is_reported_and_the_jobs_still_run(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    job("ok", "echo fine")
    monkeypatch.setattr(sys, "executable", str(pytester.path / "no-such-python"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    [line] = entry("A reaper that cannot start").expected
    result.stdout.fnmatch_lines([line])
    assert "no-such-python: [Errno 2] No such file or directory" in result.stdout.str()
