"""What each way of surviving pytest's death costs per job, measured on this machine.

A job's processes must die when pytest is killed with SIGKILL. The kernel offers several
tools; this script starts ``true`` as a job many times with each and prints the cost per job
over a plain start (``Popen(start_new_session=True)``, what the runner does anyway):

* ``pdeathsig``: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the child before exec. Needs a
  ``preexec_fn``, which forces subprocess off its fast spawn path. Kills only the first
  process (not what it forked or daemonised), and fires when the *thread* that forked exits.
* ``pidns-root`` / ``pidns-user``: ``unshare --pid --fork --kill-child`` (as root; as a user,
  with ``--user --map-root-user``, which needs unprivileged user namespaces). The job is
  init of its own PID namespace: when it dies the kernel kills every process inside,
  daemons included (Bazel's Linux sandbox). ``unshare`` itself also needs a death signal
  to die with pytest, and the job sees pid 1 and a /proc that is not its own.
* ``cgroup``: a cgroup v2 per job, the child moved into it before exec, removed after.
  Needs a writable (delegated) cgroup v2 hierarchy; on pytest's death someone alive must
  still write ``cgroup.kill``, so it needs a reaper anyway.
* ``reaper``: what pytest-cidag does: one helper process per run (its start is shown
  separately) and two pipe writes per job.

Usage: ``python benchmarks/kill_mechanisms.py [--jobs 300]``. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_cidag.core.reaper import Reaper

PR_SET_PDEATHSIG = 1
TRUE = shutil.which("true") or "/bin/true"


def plain() -> None:
    subprocess.Popen([TRUE], start_new_session=True, close_fds=True).wait()


def pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    subprocess.Popen([TRUE], start_new_session=True, close_fds=True, preexec_fn=arm).wait()  # noqa: PLW1509


def pidns(*extra: str) -> Callable[[], None]:
    unshare = shutil.which("unshare") or "unshare"

    def run() -> None:
        argv = [unshare, *extra, "--pid", "--fork", "--kill-child", TRUE]
        subprocess.Popen(argv, start_new_session=True, close_fds=True).wait()

    return run


def cgroup(base: Path) -> Callable[[], None]:
    counter = iter(range(10**9))

    def run() -> None:
        group = base / f"job{next(counter)}"
        group.mkdir()
        procs = str(group / "cgroup.procs")

        def enter() -> None:
            with open(procs, "w") as f:
                f.write("0")

        subprocess.Popen([TRUE], start_new_session=True, close_fds=True, preexec_fn=enter).wait()  # noqa: PLW1509
        group.rmdir()

    return run


def reaper_job(reaper: Reaper) -> Callable[[], None]:
    def run() -> None:
        reaper.start()
        proc = subprocess.Popen([TRUE], start_new_session=True, close_fds=True)
        reaper.job_started(proc.pid, Path("job.log"))
        proc.wait()
        reaper.job_ended(proc.pid)

    return run


def per_job(run: Callable[[], None], jobs: int) -> float:
    """Median of five rounds of ``jobs`` starts, in ms per job."""
    run()  # warm
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(jobs):
            run()
        rounds.append((time.perf_counter() - t0) / jobs * 1000)
    return statistics.median(rounds)


def usable(run: Callable[[], None]) -> str | None:
    try:
        run()
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


def reaper_start_ms() -> tuple[float, float]:
    """(ms pytest spends starting it, ms until it has started and exited), medians."""
    times = []
    for _ in range(10):
        reaper = Reaper(0.1)
        t0 = time.perf_counter()
        reaper.start()
        spawned = time.perf_counter()
        reaper.close()  # waits for it to be up and gone
        times.append(((spawned - t0) * 1000, (time.perf_counter() - t0) * 1000))
    return statistics.median(t for t, _ in times), statistics.median(t for _, t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    candidates: list[tuple[str, Callable[[], None]]] = [("plain", plain), ("pdeathsig", pdeathsig)]
    candidates.append(("pidns-root", pidns()))
    candidates.append(("pidns-user", pidns("--user", "--map-root-user")))
    roots = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
    unified = next((p for p in roots if (p / "cgroup.procs").exists()), None)
    base = None
    if unified is not None:
        try:
            base = Path(tempfile.mkdtemp(prefix="cidag-bench-", dir=unified))
            candidates.append(("cgroup", cgroup(base)))
        except OSError as exc:
            print(f"cgroup: not usable here ({exc})")
    reaper = Reaper(0.1)
    candidates.append(("reaper", reaper_job(reaper)))
    try:
        results = {}
        for name, run in candidates:
            problem = usable(run)
            if problem:
                print(f"{name}: not usable here ({problem})")
                continue
            results[name] = per_job(run, args.jobs)
        base_ms = results["plain"]
        print(f"{'mechanism':<12} {'ms/job':>8} {'extra ms/job':>13}")
        for name, ms in results.items():
            print(f"{name:<12} {ms:8.3f} {ms - base_ms:13.3f}")
    finally:
        reaper.close()
        if base is not None:
            base.rmdir()
    spawn, total = reaper_start_ms()
    print(f"reaper start, once per run: {spawn:.2f} ms in pytest, {total:.1f} ms until it is up and gone")


if __name__ == "__main__":
    main()
