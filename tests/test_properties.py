"""Property test: random DAGs with random outcomes, run for real, checked against invariants.

Each example writes a random job graph (pass, fail, skip, timeout, crash), runs pytest on it
with a random -n, -k and -x, and checks what must always hold. The default example count
fits about a minute of CI; set CIDAG_PROPERTY_EXAMPLES for a deeper local run (e.g. 200).
A failure prints the falsifying example and a ``@reproduce_failure`` line that replays it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import junitparser
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers import alive

EXAMPLES = int(os.environ.get("CIDAG_PROPERTY_EXAMPLES", "30"))
#: In CI the examples are fixed (derived from the test itself), so a red build is reproducible;
#: locally each run explores new ones.
DERANDOMIZE = bool(os.environ.get("CI"))
BEHAVIOURS = ["pass", "pass", "pass", "fail", "skip", "timeout", "crash"]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(min_value=2, max_value=9))
    jobs = []
    for i in range(n):
        needs = sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=min(i, 3)))) if i else []
        behaviour = draw(st.sampled_from(BEHAVIOURS))
        jobs.append({"name": f"j{i}", "needs": [f"j{k}" for k in needs], "behaviour": behaviour})
    workers = draw(st.sampled_from([0, 2, 3]))
    if workers == 0:
        # A crash takes down its process: without xdist that is pytest itself.
        for job in jobs:
            if job["behaviour"] == "crash":
                job["behaviour"] = "fail"
    k = draw(st.one_of(st.none(), st.sampled_from([f"j{i}" for i in range(n)])))
    maxfail = draw(st.sampled_from([0, 0, 1]))
    return {"jobs": jobs, "workers": workers, "k": k, "maxfail": maxfail}


#: What each job does, and the exit code it ends with once it has logged its end.
BODY = {
    "pass": ("sleep 0.05", 0),
    "fail": ("sleep 0.05", 1),
    "skip": ("echo 'nothing to do'", 77),
    "timeout": ("sleep 30", 0),
    "crash": ("kill -9 $PPID; sleep 30", 0),
}


def write(root: Path, dag: dict[str, object]) -> None:
    jobdir = root / "cijobs"
    jobdir.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\ncidag_paths = cijobs\n")
    for job in dag["jobs"]:  # type: ignore[attr-defined]
        block = f"# /// cidag\n# needs = {json.dumps(job['needs'])}\n# timeout = 1\n# ///\n"
        command, code = BODY[job["behaviour"]]
        body = (
            'echo "start $CIDAG_JOB $(date +%s.%N)" >> "$CIDAG_RUN_DIR/../events"\n'
            'echo $$ >> "$CIDAG_RUN_DIR/../pids"\n'
            'sleep 300 & echo $! >> "$CIDAG_RUN_DIR/../pids"\n'
            f"{command}\n"
            'echo "end $CIDAG_JOB $(date +%s.%N)" >> "$CIDAG_RUN_DIR/../events"\n'
            f"exit {code}\n"
        )
        (jobdir / f"{job['name']}.sh").write_text(block + body)


#: Always run, whatever is drawn: -x stopping a run while a job runs on another worker.
FAST_FAIL = {
    "jobs": [
        {"name": "j0", "needs": [], "behaviour": "fail"},
        {"name": "j1", "needs": [], "behaviour": "timeout"},
        {"name": "j2", "needs": ["j0"], "behaviour": "pass"},
        {"name": "j3", "needs": [], "behaviour": "pass"},
    ],
    "workers": 2,
    "k": None,
    "maxfail": 1,
}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
    print_blob=True,
)
@example(dag=FAST_FAIL)
@given(dag=dags())
def test_random_dags_keep_every_invariant(tmp_path_factory: pytest.TempPathFactory, dag: dict[str, object]) -> None:
    root = tmp_path_factory.mktemp("dag")
    write(root, dag)
    jobs = {j["name"]: j for j in dag["jobs"]}  # type: ignore[attr-defined]
    args = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "--cidag-kill-grace", "0.2"]
    args += ["--cidag-run-dir", "runs/r", "--junitxml=junit.xml", "-rs"]
    if dag["workers"]:
        args += ["-n", str(dag["workers"])]
    if dag["k"]:
        args += ["-k", str(dag["k"])]  # names are j0..j8: no name is a part of another
    if dag["maxfail"]:
        args += [f"--maxfail={dag['maxfail']}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("CIDAG_")}
    proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout

    # the selection: the -k target and everything it needs
    selected = set(jobs)
    if dag["k"]:
        selected = {dag["k"]}
        stack = list(jobs[dag["k"]]["needs"])
        while stack:
            name = stack.pop()
            if name not in selected:
                selected.add(name)
                stack.extend(jobs[name]["needs"])

    # each job reported at most once, and exactly once unless -x stopped the run
    suite = next(iter(junitparser.JUnitXml.fromfile(str(root / "junit.xml"))))
    reported: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in suite:
        assert case.name not in reported, f"{case.name} reported twice"
        result = case.result[0] if case.result else None
        reported[case.name] = type(result).__name__ if result is not None else "Passed"
        messages[case.name] = (result.message or "") if result is not None else ""
    assert set(reported) <= selected
    # -x stops the run exactly when something failed (a crash or a timeout counts)
    failures = [n for n, o in reported.items() if o in ("Failure", "Error")]
    stopped = "stopping after" in out
    assert stopped == bool(dag["maxfail"] and failures), out
    if not stopped:
        assert set(reported) == selected, out

    # nobody started before everything it needs had passed (some job always starts: the
    # first in order needs nothing)
    events: dict[str, dict[str, float]] = {}
    for line in (root / "runs" / "events").read_text().splitlines():
        what, name, ts = line.split()
        events.setdefault(name, {})[what] = float(ts)
    assert events, out
    for name, ev in events.items():
        for need in jobs[name]["needs"]:
            assert reported.get(need) == "Passed", f"{name} started though {need} did not pass"
            assert events[need]["end"] <= ev["start"], f"{name} started before {need} ended"

    # dependents of a job that did not pass are skipped, naming a blocker upstream
    for name, outcome in reported.items():
        if outcome != "Skipped" or "upstream job" not in messages[name]:
            continue
        blocker = re.search(r"upstream job '([^']+)'", messages[name])
        assert blocker is not None
        assert blocker.group(1) != name and reported.get(blocker.group(1)) != "Passed"
    for name, outcome in reported.items():
        if outcome == "Passed":
            assert all(reported.get(n) == "Passed" for n in jobs[name]["needs"])

    # never more than N at once
    limit = int(dag["workers"] or 1)  # type: ignore[call-overload]
    spans = sorted((ev["start"], ev.get("end", ev["start"] + 0.01)) for ev in events.values())
    for i, (start, _) in enumerate(spans):
        assert sum(1 for s, e in spans[: i + 1] if e > start) <= limit

    # -x: nothing starts once the first failure is known (a job dispatched a moment before
    # may still start: allow for that, far less than a chain of jobs would take). A failing
    # job logs its end before it exits; a timeout or a crash is known one second at most
    # after its start (the jobs' timeout).
    if stopped:
        known = [events[n]["end"] if "end" in events[n] else events[n]["start"] + 1.0 for n in failures]
        first_failure = min(known)
        late = [n for n, ev in events.items() if ev["start"] > first_failure + 1.0]
        assert late == [], f"{late} started after the run stopped"

    # no process of any job survives
    pids = [int(p) for p in (root / "runs" / "pids").read_text().split()]
    assert len(pids) == 2 * len(events)
    assert [p for p in pids if alive(p)] == []
