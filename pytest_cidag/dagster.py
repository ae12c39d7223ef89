"""The jobs of a checkout as one Dagster job: an op per job leg, wired by ``needs``.

``definitions(rootdir)`` reads the job files pytest would collect (the same discovery, parser
and graph: :mod:`pytest_cidag.core`) and returns a :class:`dagster.Definitions` holding one
job. Each op runs its job leg through the runner pytest uses (:mod:`pytest_cidag.core.runner`:
its own process group, the block's timeout killing the whole tree, the log file, a reaper in
case the op's process is killed) with the environment pytest gives it
(:mod:`pytest_cidag.core.jobrun`), and judges its ending as pytest does.

How a job's outcome shows in Dagster:

* **passed**: the op yields its output ``passed``, whose value is the job's outputs (the
  ``key=value`` lines of ``$CIDAG_OUTPUT``); dependents get them as ``CIDAG_NEEDS_*``.
* **failed** or **timed out**: the op fails (``STEP_FAILURE``, with pytest's failure text:
  exit code, command, log, last lines). Dagster does not run its dependents: it logs
  "Dependencies for step X failed ... Not executing." and they have no step events.
* **skipped** (exit 77, or cancelled by a run's termination): the op succeeds but yields
  ``skipped`` (the reason) instead of ``passed``, and logs a warning. Dagster has no
  skipped status an op can give itself; an op whose input was never yielded is skipped
  (``STEP_SKIPPED``, "Skipping step X due to skipped dependencies"), so what needs it is
  skipped, never run as if it had passed.

Ops, not assets: a CI job is an action with an outcome, not a data asset with a lineage to
materialize; its matrix legs, skips and outputs to dependents map onto ops and their optional
outputs, and Dagster's asset semantics (freshness, partitions, re-materializing one asset)
would claim things a job does not promise.

Markers become op tags (``cidag.marker/<name>``); ``resources`` become tags
(``cidag.resource/<name>``) with a tag concurrency limit of 1 each in the job's executor
config, so no two ops holding one run at once; the block's ``timeout`` is enforced by the
runner (Dagster has no op timeout) and shown as the tag ``cidag/timeout``. The job's output
goes to the op's stdout, so Dagster's compute logs show it, and to the job's log file under
``<rootdir>/.cidag/runs/dagster-<run id>/``.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import hashlib
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypedDict, Unpack

from pytest_cidag.core import discovery
from pytest_cidag.core.graph import GraphError, JobGraph, Node
from pytest_cidag.core.jobrun import JobFiles, failure_text, job_cwd, job_environ, judge, run_details
from pytest_cidag.core.jobspec import JobLeg, JobSpecError, command_for, display_command, parse_file
from pytest_cidag.core.outputs import OutputClash, needs_environ_from
from pytest_cidag.core.reaper import Reaper
from pytest_cidag.core.runner import DEFAULT_KILL_GRACE, JobProcess
from pytest_cidag.core.settings import RUNS_DIR, ignore_runs
from pytest_cidag.core.status import Status

#: What a user without Dagster sees (docs/errors.md, "Dagster is not installed").
MISSING = "pytest_cidag.dagster needs Dagster, which is not installed here: pip install 'pytest-cidag[dagster]'"

try:
    import dagster as dg
except ImportError:
    raise ImportError(MISSING) from None

#: The name of the one Dagster job, unless ``definitions`` is told another.
JOB_NAME = "cijobs"
#: An op's outputs: ``passed`` carries the job's outputs to its dependents; ``skipped`` the reason.
PASSED = "passed"
SKIPPED = "skipped"
#: The metadata entry of a failure or a skip that names its outcome (failed, timeout, skipped, cancelled).
OUTCOME = "outcome"
#: Tags: the job leg's id and file, its timeout, and one per marker and per resource.
JOB_TAG = "cidag/job"
FILE_TAG = "cidag/file"
TIMEOUT_TAG = "cidag/timeout"
MARKER_PREFIX = "cidag.marker/"
RESOURCE_PREFIX = "cidag.resource/"
#: Lines of a failed job's log in its op's failure (pytest's ini ``cidag_tail_lines`` default).
TAIL_LINES = 15
#: Dagster's rule for op and input names, and for a tag key's part after its ``/``.
_OP_NAME = re.compile(r"[^A-Za-z0-9_]+")
_TAG_PART = re.compile(r"[^A-Za-z0-9_.-]+")
_TAG_PART_MAX = 63


class DefinitionsError(Exception):
    """The checkout's jobs cannot become Dagster definitions: a job file or the graph is
    wrong (the message is pytest's own for the same mistake), or there are no jobs."""


@dataclass(frozen=True)
class JobOp:
    """One job leg and the op that runs it."""

    leg: JobLeg
    key: str  # its node id, as pytest names it: cijobs/test.sh::test[3.12]
    op_name: str
    file: str  # its job file, relative to the rootdir
    resources: Mapping[str, str]  # resource name -> its tag key


class JobOptions(TypedDict, total=False):
    """:func:`job`'s keyword arguments, which :func:`definitions` passes on."""

    name: str
    executor: dg.ExecutorDefinition | None
    max_concurrent: int | None
    kill_grace: float


def definitions(
    rootdir: str | os.PathLike[str], paths: Sequence[str] | None = None, **options: Unpack[JobOptions]
) -> dg.Definitions:
    """A :class:`dagster.Definitions` holding :func:`job`."""
    return dg.Definitions(jobs=[job(rootdir, paths, **options)])


def job(
    rootdir: str | os.PathLike[str],
    paths: Sequence[str] | None = None,
    *,
    name: str = JOB_NAME,
    executor: dg.ExecutorDefinition | None = None,
    max_concurrent: int | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE,
) -> dg.JobDefinition:
    """A Dagster job, ``name``: an op per job leg under ``rootdir``'s job directories,
    wired by their ``needs``.

    ``paths`` are the job directories relative to ``rootdir``; by default the ini option
    ``cidag_paths`` of ``rootdir``'s pytest configuration file, else ``cijobs``. ``executor``
    is the job's executor (default: Dagster's multiprocess executor, its ops' processes
    forked from a server that imported Dagster; ``k8s_job_executor`` and ``docker_executor``
    take the same resource limits). ``max_concurrent`` caps the ops running at once (the
    executor's default: the CPU count); ``kill_grace`` is the seconds between TERM and KILL
    when a job's tree is killed. Raises :class:`DefinitionsError`.
    """
    root = Path(rootdir).resolve()
    job_ops, graph = load(root, paths)
    by_key = {j.key: j for j in job_ops}
    op_defs = [_op(j, [by_key[n] for n in graph.needs[j.key]], root, kill_grace) for j in job_ops]
    dependencies: dict[str, dict[str, dg.DependencyDefinition]] = {
        j.op_name: {by_key[n].op_name: dg.DependencyDefinition(by_key[n].op_name, PASSED) for n in graph.needs[j.key]}
        for j in job_ops
    }
    executor = executor or dg.multiprocess_executor
    limits = resource_limits(job_ops)
    config: dict[str, Any] = {}
    if limits and executor is not dg.in_process_executor:  # (that runs one op at a time)
        if "tag_concurrency_limits" not in _config_fields(executor):
            raise DefinitionsError(
                f"jobs hold resources ({', '.join(sorted({r for j in job_ops for r in j.resources}))}), "
                f"but the executor {executor.name!r} has no tag_concurrency_limits to keep them apart"
            )
        config["tag_concurrency_limits"] = limits
    if max_concurrent is not None:
        config["max_concurrent"] = max_concurrent
    if executor is dg.multiprocess_executor:
        # Each op's process forks from one that imported Dagster already: spawned (Dagster's
        # default), each imports it again, ~2 s of CPU per op (the demo: 58 s, forked 27 s).
        config["start_method"] = {"forkserver": {}}
    graph_def = dg.GraphDefinition(
        name=name,
        node_defs=op_defs,
        dependencies=dependencies,
        description=f"The jobs in {', '.join(_job_dirs(root, paths))} of {root.name}, run by pytest-cidag's runner",
    )
    return graph_def.to_job(executor_def=executor, config={"execution": {"config": config}} if config else None)


def load(rootdir: Path, paths: Sequence[str] | None = None) -> tuple[list[JobOp], JobGraph]:
    """The job legs under ``rootdir``'s job directories and their graph, as pytest finds them."""
    python_files = _ini(rootdir, "python_files") or discovery.DEFAULT_PYTHON_FILES
    legs: list[tuple[JobLeg, str, str]] = []  # (leg, node id, file)
    seen: set[str] = set()
    for directory in _job_dirs(rootdir, paths):
        for path in discovery.iter_job_files(rootdir / directory, python_files):
            real = os.path.realpath(path)
            if real in seen:  # one file reached twice (a symlink): one job, as in pytest
                continue
            seen.add(real)
            file = os.path.relpath(path, rootdir).replace(os.sep, "/")
            try:
                spec = parse_file(path, root=rootdir)
            except JobSpecError as exc:
                raise DefinitionsError(f"{file}:{exc.line}: {exc.message}") from None
            except OSError as exc:
                raise DefinitionsError(f"{file}: cannot read the job file: {exc}") from None
            legs.extend((leg, f"{file}::{leg.id}", file) for leg in spec.legs())
    if not legs:
        where = ", ".join(_job_dirs(rootdir, paths))
        raise DefinitionsError(f"no job files in {where} under {rootdir}: nothing for Dagster to run")
    nodes = [
        Node(
            key=key,
            label=leg.id,
            needs=leg.spec.needs,
            job=leg.spec.name,
            where=f"{file}:{leg.spec.line}",
            markers=leg.spec.markers,
            timeout=leg.spec.timeout,
        )
        for leg, key, file in legs
    ]
    try:
        graph = JobGraph.build(nodes, tests=False)
    except GraphError as exc:
        raise DefinitionsError(str(exc)) from None
    names = op_names([leg.id for leg, _, _ in legs])
    job_ops = [
        JobOp(leg, key, names[leg.id], file, {r: resource_tag(r) for r in leg.spec.resources})
        for leg, key, file in legs
    ]
    return job_ops, graph


def op_names(ids: Iterable[str]) -> dict[str, str]:
    """Job leg ids as Dagster op names (letters, digits, ``_``): ``test-python[3.11]`` is
    ``test_python_3_11``; a name taken already gets ``_2``, ``_3``... in the order given."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for job_id in ids:
        base = _OP_NAME.sub("_", job_id).strip("_") or "job"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out[job_id] = name
    return out


def resource_tag(resource: str) -> str:
    """The tag key of a resource: ``cidag.resource/gpu``; a name Dagster would not take as
    a key (``port:8701``) is cleaned and made unique by a hash: ``cidag.resource/port_8701-1a2b3c4d``."""
    clean = _TAG_PART.sub("_", resource)
    if clean == resource and len(resource) <= _TAG_PART_MAX:
        return RESOURCE_PREFIX + resource
    digest = hashlib.sha256(resource.encode()).hexdigest()[:8]
    return f"{RESOURCE_PREFIX}{clean[: _TAG_PART_MAX - 9]}-{digest}"


def resource_limits(job_ops: Iterable[JobOp]) -> list[dict[str, Any]]:
    """The executor's ``tag_concurrency_limits``: one op at a time per resource."""
    keys = sorted({key for j in job_ops for key in j.resources.values()})
    return [{"key": key, "limit": 1} for key in keys]


def run_dir(rootdir: Path, run_id: str) -> Path:
    """Where a Dagster run's job logs and outputs files go (pytest's runs prune only their own)."""
    return rootdir / RUNS_DIR / f"dagster-{run_id}"


def run_outcomes(job_def: dg.JobDefinition, events: Iterable[dg.DagsterEvent]) -> dict[str, str]:
    """Each job leg's outcome in a finished run of ``job_def``, in the run record's words
    (docs/run-record.md): ``passed`` (its op yielded ``passed``), ``failed`` or ``timeout``
    (its step failed), ``skipped`` or ``cancelled`` (its op yielded ``skipped``), ``blocked``
    (Dagster skipped its step, or never started it because a need failed)."""
    leg_of = {op.name: op.tags[JOB_TAG] for op in job_def.all_node_defs}
    outcome = dict.fromkeys(leg_of.values(), "blocked")
    for event in events:
        leg = leg_of.get(event.step_key or "")
        if leg is None:
            continue
        if event.is_step_failure:
            failure = event.step_failure_data.user_failure_data
            said = failure.metadata.get(OUTCOME) if failure is not None else None
            outcome[leg] = str(said.value) if said is not None else "failed"
        elif event.is_successful_output and event.step_output_data.output_name == PASSED:
            outcome[leg] = "passed"
        elif event.is_successful_output:
            said = event.step_output_data.metadata.get(OUTCOME)
            outcome[leg] = str(said.value) if said is not None else "skipped"
    return outcome


# --- the op -------------------------------------------------------------------------------


def _op(job_op: JobOp, needs: Sequence[JobOp], rootdir: Path, kill_grace: float) -> dg.OpDefinition:
    leg, spec = job_op.leg, job_op.leg.spec
    tags = {JOB_TAG: leg.id, FILE_TAG: job_op.file}
    if spec.timeout is not None:
        tags[TIMEOUT_TAG] = f"{spec.timeout:g}"
    tags.update((MARKER_PREFIX + m, "") for m in spec.markers)
    tags.update((key, name) for name, key in job_op.resources.items())
    lines = [f"{leg.id}: {job_op.file}"]
    if needs:
        lines.append("needs: " + ", ".join(n.leg.id for n in needs))
    if spec.timeout is not None:
        lines.append(f"timeout: {spec.timeout:g}s (the job's process tree is killed)")
    labels = {n.op_name: n.leg.id for n in needs}

    # Dagster checks the context's annotation as an object, and this module's annotations are
    # strings (``from __future__ import annotations``): the context is left unannotated.
    def compute(context, inputs):  # type: ignore[no-untyped-def]
        produced = [(labels[n.op_name], inputs[n.op_name]) for n in needs]
        yield from _run_leg(context, job_op, produced, rootdir, kill_grace)

    return dg.OpDefinition(
        compute_fn=compute,
        name=job_op.op_name,
        ins={n.op_name: dg.In(description=f"the outputs of {n.leg.id}") for n in needs},
        outs={
            PASSED: dg.Out(is_required=False, description="the job passed: its outputs (key=value)"),
            SKIPPED: dg.Out(is_required=False, description="the job skipped itself (exit 77): the reason"),
        },
        description="\n".join(lines),
        tags=tags,
    )


def _run_leg(
    context: dg.OpExecutionContext,
    job_op: JobOp,
    produced: Sequence[tuple[str, Mapping[str, str]]],
    rootdir: Path,
    kill_grace: float,
) -> Iterator[dg.Output[Any]]:
    """Run one job leg as pytest's job item does; yield ``passed`` or ``skipped``, or raise
    :class:`dagster.Failure`."""
    leg, spec = job_op.leg, job_op.leg.spec
    directory = run_dir(rootdir, context.run_id)
    directory.mkdir(parents=True, exist_ok=True)
    ignore_runs(directory.parent)
    files = JobFiles.in_run(directory, leg.id)
    files.outputs.unlink(missing_ok=True)

    def fail(
        headline: str, details: Sequence[str] = (), log: Path | None = None, status: Status = Status.FAILED
    ) -> dg.Failure:
        text = failure_text(leg.id, headline, details, log, TAIL_LINES)
        metadata = {OUTCOME: dg.MetadataValue.text(status.value), "log": dg.MetadataValue.path(str(files.log))}
        return dg.Failure(description=text, metadata=metadata, allow_retries=False)

    try:
        needs = needs_environ_from(produced)
    except OutputClash as exc:
        raise fail(str(exc)) from None
    env = job_environ(leg, run_dir=directory, outputs_path=files.outputs, needs=needs.variables)
    path = rootdir / job_op.file
    try:
        argv = command_for(path, path.read_bytes())
    except OSError as exc:
        raise fail(f"the job file {job_op.file} cannot be read: {exc.strerror}") from None
    shown = display_command([*argv[:-1], job_op.file])
    reaper = Reaper(kill_grace)
    with _stdout() as tee:
        proc = JobProcess(
            argv,
            log_path=files.log,
            cwd=job_cwd(spec, rootdir),
            env=env,
            timeout=spec.timeout,
            nice=spec.nice,
            tee=tee,
            kill_grace=kill_grace,
            watcher=reaper,
        )
        try:
            result = proc.run()
        except OSError as exc:
            if exc.errno == errno.E2BIG and needs.outputs:
                raise fail(needs.too_big(exc), [f"command:  {shown}"]) from None
            raise fail(f"could not start: {exc}", [f"command:  {shown}"]) from None
        finally:
            reaper.close()
    ending = judge(result, files.outputs, leg.id, spec.timeout, lambda p: os.path.relpath(p, rootdir))
    metadata = {
        "log": dg.MetadataValue.path(str(files.log)),
        "command": dg.MetadataValue.text(shown),
        "duration": dg.MetadataValue.float(round(result.duration, 3)),
        "returncode": dg.MetadataValue.int(result.returncode),
    }
    if ending.status is Status.PASSED:
        yield dg.Output(dict(ending.outputs), PASSED, metadata=metadata)
    elif ending.status is Status.SKIPPED:
        context.log.warning(f"job '{leg.id}' skipped: {ending.reason}")
        metadata[OUTCOME] = dg.MetadataValue.text("cancelled" if ending.cancelled else "skipped")
        yield dg.Output(ending.reason, SKIPPED, metadata=metadata)
    else:
        raise fail(ending.reason, run_details(shown, result, str(files.log)), result.log_path, ending.status)


@contextlib.contextmanager
def _stdout() -> Iterator[BinaryIO | None]:
    """The op's standard output, at the file descriptor: where Dagster's compute log capture
    redirects it (a Python-level ``sys.stdout`` may be anything). None when it is closed."""
    try:
        fd = os.dup(1)
    except OSError:
        yield None
        return
    with open(fd, "wb", buffering=0) as out:
        yield out


# --- which directories, from the rootdir's pytest configuration ---------------------------


def _job_dirs(rootdir: Path, paths: Sequence[str] | None) -> list[str]:
    if paths is not None:
        return list(paths)
    return list(_ini(rootdir, "cidag_paths") or ("cijobs",))


def _ini(rootdir: Path, name: str) -> tuple[str, ...] | None:
    """An ``args`` ini option from the pytest configuration file in ``rootdir``, found in
    pytest's order (pytest.ini, .pytest.ini, pyproject.toml, tox.ini, setup.cfg); None when
    it is not set there."""
    for filename, section in (
        ("pytest.ini", "pytest"),
        (".pytest.ini", "pytest"),
        ("pyproject.toml", None),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    ):
        path = rootdir / filename
        if not path.is_file():
            continue
        if section is None:
            table = _pyproject_options(path)
            if table is None:
                continue
            value = table.get(name)
            if value is None:
                return None
            return tuple(shlex.split(value)) if isinstance(value, str) else tuple(str(v) for v in value)
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error, UnicodeDecodeError):
            parser.read(path, encoding="utf-8")
        if parser.has_section(section) or filename.endswith("pytest.ini"):
            raw = parser.get(section, name, fallback=None) if parser.has_section(section) else None
            return tuple(shlex.split(raw)) if raw is not None else None
    return None


def _pyproject_options(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    tool = data.get("tool", {}).get("pytest")
    if not isinstance(tool, dict):
        return None
    options = tool.get("ini_options")
    return options if isinstance(options, dict) else tool


def _config_fields(executor: dg.ExecutorDefinition) -> set[str]:
    """The names an executor's config takes (none when it takes no dict)."""
    fields = getattr(executor.config_schema.as_field().config_type, "fields", None)
    return set(fields) if isinstance(fields, Mapping) else set()
