"""A signal at any point of a job's start or end: the job's whole tree still ends.

SIGINT, SIGTERM and SIGHUP are delivered for real (``signal.raise_signal``) at each step the
runner names in ``runner.STEPS``, through its ``on_step`` seam, in a child Python process that
leaves SIGTERM and SIGHUP at their default action. Nothing is left to the timing of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_cidag.core import runner
from tests.helpers import PROC_MISSING, processes_with_variable

pytestmark = pytest.mark.skipif(PROC_MISSING, reason="finding a job's processes by its tag needs /proc (Linux)")

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path

    from pytest_cidag.core import runner

    # No handlers of our own: SIGTERM and SIGHUP have their default action, which would
    # kill this process and orphan the job, unless the runner winds them down itself.
    sig = signal.Signals[sys.argv[1]]
    tmp = Path(sys.argv[2])
    job = tmp / "job.sh"
    # Two processes that outlive the job's main process (one in a session of its own), and a
    # main process that ends by itself after a while: the signal at "exited" finds leftovers.
    job.write_text("setsid sleep 60 &\\nsleep 60 &\\necho started\\nsleep 0.5\\n")
    results = {}
    for step in runner.STEPS:
        fired = []

        def on_step(name, step=step, fired=fired):
            if name == step and not fired:
                fired.append(name)
                signal.raise_signal(sig)

        log = tmp / f"{step}.log"
        tee = open(os.devnull, "wb") if "tee" in step else None
        proc = runner.JobProcess(["bash", str(job)], log_path=log, kill_grace=0.5, tee=tee, on_step=on_step)
        try:
            proc.run()
            raised = None
        except BaseException as exc:  # what reaches the caller
            raised = type(exc).__name__
        results[step] = {"fired": bool(fired), "raised": raised, "tag": runner.TAG_PREFIX + proc.token,
                         "log": log.read_text() if log.exists() else None}
    print(json.dumps(results))
    """
)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_at_every_step_kills_the_whole_tree(tmp_path: Path, signame: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIDAG_")}
    proc = subprocess.run(
        [sys.executable, str(script), signame, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert list(results) == list(runner.STEPS)
    expected = "KeyboardInterrupt" if signame == "SIGINT" else "Terminated"
    reason = "interrupted" if signame == "SIGINT" else f"terminated by {signame}"
    for step, result in results.items():
        assert result["fired"], f"the seam never reached step {step!r}"
        assert result["raised"] == expected, (step, result)
        assert processes_with_variable(result["tag"]) == [], f"a process of the job survived a {signame} at {step!r}"
        assert result["log"] is not None, step
        # after the job's own end, only its leftovers were killed
        what = "leftover processes killed" if step == "exited" else "job killed"
        assert result["log"].endswith(f"[cidag] {what}: {reason}\n"), (step, result["log"])
