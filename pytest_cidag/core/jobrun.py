"""One job leg's run, as pytest's job item and the Dagster op both make it. Pure: no pytest import.

What goes in (the job's files in the run directory, its working directory, its environment)
and what came out (what the process's ending means, how a failure reads). The process itself
is :mod:`pytest_cidag.core.runner`'s. Both engines call these, so a job cannot see a
different environment, or end with a different outcome, under one than under the other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_cidag.core.jobspec import LOG_SUFFIX, OUTPUTS_SUFFIX, JobLeg, JobSpec
from pytest_cidag.core.outputs import OutputError, OutputLimit, parse_outputs
from pytest_cidag.core.runner import JobResult, tail
from pytest_cidag.core.status import Status

#: Exit code that means "skipped" (automake's convention); the last output line is the reason.
SKIP_EXIT_CODE = 77

#: Longest output line shown in a failure report; the log keeps it whole.
MAX_LINE = 1000


@dataclass(frozen=True)
class JobFiles:
    """A job's files in its run directory, named after its id (``test[3.12].log``)."""

    log: Path
    outputs: Path  # $CIDAG_OUTPUT: the key=value lines it leaves its dependents

    @classmethod
    def in_run(cls, run_dir: Path, job_id: str) -> JobFiles:
        return cls(run_dir / f"{job_id}{LOG_SUFFIX}", run_dir / f"{job_id}{OUTPUTS_SUFFIX}")


def job_cwd(spec: JobSpec, rootdir: Path) -> Path:
    """Where the job runs: its block's ``cwd`` under the rootdir, else the rootdir."""
    return rootdir / spec.cwd if spec.cwd else rootdir


def job_environ(
    leg: JobLeg,
    *,
    job_id: str | None = None,
    run_dir: Path,
    outputs_path: Path,
    needs: Mapping[str, str] | None = None,
    testcases: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The job's environment (``CIDAG_JOB`` is ``job_id``, the leg's id by default): ``base``
    (the caller's, ``os.environ`` by default), the
    block's ``env`` and matrix leg, the ``CIDAG_*`` variables, and ``needs``: the outputs
    of what it needs as ``CIDAG_NEEDS_*`` (:func:`pytest_cidag.core.outputs.needs_environ_from`)."""
    env = dict(os.environ if base is None else base)
    env.update(leg.environ())
    env.update(
        CIDAG_JOB=job_id or leg.id,
        CIDAG_RUN_DIR=str(run_dir),
        CIDAG_OUTPUT=str(outputs_path),
        CIDAG_PYTHON=sys.executable,
    )
    if testcases is not None:
        env["CIDAG_TESTCASES"] = testcases
    env.update(needs or {})
    return env


@dataclass(frozen=True)
class Ending:
    """What a job's ending means.

    ``status`` is PASSED, SKIPPED, FAILED or TIMEOUT; ``reason`` says why it skipped or
    failed (empty when it passed); ``cancelled``: killed from outside (fast-fail, an
    interrupt), a skip; ``outputs``: what a passed job wrote to ``$CIDAG_OUTPUT``.
    """

    status: Status
    reason: str = ""
    cancelled: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)


def judge(
    result: JobResult, outputs_path: Path, job_id: str, timeout: float | None, shown: Callable[[Path], str] = str
) -> Ending:
    """The outcome of a job whose process ended as ``result``. Exit 0 passes when its
    outputs file is well-formed; 77 skips (the last output line is the reason); anything
    else fails. ``shown`` writes a path as the user sees it."""
    if result.timed_out:
        return Ending(Status.TIMEOUT, f"Timeout (>{timeout:g}s): the job's process tree was killed")
    if result.aborted:
        return Ending(Status.SKIPPED, f"cancelled: {result.aborted}", cancelled=True)
    if result.returncode == SKIP_EXIT_CODE:
        last = next((line.strip() for line in reversed(tail(result.log_path, 50)) if line.strip()), "")
        return Ending(Status.SKIPPED, last or f"the job exited with {SKIP_EXIT_CODE}")
    if result.returncode != 0:
        return Ending(Status.FAILED, result.describe_exit())
    return _passed(outputs_path, job_id, shown)


def _passed(outputs_path: Path, job_id: str, shown: Callable[[Path], str]) -> Ending:
    """Exit 0: a pass, with its outputs, unless its outputs file is malformed or over a cap."""
    try:
        outputs = parse_outputs(outputs_path, job_id)
    except OutputLimit as exc:
        return Ending(Status.FAILED, exc.describe(shown(exc.path)))
    except OutputError as exc:
        return Ending(Status.FAILED, f"malformed output at {shown(exc.path)}:{exc.line}: {exc.message}")
    return Ending(Status.PASSED, outputs=outputs)


def run_details(command: str, result: JobResult, log: str) -> list[str]:
    """The lines under a failure's headline that say what ran: command, duration, log."""
    return [f"command:  {command}", f"duration: {result.duration:.2f}s", f"log:      {log}"]


def failure_text(job_id: str, headline: str, details: Sequence[str], log_path: Path | None, tail_lines: int) -> str:
    """A failed job, in a few plain lines: the headline, ``details``, and the last
    ``tail_lines`` lines of its log (when it ran)."""
    lines = [f"job '{job_id}' failed: {headline}", *details]
    if log_path is not None and tail_lines > 0:
        last = tail(log_path, tail_lines)
        if last:
            lines.append("last line of output:" if len(last) == 1 else f"last {len(last)} lines of output:")
            lines.extend("  | " + _cut(line) for line in last)
        else:
            lines.append("(no output)")
    return "".join(line + "\n" for line in lines)


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]} [cidag: line cut, {len(line)} characters]"
