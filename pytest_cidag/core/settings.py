"""Settings resolved once per process, and the run directory's layout. No pytest import."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_cidag.core.junit import JunitForm

RUNS_DIR = Path(".cidag") / "runs"
LATEST = "latest"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs, resolved once in ``pytest_configure``."""

    job_paths: tuple[Path, ...]  # absolute job directories, symlinks not resolved (they name node ids)
    run_dir: Path  # this run's directory (created on first use)
    default_run_dir: bool  # under .cidag/runs, so "latest" points at it and old runs are pruned
    kill_grace: float
    tail_lines: int
    report_limit: int
    keep_runs: int
    tee: bool
    previous_run_dir: Path | None = None  # the latest run before this one, for --cidag-no-deps
    testcases: str | None = None  # --cidag-testcases, handed to every job
    first_testcases: str | None = None  # --cidag-first-testcases: the first pass's CIDAG_TESTCASES
    reaches_jobs: bool = True  # the command line reaches the job directories (or a job file)
    cache_mode: str = "rw"  # rw, r, w or off (--cidag-cache)
    cache_dir: Path = Path(".cidag") / "cache"  # absolute once resolved
    cache_max_size: int = 2 * 1024**3
    why: tuple[str, ...] | None = None  # --cidag-why: () for every job, else these jobs
    record: bool = True  # write run.json and trace.json, print the critical path (--cidag-record)
    junit_form: JunitForm = JunitForm.JENKINS  # what the JUnit XML holds (--cidag-junit-form)
    report: Path | None = None  # the timeline report to write at the end (--cidag-report), absolute
    report_gates: tuple[str, ...] = ()  # jobs whose ends the report marks (--cidag-report-gates)
    github: bool = False  # step summary, annotations, log groups (--cidag-github, GITHUB_ACTIONS=true)
    live: bool = True  # the live status while jobs run (--cidag-live auto), else off
    live_interval: float = 60.0  # seconds between "still running" lines about a job (ini)
    retries: int | None = None  # --cidag-retries: for jobs whose block has no retries (None: not given)

    def ensure_run_dir(self) -> Path:
        """Create the run directory (idempotent, safe across xdist workers)."""
        if self.run_dir.is_dir():
            return self.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.default_run_dir:
            self._announce()
        return self.run_dir

    def claim_run_dir(self) -> RunClaim:
        """Create the run directory and lock it for the run's life; ``OSError`` when it
        cannot be created or written. Called once, before the first job, by the process
        that schedules the jobs (an xdist controller, or the only process).

        A new default run directory is created under a hidden name, locked, then renamed
        into place: a directory that pruning can see is either locked or finished.
        """
        run_dir = self.run_dir
        if self.default_run_dir and not run_dir.exists():
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            hidden = run_dir.with_name(f".{run_dir.name}.new")  # pruning skips dot names
            hidden.mkdir()
            claim = RunClaim.take(hidden)
            hidden.rename(run_dir)
            claim.lock_path = run_dir / LOCK
            self._announce()
            return claim
        run_dir.mkdir(parents=True, exist_ok=True)
        return RunClaim.take(run_dir)

    def prune(self) -> None:
        """Remove the oldest default run directories beyond ``keep_runs`` (never this run's,
        nor one another run still holds). Called when this run's jobs are over."""
        if self.default_run_dir:
            _prune(self.run_dir.parent, self.keep_runs, keep=self.run_dir.name)

    def _announce(self) -> None:
        runs = self.run_dir.parent
        ignore_runs(runs)
        _point_latest(runs, self.run_dir.name)


#: The lock file in a run directory while its run is in progress (``flock``, so the
#: kernel releases it when the run's process dies, however it dies).
LOCK = ".cidag-run.lock"


class RunClaim:
    """A run directory held by a run in progress: a shared ``flock`` on its lock file
    (shared, so two runs given one ``--cidag-run-dir`` may both hold it, as before)."""

    def __init__(self, fd: int, lock_path: Path) -> None:
        self.fd: int | None = fd
        self.lock_path = lock_path

    @classmethod
    def take(cls, directory: Path) -> RunClaim:
        path = directory / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # the write check, too
        with contextlib.suppress(OSError):  # a filesystem without locks: the run goes on unguarded
            fcntl.flock(fd, fcntl.LOCK_SH)
        return cls(fd, path)

    def release(self) -> None:
        """The run is over: remove the lock file, then let the lock go."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(self.fd)
        self.fd = None


def ignore_runs(runs: Path) -> None:
    """Keep git out of ``.cidag`` (the parent of ``runs``): a ``.gitignore`` of ``*`` there."""
    ignore = runs.parent / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text("# created by pytest-cidag: job logs of local runs\n*\n")


def in_progress(run_dir: Path) -> bool:
    """Another run holds ``run_dir`` (its lock file is locked)."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: finished (or from a version without locks)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def latest_run(rootpath: Path) -> Path | None:
    """The newest run directory under ``rootpath``'s ``.cidag/runs``, if any."""
    link = rootpath / RUNS_DIR / LATEST
    with contextlib.suppress(OSError):
        target = link.resolve(strict=True)
        if target.is_dir():
            return target
    return None


def new_run_name(runs: Path) -> str:
    """Sortable, and unique across concurrent runs in one checkout (and runs in one process)."""
    now = time.time()
    base = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}-{os.getpid()}"
    name, n = base, 1
    while (runs / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _point_latest(runs: Path, name: str) -> None:
    tmp = runs / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(runs / LATEST)


def _prune(runs: Path, keep_runs: int, keep: str) -> None:
    if keep_runs <= 0:
        return
    try:
        with os.scandir(runs) as entries:
            # one directory read; is_dir without following symlinks needs no stat per entry
            dirs = sorted(e.name for e in entries if e.name[:1].isdigit() and e.is_dir(follow_symlinks=False))
    except OSError:
        return
    for name in dirs[: max(0, len(dirs) - keep_runs)]:
        if name != keep and not in_progress(runs / name):
            shutil.rmtree(runs / name, ignore_errors=True)
