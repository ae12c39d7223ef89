"""Job outputs: ``key=value`` lines a job appends to ``$CIDAG_OUTPUT``. Pure: no pytest import.

Multi-line values use GitHub Actions' form::

    notes<<EOF
    line one
    line two
    EOF
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_cidag.core.graph import JobGraph, env_name

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

#: Most bytes a job's outputs file may hold: what GitHub Actions allows for a job's outputs
#: (1 MB). Every dependent carries them in its environment, which Linux caps (a command
#: line and environment together get a quarter of the stack limit: 2 MiB by default).
MAX_FILE_BYTES = 1024 * 1024
#: Most outputs (distinct names) per job: each is an environment variable of every
#: dependent; more than this is data that belongs in a file.
MAX_OUTPUTS = 1000
#: Linux's cap on one environment string, ``NAME=value`` and its NUL (MAX_ARG_STRLEN):
#: a value whose ``CIDAG_NEEDS_*`` variable is longer makes every dependent fail to start.
MAX_VARIABLE_BYTES = 128 * 1024

_USE_A_FILE = "write big data to a file under $CIDAG_RUN_DIR and output its path"


class OutputError(Exception):
    def __init__(self, path: Path, line: int, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


class OutputLimit(OutputError):
    """The outputs file is well-formed but over a cap: its size or number of outputs
    (``line`` 0), or the size of ``output``'s value (``line``: where it is defined)."""

    def __init__(self, path: Path, line: int, message: str, output: str = "") -> None:
        super().__init__(path, line, message)
        self.output = output

    def describe(self, shown: str) -> str:
        """The message, with the file shown as ``shown``."""
        if self.output:
            return f"output {self.output!r} at {shown}:{self.line} {self.message}"
        return f"outputs file {shown} {self.message}"


def variable_name(job_label: str, key: str) -> str:
    """The variable a dependent sees one output of ``job_label`` as."""
    return f"CIDAG_NEEDS_{env_name(job_label)}_{env_name(key)}"


def parse_outputs(path: Path, job_label: str | None = None) -> dict[str, str]:
    """Read an outputs file; a missing file means no outputs. Raises :class:`OutputError`,
    and :class:`OutputLimit` for a file over :data:`MAX_FILE_BYTES` (not read) or
    :data:`MAX_OUTPUTS`, or, given the producer's ``job_label``, a value whose variable is
    over :data:`MAX_VARIABLE_BYTES`."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_FILE_BYTES + 1) if size <= MAX_FILE_BYTES else b""
    except FileNotFoundError:
        return {}
    size = max(size, len(data))
    if size > MAX_FILE_BYTES:
        message = f"is {size} bytes, over the cap of {MAX_FILE_BYTES} (1 MiB, as GitHub Actions caps a job's outputs)"
        raise OutputLimit(path, 0, f"{message}: {_USE_A_FILE}")
    out, key_lines = _parse(path, data.decode("utf-8", errors="replace"))
    if len(out) > MAX_OUTPUTS:
        raise OutputLimit(
            path,
            0,
            f"has {len(out)} outputs, over the cap of {MAX_OUTPUTS} per job (each is an environment variable "
            "of every dependent): write them to a file under $CIDAG_RUN_DIR and output its path",
        )
    if job_label is not None:
        _check_values(path, job_label, out, key_lines)
    return out


def _check_values(path: Path, job_label: str, out: dict[str, str], key_lines: dict[str, int]) -> None:
    for key, value in out.items():
        name = variable_name(job_label, key)
        room = MAX_VARIABLE_BYTES - len(name.encode()) - 2  # "=" and the NUL
        size = len(value.encode("utf-8", errors="surrogateescape"))
        if size > room:
            message = (
                f"is {size} bytes, over the {room} that {name} can hold (Linux caps one environment variable "
                f"at {MAX_VARIABLE_BYTES} bytes, 128 KiB): {_USE_A_FILE}"
            )
            raise OutputLimit(path, key_lines[key], message, output=key)


def _parse(path: Path, text: str) -> tuple[dict[str, str], dict[str, int]]:
    """The outputs, and the line that defines each (its last definition)."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    key_lines: dict[str, int] = {}
    by_variable: dict[str, str] = {}  # env_name(key) -> the key that took it
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
        variable = env_name(key)
        clash = by_variable.setdefault(variable, key)
        if clash != key:
            message = f"outputs '{clash}' and '{key}' would both be *_{variable}: rename one"
            raise OutputError(path, key_line, message)
        out[key] = value
        key_lines[key] = key_line
    return out, key_lines


def needs_environ(job_label: str, outputs: Mapping[str, str]) -> dict[str, str]:
    """The variables a dependent sees for one needed job's outputs."""
    prefix = f"CIDAG_NEEDS_{env_name(job_label)}_"
    return {prefix + env_name(key): value for key, value in outputs.items()}


class OutputClash(Exception):
    """Two needed jobs' outputs map to one CIDAG_NEEDS_* variable."""


@dataclass(frozen=True)
class NeededOutput:
    """One output a dependent gets from a job it needs."""

    job: str  # the needed job's label
    name: str  # the output's name in that job
    size: int  # bytes of its value


@dataclass
class NeedsEnviron:
    """What :func:`needs_environ_of` hands a dependent: its variables, and where each came from."""

    variables: dict[str, str] = field(default_factory=dict)
    outputs: list[NeededOutput] = field(default_factory=list)

    def too_big(self, error: OSError, shown: int = 3) -> str:
        """Why the dependent could not start (``error`` is E2BIG): its needs' outputs,
        biggest first, with their sizes."""
        biggest = sorted(self.outputs, key=lambda o: -o.size)
        names = ", ".join(f"'{o.job}' ({o.name}) {o.size} bytes" for o in biggest[:shown])
        more = f", and {len(biggest) - shown} more" if len(biggest) > shown else ""
        total = sum(o.size for o in biggest)
        return (
            f"could not start: [Errno {error.errno}] {error.strerror}: the outputs of what it needs take {total} "
            f"bytes of its environment, {len(biggest)} variables; the biggest: {names}{more}: "
            "hand big data over in files under $CIDAG_RUN_DIR"
        )


def needs_environ_of(
    graph: JobGraph, key: str, in_run: Collection[str], run_dir: Path, previous_run_dir: Path | None
) -> NeedsEnviron:
    """``CIDAG_NEEDS_<JOB>_<KEY>`` for the outputs of every job ``key`` needs directly.

    A need in this run (``in_run``, the keys it runs; all of them when it is empty) left
    its outputs in ``run_dir``; one outside it (``--cidag-no-deps``) in the latest run
    before this one. A producer whose outputs file is malformed or over a cap has failed
    on it already: it adds nothing. Costs what ``key``'s needs and their outputs do, not
    the size of the run (``in_run`` is a set).
    """
    if key not in graph.nodes:
        return NeedsEnviron()

    def produced() -> Iterator[tuple[str, dict[str, str]]]:
        for need in graph.needs[key]:
            node = graph.nodes[need]
            if not node.is_job:
                continue
            directory = run_dir if need in in_run or not in_run else previous_run_dir
            if directory is None:
                continue
            try:
                yield node.label, parse_outputs(directory / f"{node.label}.outputs", node.label)
            except OutputError:
                continue

    return needs_environ_from(produced())


def needs_environ_from(produced: Iterable[tuple[str, Mapping[str, str]]]) -> NeedsEnviron:
    """``CIDAG_NEEDS_<JOB>_<KEY>`` for what the needed jobs produced: (job label, outputs)
    pairs, in the order of the dependent's needs. Raises :class:`OutputClash` when two
    of them would set one variable. pytest reads the outputs from the run directory
    (:func:`needs_environ_of`); the Dagster ops hand them over as their ops' outputs."""
    env = NeedsEnviron()
    origin: dict[str, str] = {}
    for label, outputs in produced:
        for name_in_job, (name, value) in zip(outputs, needs_environ(label, outputs).items(), strict=True):
            if name in origin:
                raise OutputClash(
                    f"outputs {origin[name]} and '{label}' ({name_in_job}) would both be {name}: "
                    "rename one of the jobs or outputs"
                )
            origin[name] = f"'{label}' ({name_in_job})"
            env.variables[name] = value
            env.outputs.append(NeededOutput(label, name_in_job, len(value.encode(errors="surrogateescape"))))
    return env
