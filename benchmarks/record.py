"""What the run record (run.json, trace.json, the CPU sampler, the critical-path line) costs.

    python benchmarks/record.py [--jobs 200] [-n 2] [--reps 5]

Writes ``--jobs`` independent no-op jobs into a fresh project, then runs ``pytest -n N`` on
them with ``--cidag-record on`` and ``--cidag-record off`` in turn (alternating, so a busy
spell of the machine hits both), ``--reps`` times each. Prints the median wall time of each,
their ratio, and the CPU time (user + system) of the pytest processes, which a shared machine
disturbs less than wall time. Run it on a quiet machine before quoting the wall times.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_project(root: Path, jobs: int) -> None:
    (root / "cijobs").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    for i in range(jobs):
        (root / "cijobs" / f"noop-{i:03d}.sh").write_text("true\n")


def timed(root: Path, workers: int, record: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the pytest processes) of one run."""
    argv = [sys.executable, "-m", "pytest", "cijobs", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    argv += ["--cidag-cache", "off", "--cidag-record", record, "-o", "cidag_keep_runs=2"]
    if workers:
        argv += ["-n", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stdout}\n{done.stderr}")
    has_record = "cidag: critical path" in done.stdout
    if has_record != (record == "on"):
        raise SystemExit(f"--cidag-record {record}: the critical-path line is {'there' if has_record else 'missing'}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("-n", type=int, default=2, help="xdist workers (0: no xdist)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="cidag-record-bench-") as tmp:
        root = Path(tmp)
        make_project(root, args.jobs)
        env_note = os.environ.get("PYTEST_ADDOPTS")
        if env_note:
            print(f"note: PYTEST_ADDOPTS={env_note!r} applies to every run")
        timed(root, args.n, "on")  # warm-up: imports, the page cache
        for rep in range(args.reps):
            for record in ("on", "off") if rep % 2 == 0 else ("off", "on"):
                results[record].append(timed(root, args.n, record))
    print(f"{args.jobs} no-op jobs, -n {args.n}, medians of {args.reps}:")
    wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    for record in ("on", "off"):
        print(f"  record {record:3}: wall {wall[record]:.3f} s   CPU {cpu[record]:.3f} s")
    print(f"  ratio on/off: wall {wall['on'] / wall['off']:.3f}   CPU {cpu['on'] / cpu['off']:.3f}")


if __name__ == "__main__":
    main()
