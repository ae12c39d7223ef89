"""What the job cache saves on the buckaroo demo: a cold run, a fully cached rerun, one file changed.

    python benchmarks/cache.py [--reps 3] [--scale 0.0625] [-n 0]

Each round copies ``examples/buckaroo`` to a fresh directory (an empty cache), then times:
the cold run (every job runs and is stored), the warm rerun (nothing changed: every job is a
hit), and a rerun after one line is added to ``src/buckaroo/__init__.py`` (the wheel, the
Python tests and what needs the wheel run again; the JS jobs stay cached). Wall times of whole
``pytest`` processes, medians of ``--reps`` rounds; the issue's targets: the warm run under 5 %
of the cold one, and under 1 s at ``-n 0`` (all of it pytest-cidag's own time and pytest's
start-up: no job runs). Run it on a quiet machine.
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
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "examples" / "buckaroo"


def timed(project: Path, workers: int, scale: str) -> float:
    env = dict(os.environ, CIDAG_DEMO_SCALE=scale)
    argv = [sys.executable, "-m", "pytest", str(project), "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    if workers:
        argv += ["-n", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the demo failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def one_round(workers: int, scale: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="cidag-cache-bench-") as tmp:
        project = Path(tmp) / "buckaroo"
        shutil.copytree(DEMO, project, ignore=shutil.ignore_patterns(".cidag", "dist", "__pycache__"))
        cold = timed(project, workers, scale)
        warm = timed(project, workers, scale)
        with (project / "src" / "buckaroo" / "__init__.py").open("a") as f:
            f.write("# one more line\n")
        changed = timed(project, workers, scale)
        return cold, warm, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", default="0.0625", help="CIDAG_DEMO_SCALE (default 1/16)")
    parser.add_argument("-n", dest="workers", type=int, default=0)
    args = parser.parse_args()
    rounds = [one_round(args.workers, args.scale) for _ in range(args.reps)]
    cold, warm, changed = (statistics.median(r[i] for r in rounds) for i in range(3))
    print(f"buckaroo demo, -n {args.workers}, CIDAG_DEMO_SCALE={args.scale}, median of {args.reps}")
    print("| run | wall (s) | of the cold run |")
    print("|---|---|---|")
    for name, value in (("cold (empty cache)", cold), ("warm (nothing changed)", warm), ("one file changed", changed)):
        print(f"| {name} | {value:.2f} | {value / cold:.1%} |")


if __name__ == "__main__":
    main()
