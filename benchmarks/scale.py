"""How pytest-cidag's cost per job grows with the size of the DAG.

    python benchmarks/scale.py                        # 1 000, 5 000 and 20 000 jobs, -n 0 and -n 2
    python benchmarks/scale.py --sizes 1000 5000 --workers 0
    python benchmarks/scale.py --write DIR --sizes 5000   # only write the project (to profile it)
    python benchmarks/scale.py --schedule-only --sizes 20000  # the xdist scheduler alone, no processes

The DAG is layered: layers of ``--width`` jobs, every job needing 3 jobs of the layer below
(the first layer needs nothing), declared in a shuffled order. A job only writes one output,
so the run is all overhead: collection, ordering, scheduling, starting each process, and
handing outputs on (parsing them after the job, the environment of its dependents).

Per-job cost at N jobs is (wall time of the run - wall time of a one-job run) / N, the
median of ``--reps`` runs; the last column is the ratio to the smallest size's per-job cost
(1.0 means linear: the target is within 20 % at 20 000 jobs). Wall times need a quiet
machine; on a busy one, compare deterministic counts instead (cProfile's call counts, or
``valgrind --tool=callgrind`` instruction counts: of ``--schedule-only`` at each size and
at ``--sizes 1``, or of ``pytest -p no:randomly -q -n 0`` in a project written with ``--write``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

NEEDS_PER_JOB = 3


def layered(n: int, width: int = 100, seed: int = 13) -> dict[str, list[str]]:
    """``n`` jobs in layers of ``width`` (name -> needs, in a shuffled declaration order);
    each needs ``NEEDS_PER_JOB`` jobs of the layer below."""
    rng = random.Random(seed)
    names = [f"j{i // width:04d}-{i % width:03d}" for i in range(n)]
    needs = {
        name: sorted(rng.sample(names[(i // width - 1) * width : (i // width) * width], k=NEEDS_PER_JOB))
        if i >= width
        else []
        for i, name in enumerate(names)
    }
    rng.shuffle(names)
    return {name: needs[name] for name in names}


def write_project(root: Path, jobs: dict[str, list[str]]) -> None:
    """One no-op script per job, each writing one output."""
    (root / "cijobs").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ncidag_paths = cijobs\ncidag_keep_runs = 2\n")
    body = 'echo "out=1" >> "$CIDAG_OUTPUT"\n'
    for name, needs in jobs.items():
        block = "# /// cidag\n# needs = [" + ", ".join(f'"{n}"' for n in needs) + "]\n# ///\n"
        (root / "cijobs" / f"{name}.sh").write_text(block + body)


class _Worker:
    """An xdist worker as the scheduler sees it: it only records the index it was sent."""

    def __init__(self) -> None:
        self.current: int | None = None

    def send_runtest_some(self, indices: Sequence[int]) -> None:
        self.current = indices[0]

    def shutdown(self) -> None:
        pass


class _Controller:
    """The controller's services, for a run where every job passes."""

    maxfail = 0

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def outcome(self, key: str) -> str | None:
        return self.outcomes.get(key)

    def failures(self) -> int:
        return 0

    def started(self, key: str) -> bool:
        return True

    def report_late_teardown_errors(self) -> list[str]:
        return []

    def collected(self, count: int) -> None:
        pass


def schedule_only(n: int, width: int) -> None:
    """The controller's scheduling of ``n`` jobs on two workers that finish each job at
    once: no processes, so instruction counts (callgrind) of it are exact and repeatable."""
    from pytest_cidag.core.graph import JobGraph, Node
    from pytest_cidag.core.plan import DagPlan
    from pytest_cidag.core.scheduling import DagScheduling

    jobs = layered(n, width)
    graph = JobGraph.build([Node(key=k, label=k, needs=tuple(v), job=k) for k, v in jobs.items()])
    collection = [*jobs, "tick"]
    controller = _Controller()
    sched = DagScheduling(controller, DagPlan(graph=graph, run_keys=list(jobs), tick="tick"))  # type: ignore[arg-type]
    workers = [_Worker(), _Worker()]
    for worker in workers:
        sched.add_node(worker)
        sched.add_node_collection(worker, collection)
    while not sched.tests_finished:
        for worker in workers:
            if worker.current is not None:
                index, worker.current = worker.current, None
                controller.outcomes[collection[index]] = "passed"
                sched.mark_test_complete(worker, index)


def run_once(root: Path, workers: int) -> float:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "pytest", "cijobs", "-q", "-p", "no:randomly"]
    cmd += ["-n", str(workers)]
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"pytest failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def median_wall(root: Path, workers: int, reps: int) -> float:
    run_once(root, workers)  # warm-up: bytecode, the file system's caches
    return statistics.median(run_once(root, workers) for _ in range(reps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000], help="numbers of jobs")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="-n values (default: 0 2)")
    parser.add_argument("--width", type=int, default=100, help="jobs per layer (default 100)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median is shown)")
    parser.add_argument("--write", type=Path, help="only write the project(s) under this directory")
    parser.add_argument("--schedule-only", action="store_true", help="only the controller's scheduling, in-process")
    args = parser.parse_args()
    if args.schedule_only:
        for n in args.sizes:
            schedule_only(n, args.width)
        return 0
    if args.write is not None:
        for n in args.sizes:
            write_project(args.write / f"layered-{n}", layered(n, args.width))
            print(args.write / f"layered-{n}")
        return 0
    print("| -n | jobs | wall (s) | per job (ms) | per job / per job at the smallest size |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="cidag-scale-") as tmp:
        one = Path(tmp) / "one"
        write_project(one, layered(1))
        for workers in args.workers:
            base = median_wall(one, workers, args.reps)
            first: float | None = None
            for n in args.sizes:
                root = Path(tmp) / f"layered-{n}"
                if not root.exists():
                    write_project(root, layered(n, args.width))
                wall = median_wall(root, workers, args.reps)
                per_job = (wall - base) / n
                first = first or per_job
                print(f"| {workers} | {n} | {wall:.2f} | {per_job * 1000:.2f} | {per_job / first:.2f} |", flush=True)
                shutil.rmtree(root / ".cidag", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
