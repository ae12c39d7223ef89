"""Job outputs: ``key=value`` lines a job appends to ``$CIDAG_OUTPUT``. Pure: no pytest import.

Multi-line values use GitHub Actions' form::

    notes<<EOF
    line one
    line two
    EOF
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pytest_cidag.core.graph import JobGraph, env_name

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class OutputError(Exception):
    def __init__(self, path: Path, line: int, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


def parse_outputs(path: Path) -> dict[str, str]:
    """Read an outputs file; a missing file means no outputs. Raises :class:`OutputError`."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key_line = i  # 1-based number of the line holding the key
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            start = i
            body: list[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise OutputError(path, start, f"'{key}<<{delim}' has no closing line '{delim}'")
            i += 1
            value = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
        else:
            raise OutputError(path, i, f"{line[:80]!r} is not a key=value line")
        if not KEY_RE.match(key):
            raise OutputError(path, key_line, f"{key[:80]!r} is not a valid output name (letters, digits, _ . -)")
        clash = next((k for k in out if k != key and env_name(k) == env_name(key)), None)
        if clash is not None:
            message = f"outputs '{clash}' and '{key}' would both be *_{env_name(key)}: rename one"
            raise OutputError(path, key_line, message)
        out[key] = value
    return out


def needs_environ(job_label: str, outputs: dict[str, str]) -> dict[str, str]:
    """The variables a dependent sees for one needed job's outputs."""
    prefix = f"CIDAG_NEEDS_{env_name(job_label)}_"
    return {prefix + env_name(key): value for key, value in outputs.items()}


class OutputClash(Exception):
    """Two needed jobs' outputs map to one CIDAG_NEEDS_* variable."""


def needs_environ_of(
    graph: JobGraph, key: str, run_keys: Sequence[str], run_dir: Path, previous_run_dir: Path | None
) -> dict[str, str]:
    """``CIDAG_NEEDS_<JOB>_<KEY>`` for the outputs of every job ``key`` needs directly.

    A need in this run (``run_keys``; all of them when it is empty) left its outputs in
    ``run_dir``; one outside it (``--cidag-no-deps``) in the latest run before this one.
    A producer whose outputs file is malformed has failed on it already: it adds nothing.
    """
    if key not in graph.nodes:
        return {}
    in_run = set(run_keys)
    env: dict[str, str] = {}
    origin: dict[str, str] = {}
    for need in graph.needs[key]:
        node = graph.nodes[need]
        if not node.is_job:
            continue
        directory = run_dir if need in in_run or not in_run else previous_run_dir
        if directory is None:
            continue
        try:
            outputs = parse_outputs(directory / f"{node.label}.outputs")
        except OutputError:
            continue
        for name_in_job, (name, value) in zip(outputs, needs_environ(node.label, outputs).items(), strict=True):
            if name in origin:
                raise OutputClash(
                    f"outputs {origin[name]} and '{node.label}' ({name_in_job}) would both be {name}: "
                    "rename one of the jobs or outputs"
                )
            origin[name] = f"'{node.label}' ({name_in_job})"
            env[name] = value
    return env
