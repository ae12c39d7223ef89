"""pytest-cidag side by side with GNU make -j and ninja -j on the same job scripts.

    python benchmarks/run.py                 # all workloads, N = 2 and 4, 3 repetitions
    python benchmarks/run.py --quick         # one repetition
    python benchmarks/run.py --workloads buckaroo chain --jobs 4

Every tool runs the same generated bash scripts (each declares a timeout, as real CI jobs
do; only pytest-cidag enforces it); each script appends its start and end
(bash's $EPOCHREALTIME, no extra process) to one file, so the DAG makespan (first start to last
end) and the latency per dependency hop are measured the same way for every tool. The
end-to-end wall time includes each tool's start-up; pytest-cidag's fixed start-up (collection,
starting N xdist workers) is measured separately on a one-job workload.

Reference points per workload: the ideal lower bound max(critical path, total work / N), and
simulated list schedules with no overhead: critical-path-first (what pytest-cidag aims for)
and declaration order (what make and ninja do).

xdist starts its workers one after another, so with N workers on few cores the last one may
take its first job a few hundred milliseconds after the first: start-up cost that lands
inside the makespan. A second reference, "CP-first from the workers' start", is the same
simulation with each slot free from the moment its worker took its first job in that run;
the ratio against it is the scheduling and per-job overhead alone.

pytest runs with Python's bytecode cache on, as on any normal installation, even where the
environment sets PYTHONDONTWRITEBYTECODE (then every worker would compile pytest anew).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUCKAROO = ROOT / "examples" / "buckaroo" / "buckaroo-dag.json"


@dataclass
class Job:
    name: str
    needs: list[str]
    seconds: float


# --- workloads ------------------------------------------------------------------------------


def buckaroo(scale: float) -> list[Job]:
    data = json.loads(BUCKAROO.read_text())
    return [Job(j["name"], list(j["needs"]), (j["seconds"] + j["start_delay_s"]) * scale) for j in data["jobs"]]


def independent(n: int = 200) -> list[Job]:
    return [Job(f"noop-{i:03d}", [], 0.0) for i in range(n)]


def chain(n: int = 50) -> list[Job]:
    return [Job(f"hop-{i:02d}", [f"hop-{i - 1:02d}"] if i else [], 0.0) for i in range(n)]


def layered(n: int = 60, layers: int = 6, seed: int = 7) -> list[Job]:
    rng = random.Random(seed)
    per = n // layers
    jobs: list[Job] = []
    for layer in range(layers):
        below = [j.name for j in jobs if int(j.name[1]) == layer - 1] if layer else []
        for i in range(per):
            needs = sorted(rng.sample(below, k=min(len(below), rng.randint(1, 3)))) if below else []
            jobs.append(Job(f"L{layer}-{i:02d}", needs, round(rng.uniform(0.05, 0.6), 3)))
    # declare in a shuffled order: declaration order is not a good schedule
    rng.shuffle(jobs)
    return jobs


def skewed(n: int = 60, layers: int = 10, seed: int = 7) -> list[Job]:
    """A random layered DAG where the order matters: heavy-tailed durations (log-uniform,
    0.02-1.5 s), each job needing 1-3 jobs of any earlier layer, declared in shuffled order.
    (On ``layered``, declaration order is within 1 % of critical-path-first, so it measures
    per-job overhead rather than scheduling.)"""
    rng = random.Random(seed)
    per = n // layers
    jobs: list[Job] = []
    for layer in range(layers):
        earlier = [j.name for j in jobs]
        for i in range(per):
            needs = sorted(rng.sample(earlier, k=min(len(earlier), rng.randint(1, 3)))) if earlier else []
            seconds = round(math.exp(rng.uniform(math.log(0.02), math.log(1.5))), 3)
            jobs.append(Job(f"L{layer}-{i:02d}", needs, seconds))
    rng.shuffle(jobs)
    return jobs


# --- the same scripts for every tool ----------------------------------------------------------


def write_project(root: Path, jobs: list[Job]) -> None:
    jobdir = root / "cijobs"
    jobdir.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ncidag_paths = cijobs\ncidag_keep_runs = 3\n")
    for job in jobs:
        needs = ", ".join(f'"{n}"' for n in job.needs)
        sleep = f"sleep {job.seconds:.3f}\n" if job.seconds > 0 else ""
        (jobdir / f"{job.name}.sh").write_text(
            "#!/usr/bin/env bash\n"
            f"# /// cidag\n# needs = [{needs}]\n# timeout = 600\n# ///\n"
            f'echo "{job.name} start $EPOCHREALTIME" >> "$BENCH_TIMES"\n'
            f"{sleep}"
            f'echo "{job.name} end $EPOCHREALTIME" >> "$BENCH_TIMES"\n'
        )
    names = " ".join(j.name for j in jobs)
    make = [".PHONY: all " + names, f"all: {names}"]
    for job in jobs:
        make += [f"{job.name}: {' '.join(job.needs)}", f"\t@bash cijobs/{job.name}.sh > logs/{job.name}.log 2>&1"]
    (root / "Makefile").write_text("\n".join(make) + "\n")
    ninja = ["rule job", "  command = bash cijobs/$name.sh > logs/$name.log 2>&1 && touch $out", ""]
    for job in jobs:
        deps = " ".join(f"stamps/{n}" for n in job.needs)
        ninja += [
            f"build stamps/{job.name}: job cijobs/{job.name}.sh" + (f" | {deps}" if deps else ""),
            f"  name = {job.name}",
        ]
    ninja.append("build all: phony " + " ".join(f"stamps/{j.name}" for j in jobs))
    (root / "build.ninja").write_text("\n".join(ninja) + "\n")


@dataclass
class Measure:
    wall: float
    makespan: float
    hop: float | None  # median latency per dependency hop (end of need -> start of job)
    slots: list[float] | None = None  # pytest-cidag: when each worker took its first job (s after the first)


def read_times(path: Path, jobs: list[Job]) -> Measure:
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for line in path.read_text().splitlines():
        name, what, ts = line.split()
        (start if what == "start" else end)[name] = float(ts)
    missing = [j.name for j in jobs if j.name not in end]
    if missing:
        raise RuntimeError(f"jobs did not finish: {missing[:5]}")
    hops = [start[j.name] - max(end[n] for n in j.needs) for j in jobs if j.needs]
    return Measure(0.0, max(end.values()) - min(start.values()), statistics.median(hops) if hops else None)


def worker_starts(root: Path, times: Path) -> list[float]:
    """When each xdist worker started its first job, seconds after the first job started.

    Joins pytest-cidag's own timing records (which worker ran which job) with the start
    times the scripts wrote.
    """
    start: dict[str, float] = {}
    for line in times.read_text().splitlines():
        name, what, stamp = line.split()
        if what == "start":
            start[name] = float(stamp)
    first: dict[str, float] = {}
    timings = root / ".cidag" / "runs" / "latest" / "timings.jsonl"
    for line in timings.read_text().splitlines():
        record = json.loads(line)
        ts = start.get(record["job"])
        if ts is not None:
            first[record["worker"]] = min(ts, first.get(record["worker"], ts))
    t0 = min(start.values())
    return sorted(ts - t0 for ts in first.values())


def run_tool(tool: str, root: Path, jobs: list[Job], n: int) -> Measure:
    times = root / "times.txt"
    times.unlink(missing_ok=True)
    for d in ("logs", "stamps"):
        shutil.rmtree(root / d, ignore_errors=True)
        (root / d).mkdir()
    env = dict(os.environ, BENCH_TIMES=str(times))
    if tool == "make":
        cmd = ["make", "-s", f"-j{n}", "all"]
    elif tool == "ninja":
        cmd = ["ninja", f"-j{n}", "all"]
    else:
        cmd = [sys.executable, "-m", "pytest", "cijobs", "-q", "-p", "no:randomly", "-n", str(n)]
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    measure = read_times(times, jobs)
    measure.wall = wall
    if tool == "cidag":
        measure.slots = worker_starts(root, times)
    return measure


# --- reference schedules ----------------------------------------------------------------------


def critical_paths(jobs: list[Job]) -> dict[str, float]:
    by_name = {j.name: j for j in jobs}
    dependents: dict[str, list[str]] = {j.name: [] for j in jobs}
    for j in jobs:
        for n in j.needs:
            dependents[n].append(j.name)
    memo: dict[str, float] = {}

    def cp(name: str) -> float:
        if name not in memo:
            memo[name] = by_name[name].seconds + max((cp(d) for d in dependents[name]), default=0.0)
        return memo[name]

    return {j.name: cp(j.name) for j in jobs}


def list_schedule(jobs: list[Job], n: int, critical_path_first: bool, slots: list[float] | None = None) -> float:
    """Makespan of a greedy list schedule on n slots with no overhead.

    ``slots``: when each slot becomes free (seconds; all at 0 by default). A run that used
    fewer than n workers leaves the missing slots free from the start.
    """
    if slots is not None:
        free = sorted(slots)[:n]
        free += [0.0] * (n - len(free))
        # a slot that is not free yet is a job that "runs" until then
        blockers = [Job(f"\0slot{i}", [], t) for i, t in enumerate(free) if t > 0]
        if blockers:
            return _list_schedule([*blockers, *jobs], n, critical_path_first, first=len(blockers))
    return _list_schedule(jobs, n, critical_path_first)


def _list_schedule(jobs: list[Job], n: int, critical_path_first: bool, first: int = 0) -> float:
    cp = critical_paths(jobs)
    order = {j.name: i for i, j in enumerate(jobs)}
    needs = {j.name: set(j.needs) for j in jobs}
    secs = {j.name: j.seconds for j in jobs}
    done: set[str] = set()
    started: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    while len(done) < len(jobs):
        ready = [j for j in needs if j not in started and needs[j] <= done]
        # the first ``first`` jobs stand for busy slots: they take them before anything else
        if critical_path_first:
            ready.sort(key=lambda j: (order[j] >= first, -cp[j], order[j]))
        else:
            ready.sort(key=lambda j: (order[j] >= first, order[j]))
        while ready and len(running) < n:
            j = ready.pop(0)
            started.add(j)
            heapq.heappush(running, (now + secs[j], j))
        now, j = heapq.heappop(running)
        done.add(j)
        while running and running[0][0] == now:
            done.add(heapq.heappop(running)[1])
    return now


def ideal(jobs: list[Job], n: int) -> float:
    return max(*critical_paths(jobs).values(), sum(j.seconds for j in jobs) / n)


# --- main ---------------------------------------------------------------------------------------


def ratio(x: float, reference: float) -> str:
    return f"{x / reference:.3f}" if reference > 0 else "-"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f}"


def median_of(tool: str, root: Path, jobs: list[Job], n: int, reps: int) -> Measure:
    runs = [run_tool(tool, root, jobs, n) for _ in range(reps)]
    measure = Measure(
        statistics.median(m.wall for m in runs),
        statistics.median(m.makespan for m in runs),
        statistics.median(m.hop for m in runs) if runs[0].hop is not None else None,  # type: ignore[type-var]
    )
    if all(m.slots is not None for m in runs):
        # the run whose makespan is the median, with its own workers' start times
        middle = sorted(runs, key=lambda m: m.makespan)[len(runs) // 2]
        measure.makespan, measure.slots = middle.makespan, middle.slots
    return measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[2, 4], help="slots/workers (default: 2 4)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median is shown)")
    parser.add_argument("--quick", action="store_true", help="one repetition")
    parser.add_argument("--scale", type=float, default=1 / 16, help="buckaroo duration scale (default 1/16)")
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=["buckaroo", "independent", "chain", "layered", "skewed"],
        help="which workloads",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    for tool in ("make", "ninja"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed; install it to compare", file=sys.stderr)
            return 2
    workloads = {
        "buckaroo": lambda: buckaroo(args.scale),
        "independent": independent,
        "chain": chain,
        "layered": layered,
        "skewed": skewed,
    }
    rows: list[str] = []
    header = (
        "| workload | N | ideal | list CP-first | list decl. | make | ninja | cidag makespan | cidag wall"
        " | cidag / CP-first | make / CP-first | ninja / CP-first | hop median (cidag, make, ninja)"
        " | last worker's first job | CP-first from workers' start | cidag / that |"
    )
    rows += [header, "|" + "---|" * (header.count("|") - 1)]
    startup: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="cidag-bench-") as tmp:
        for n in args.jobs:
            one = Path(tmp) / f"startup-{n}"
            write_project(one, [Job("only", [], 0.0)])
            run_tool("cidag", one, [Job("only", [], 0.0)], n)  # warm-up
            startup[n] = median_of("cidag", one, [Job("only", [], 0.0)], n, reps).wall
        for name in args.workloads:
            jobs = workloads[name]()
            root = Path(tmp) / name
            write_project(root, jobs)
            for n in args.jobs:
                run_tool("cidag", root, jobs, n)  # warm-up: records durations for the priorities
                cidag = median_of("cidag", root, jobs, n, reps)
                make = median_of("make", root, jobs, n, reps)
                ninja = median_of("ninja", root, jobs, n, reps)
                cpf = list_schedule(jobs, n, True)
                decl = list_schedule(jobs, n, False)
                slots = cidag.slots or [0.0]
                staggered = list_schedule(jobs, n, True, slots)

                rows.append(
                    f"| {name} ({len(jobs)} jobs) | {n} | {ideal(jobs, n):.3f} | {cpf:.3f} | {decl:.3f} "
                    f"| {make.makespan:.3f} | {ninja.makespan:.3f} | {cidag.makespan:.3f} | {cidag.wall:.3f} "
                    f"| {ratio(cidag.makespan, cpf)} | {ratio(make.makespan, cpf)} | {ratio(ninja.makespan, cpf)} "
                    f"| {ms(cidag.hop)}, {ms(make.hop)}, {ms(ninja.hop)} "
                    + (
                        f"| +{ms(max(slots))} ms | {staggered:.3f} | {ratio(cidag.makespan, staggered)} |"
                        if cpf > 0
                        else "| - | - | - |"  # no-op jobs: only the overheads mean anything
                    )
                )
                if name == "independent":
                    per_job = (cidag.wall - startup[n]) / len(jobs)
                    make_per = make.wall / len(jobs)
                    ninja_per = ninja.wall / len(jobs)
                    rows.append(
                        f"| ↳ per-job overhead | {n} | | | | {ms(make_per)} ms | {ms(ninja_per)} ms "
                        f"| | {ms(per_job)} ms | | | | | | | |"
                    )
                print(rows[-1], flush=True)
    lines = [
        "All times in seconds unless marked; medians of the repetitions. Makespan = first job start to last job end."
        ' "CP-first from workers\' start": the critical-path-first simulation with each slot free from the'
        " moment its xdist worker took its first job (workers start one after another).",
        "",
        *rows,
        "",
        "pytest-cidag fixed start-up (collection + starting the xdist workers, one no-op job): "
        + ", ".join(f"N={n}: {s:.2f} s" for n, s in startup.items()),
    ]
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
