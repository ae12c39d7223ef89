"""Settings resolved once per process, and the run directory's layout. No pytest import."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

RUNS_DIR = Path(".cidag") / "runs"
LATEST = "latest"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs, resolved once in ``pytest_configure``."""

    job_paths: tuple[Path, ...]  # absolute job directories
    run_dir: Path  # this run's directory (created on first use)
    default_run_dir: bool  # under .cidag/runs, so "latest" points at it and old runs are pruned
    kill_grace: float
    tail_lines: int
    report_limit: int
    keep_runs: int
    tee: bool
    previous_run_dir: Path | None = None  # the latest run before this one, for --cidag-no-deps
    testcases: str | None = None  # --cidag-testcases, handed to every job
    reaches_jobs: bool = True  # the command line reaches the job directories (or a job file)

    def ensure_run_dir(self) -> Path:
        """Create the run directory (idempotent, safe across xdist workers)."""
        if self.run_dir.is_dir():
            return self.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.default_run_dir:
            runs = self.run_dir.parent
            ignore = runs.parent / ".gitignore"
            if not ignore.exists():
                with contextlib.suppress(OSError):
                    ignore.write_text("# created by pytest-cidag: job logs of local runs\n*\n")
            _point_latest(runs, self.run_dir.name)
            _prune(runs, self.keep_runs, keep=self.run_dir.name)
        return self.run_dir


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
    dirs = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:1].isdigit())
    for name in dirs[: max(0, len(dirs) - keep_runs)]:
        if name != keep:
            shutil.rmtree(runs / name, ignore_errors=True)
