"""How long a cache key takes for a job whose inputs match 10 000 files (issue 14: under 0.3 s warm).

    python benchmarks/hashing.py                    # a new git repository of 10 000 files, removed after
    python benchmarks/hashing.py --dir DIR          # DIR, filled and committed first if it is empty; kept
    python benchmarks/hashing.py --files 2000 --reps 3

Each row computes the whole key (``key_parts``: match the inputs, digest every file) with a new
:class:`FileHasher`, as a new pytest process would, except the reference rows:

- ``cold``: no git, no stat cache: every file read and hashed;
- ``warm, stat cache``: no git, the stat cache the cold row saved: no file read;
- ``git index``: blob ids from ``git ls-files`` / ``git diff-files``, no stat cache;
- ``git index + stat cache``: both, as a second run in a checkout sees it;
- ``match only``: ``match_files`` alone (part of every row above);
- reference: ``git ls-files -s``, and ``sha256sum`` of the same files through ``xargs``.

Wall times need a quiet machine; on a busy one, the "files read" and "git runs" columns still
say which work each row did.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_cidag.core.cachekey import RACY_WINDOW, FileHasher, key_parts, match_files

INPUTS = ["src/**", "!src/**/*.tmp"]
FILES_PER_DIR = 100


def fill(root: Path, count: int) -> None:
    """``count`` files of 1-4 KiB in directories of ``FILES_PER_DIR``, committed to a new repository."""
    for i in range(count):
        path = root / "src" / f"d{i // FILES_PER_DIR:03d}" / f"f{i % FILES_PER_DIR:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"# file {i}\n" + "x = 1\n" * (170 + i % 500)).encode())
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b"}
    env["GIT_COMMITTER_EMAIL"] = "b@b"
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark files"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def wait_until_not_racy(root: Path) -> None:
    """Files changed within RACY_WINDOW are kept out of the stat cache: wait them out."""
    newest = max(max(p.stat().st_mtime, p.stat().st_ctime) for p in (root / "src").rglob("*"))
    time.sleep(max(0.0, newest + RACY_WINDOW + 0.1 - time.time()))


def key_time(root: Path, stat_cache: Path | None, *, use_git: bool) -> tuple[float, FileHasher]:
    hasher = FileHasher(root, stat_cache, use_git=use_git)
    start = time.perf_counter()
    key_parts(
        job="bench",
        script=b"#!/bin/sh\n",
        block={"inputs": INPUTS},
        leg={},
        env={},
        rootdir=root,
        inputs=INPUTS,
        hasher=hasher,
        needs={},
        needs_outputs={},
    ).key()
    elapsed = time.perf_counter() - start
    hasher.save()
    return elapsed, hasher


def timed(reps: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="the repository to use (filled and committed if empty); kept")
    parser.add_argument("--files", type=int, default=10_000, help="files to create (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=5, help="runs per row; the median is shown (default: %(default)s)")
    args = parser.parse_args(argv)
    if shutil.which("git") is None or shutil.which("sha256sum") is None:
        print("needs git and sha256sum on PATH", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="cidag-hashing-"))
    root = args.dir or scratch / "repo"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not any(root.iterdir()):
            fill(root, args.files)
        wait_until_not_racy(root)
        files, _ = match_files(root, INPUTS)
        print(f"{len(files)} files matched by {INPUTS} in a git checkout; median of {args.reps} runs\n")

        rows: list[tuple[str, float, int, int]] = []

        def row(name: str, stat_cache: Path | None, *, use_git: bool, prepare: bool = False) -> None:
            if stat_cache is not None:
                stat_cache.unlink(missing_ok=True)
                if prepare:
                    key_time(root, stat_cache, use_git=use_git)
            results = []
            for _ in range(args.reps):
                if stat_cache is not None and not prepare:
                    stat_cache.unlink(missing_ok=True)
                results.append(key_time(root, stat_cache, use_git=use_git))
            _, hasher = results[-1]
            rows.append((name, statistics.median(t for t, _ in results), len(hasher.hashed), hasher.git_runs))

        cache = scratch / "stat-cache.json"
        row("cold (no git, no stat cache)", None, use_git=False)
        row("warm, stat cache (no git)", cache, use_git=False, prepare=True)
        row("git index (no stat cache)", None, use_git=True)
        row("git index + stat cache", cache, use_git=True, prepare=True)
        rows.append(("match only (match_files)", timed(args.reps, lambda: match_files(root, INPUTS)), 0, 0))

        listing = b"\0".join(os.fsencode(f) for f in files)
        ls_files = ["git", "ls-files", "-s"]
        sha256sum = ["xargs", "-0", "sha256sum"]
        rows.append(
            (
                "reference: git ls-files -s",
                timed(args.reps, lambda: subprocess.run(ls_files, cwd=root, check=True, capture_output=True)),
                0,
                1,
            )
        )
        rows.append(
            (
                "reference: xargs sha256sum",
                timed(
                    args.reps,
                    lambda: subprocess.run(sha256sum, cwd=root, input=listing, check=True, capture_output=True),
                ),
                len(files),
                0,
            )
        )

        width = max(len(name) for name, *_ in rows)
        print(f"| {'row':<{width}} | seconds | files read | git runs |")
        print(f"|{'-' * (width + 2)}|--------:|-----------:|---------:|")
        for name, seconds, read, git_runs in rows:
            print(f"| {name:<{width}} | {seconds:7.3f} | {read:10d} | {git_runs:8d} |")
    finally:
        shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
