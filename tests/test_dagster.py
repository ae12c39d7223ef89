"""pytest_cidag.dagster: the jobs as a Dagster job, run by the real dagster package and
compared, job by job, with what pytest makes of the same jobs.

Dagster's import and its runs are slow (a multiprocess run imports it in every op's
process): the instance and pytest's side of each comparison are shared per module.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import alive, read_pids
from tests.test_catalogue import entry

if TYPE_CHECKING:
    import dagster as dg
else:
    dg = pytest.importorskip("dagster", reason="Dagster is not installed: pip install -e '.[dev]'")

from pytest_cidag.dagster import (
    FILE_TAG,
    JOB_TAG,
    MARKER_PREFIX,
    MISSING,
    PASSED,
    SKIPPED,
    TIMEOUT_TAG,
    DefinitionsError,
    definitions,
    op_names,
    resource_tag,
    run_dir,
    run_outcomes,
)

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "examples" / "buckaroo"
#: The demo's jobs sleep their buckaroo time times this.
SCALE = "0.002"
#: Variables of a job's environment that differ between any two runs.
PER_RUN = ("CIDAG_RUN_DIR", "CIDAG_OUTPUT", "CIDAG_TAG_", "CIDAG_RTAG_", "CIDAG_PYTHON")


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without an outer run's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIDAG_", "PYTEST_", "DEMO_FAIL"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dagster-home")
    # no telemetry, and no newsletter dialog over the UI's first page
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    return home


@pytest.fixture(scope="module")
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        yield inst


def copy_demo(where: Path) -> Path:
    shutil.copytree(DEMO, where, ignore=shutil.ignore_patterns(".cidag", "__pycache__", "dist"))
    return where


def job_of(root: Path) -> dg.JobDefinition:
    return definitions(root).get_job_def("cijobs")


# --- pytest's side ------------------------------------------------------------------------


class Results:
    """One run's outcome per job id, outputs per job id, and the lines of each job's log
    that show what it got from its needs (``using ...`` in the demo)."""

    def __init__(self, outcomes: dict[str, str], directory: Path) -> None:
        self.outcomes = outcomes
        self.outputs = {job: _read(directory / f"{job}.outputs") for job in outcomes}
        logs = {job: _read(directory / f"{job}.log").splitlines() for job in outcomes}
        self.using = {job: [line for line in lines if "using" in line] for job, lines in logs.items()}


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def pytest_results(root: Path, env: dict[str, str]) -> Results:
    """``pytest ROOT`` in a process of its own (as a user runs it), cache off."""
    directory = root.parent / f"{root.name}-pytest-run"
    off = ("--cidag-cache", "off", "--cidag-run-dir", str(directory))
    subprocess.run(
        [sys.executable, "-m", "pytest", str(root), "-p", "no:randomly", "-p", "no:cacheprovider", "-q", *off],
        cwd=root,
        env=env,
        capture_output=True,
        check=False,
        timeout=600,
    )
    record = json.loads((directory / "run.json").read_text())
    return Results({j["id"]: j["outcome"] for j in record["jobs"]}, directory)


class PytestDemo:
    """pytest's results for the demo, per DEMO_FAIL value: each run once per module, when
    a test first asks for it (under xdist each worker asks only for what its tests need)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.runs: dict[str, Results] = {}

    def __getitem__(self, fail: str) -> Results:
        if fail not in self.runs:
            root = copy_demo(self.factory.mktemp("pytest-demo") / "demo")
            self.runs[fail] = pytest_results(root, clean_environ(CIDAG_DEMO_SCALE=SCALE, DEMO_FAIL=fail))
            assert len(self.runs[fail].outcomes) == 16
        return self.runs[fail]


@pytest.fixture(scope="module")
def pytest_demo(tmp_path_factory: pytest.TempPathFactory) -> PytestDemo:
    return PytestDemo(tmp_path_factory)


def dagster_results(job: dg.JobDefinition, root: Path, run_id: str, events: Sequence[dg.DagsterEvent]) -> Results:
    results = Results(run_outcomes(job, events), run_dir(root, run_id))
    leg_of = {op.name: op.tags[JOB_TAG] for op in job.all_node_defs}
    passed = {leg_of[e.step_key or ""] for e in events if _output(e) == PASSED}
    assert passed == {j for j, o in results.outcomes.items() if o == "passed"}
    return results


def _output(event: dg.DagsterEvent) -> str | None:
    return event.step_output_data.output_name if event.is_successful_output else None


# --- the definitions ----------------------------------------------------------------------


def test_an_op_per_job_leg_wired_by_needs_with_tags() -> None:
    job = job_of(DEMO)
    dag = json.loads((DEMO / "buckaroo-dag.json").read_text())["jobs"]
    ops = {op.tags[JOB_TAG]: op for op in job.all_node_defs}
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", str(DEMO), "--collect-only", "-q", "-p", "no:randomly"],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    legs = {line.split("::", 1)[1] for line in collected.splitlines() if "::" in line}
    assert set(ops) == legs and len(ops) == 16
    name_of = {leg: op.name for leg, op in ops.items()}
    edges = op_edges(job)
    expected = {(name_of[need], name_of[j["name"]]) for j in dag for need in j["needs"]}
    assert edges == expected and edges
    jupyter = ops["playwright-jupyter"]
    assert {MARKER_PREFIX + "playwright", MARKER_PREFIX + "slow"} <= set(jupyter.tags)
    assert jupyter.tags[TIMEOUT_TAG] == "74"
    assert jupyter.tags[FILE_TAG] == "cijobs/playwright-jupyter.sh"
    assert ops["test-python[3.11]"].name == "test_python_3_11"
    assert job.executor_def.name == "multiprocess"


def op_edges(job: dg.JobDefinition) -> set[tuple[str, str]]:
    """(need, dependent) op names of a job's graph."""
    return {
        (dep.node, down.name)
        for down, ins in job.dependencies.items()
        for dep in ins.values()
        if isinstance(dep, dg.DependencyDefinition)
    }


def test_resources_become_tags_with_a_concurrency_limit_of_one(tmp_path: Path) -> None:
    write_jobs(
        tmp_path, {"a": ("", 'resources = ["port:8701", "gpu"]'), "b": ("", 'resources = ["gpu"]'), "c": ("", "")}
    )
    job = job_of(tmp_path)
    ops = {op.tags[JOB_TAG]: op for op in job.all_node_defs}
    assert ops["a"].tags[resource_tag("port:8701")] == "port:8701"
    assert resource_tag("gpu") == "cidag.resource/gpu"
    assert re.fullmatch(r"cidag\.resource/port_8701-[0-9a-f]{8}", resource_tag("port:8701"))
    assert not any(k.startswith("cidag.resource/") for k in ops["c"].tags)
    assert job.run_config is not None
    limits = job.run_config["execution"]["config"]["tag_concurrency_limits"]
    assert sorted(limits, key=str) == sorted(
        [{"key": resource_tag("gpu"), "limit": 1}, {"key": resource_tag("port:8701"), "limit": 1}], key=str
    )


# --- a small project: every kind of ending, and the environment pytest gives ---------------

#: Each job writes the CIDAG_* variables it got (those that do not differ between runs).
DUMP = f"env | grep '^CIDAG_' | grep -v {' '.join('-e ' + v for v in PER_RUN)} | sort > \"env-$CIDAG_JOB.txt\""

MINI = {
    "make": (
        DUMP
        + '\necho "version=1.2" >> "$CIDAG_OUTPUT"'
        + '\nprintf "notes<<EOF\\nline one\\nline two\\nEOF\\n" >> "$CIDAG_OUTPUT"',
        'env = { STAGE = "make" }',
    ),
    "test": (
        DUMP + '\necho "seen=$CIDAG_MATRIX_PY" >> "$CIDAG_OUTPUT"',
        'needs = ["make"]\nmatrix = { py = ["3.11", "3.12"] }',
    ),
    "ship": (DUMP, 'needs = ["test", "make"]\nmarkers = ["slow"]'),
    "gpu": (DUMP + "\necho 'no gpu here'; exit 77", ""),
    "train": (DUMP, 'needs = ["gpu"]'),
    "broken": (DUMP + "\necho 'it broke'; exit 3", ""),
    "after": (DUMP, 'needs = ["broken", "make"]'),
}


def write_jobs(root: Path, jobs: dict[str, tuple[str, str]], directory: str = "cijobs") -> None:
    (root / directory).mkdir(parents=True, exist_ok=True)
    for name, (body, block) in jobs.items():
        lines = ["# /// cidag", *(f"# {line}" for line in block.splitlines()), "# ///"] if block else []
        (root / directory / f"{name}.sh").write_text("\n".join([*lines, body, ""]))


def test_every_ending_and_environment_as_under_pytest(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    for side in ("pytest", "dagster"):
        write_jobs(tmp_path / side, MINI)
    expected = pytest_results(tmp_path / "pytest", clean_environ())
    assert expected.outcomes == {
        "make": "passed",
        "test[3.11]": "passed",
        "test[3.12]": "passed",
        "ship": "passed",
        "gpu": "skipped",
        "train": "blocked",
        "broken": "failed",
        "after": "blocked",
    }

    root = tmp_path / "dagster"
    job = job_of(root)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    events = result.all_events
    got = dagster_results(job, root, result.run_id, events)
    assert got.outcomes == expected.outcomes
    assert got.outputs == expected.outputs and "line two" in got.outputs["make"]
    dumped = sorted(p.name for p in (tmp_path / "pytest").glob("env-*.txt"))
    assert dumped == sorted(p.name for p in root.glob("env-*.txt")) and len(dumped) == 6
    for name in dumped:
        assert (root / name).read_text() == (tmp_path / "pytest" / name).read_text(), name
    assert "CIDAG_NEEDS_MAKE_NOTES=line one" in (root / "env-ship.txt").read_text()
    assert "CIDAG_NEEDS_TEST_3_12_SEEN=3.12" in (root / "env-ship.txt").read_text()

    # What Dagster shows: exit 77 is a success that yields "skipped", never "passed"; what
    # needs it is skipped by Dagster; what needs a failed job never starts.
    by_step: dict[str, list[str]] = {}
    for event in events:
        if event.step_key:
            by_step.setdefault(event.step_key, []).append(_output(event) or event.event_type_value)
    assert "STEP_SUCCESS" in by_step["gpu"] and SKIPPED in by_step["gpu"] and PASSED not in by_step["gpu"]
    assert result.output_for_node("gpu", SKIPPED) == "no gpu here"
    assert by_step["train"] == ["STEP_SKIPPED"]
    assert "STEP_FAILURE" in by_step["broken"]
    assert "after" not in by_step
    failure = result.failure_data_for_node("broken")
    assert failure is not None and failure.user_failure_data is not None
    text = failure.user_failure_data.description or ""
    assert text.startswith("job 'broken' failed: exit code 3\ncommand:  bash cijobs/broken.sh\n")
    assert text.endswith("last line of output:\n  | it broke\n")


def test_a_timeout_kills_the_job_tree(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    body = (
        "setsid sleep 300 & echo $! >> pids\nnohup sleep 300 >/dev/null 2>&1 & echo $! >> pids\n"
        "echo $$ >> pids\necho started\nsleep 300"
    )
    write_jobs(tmp_path, {"hang": (body, "timeout = 1"), "next": ("true", 'needs = ["hang"]')})
    job_def = definitions(tmp_path, kill_grace=0.5).get_job_def("cijobs")
    start = time.monotonic()
    result = job_def.execute_in_process(instance=instance, raise_on_error=False)
    assert time.monotonic() - start < 60
    assert run_outcomes(job_def, result.all_events) == {"hang": "timeout", "next": "blocked"}
    failure = result.failure_data_for_node("hang")
    assert failure is not None and failure.user_failure_data is not None
    assert "job 'hang' failed: Timeout (>1s): the job's process tree was killed" in (
        failure.user_failure_data.description or ""
    )
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3
    assert not [pid for pid in pids if alive(pid)]
    log = (run_dir(tmp_path, result.run_id) / "hang.log").read_text()
    assert log.endswith("[cidag] job killed: timeout after 1s\n")


# --- the demo, in process and with the multiprocess executor -------------------------------


@pytest.mark.parametrize("fail", ["", "build-wheel"], ids=["green", "DEMO_FAIL=build-wheel"])
def test_demo_in_process_as_under_pytest(
    fail: str,
    tmp_path: Path,
    instance: dg.DagsterInstance,
    pytest_demo: PytestDemo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CIDAG_DEMO_SCALE", SCALE)
    monkeypatch.setenv("DEMO_FAIL", fail)
    root = copy_demo(tmp_path / "demo")
    job = job_of(root)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    got = dagster_results(job, root, result.run_id, result.all_events)
    assert_same(got, pytest_demo[fail], fail)


def assert_same(got: Results, expected: Results, fail: str) -> None:
    assert got.outcomes == expected.outcomes
    assert got.outputs == expected.outputs
    assert got.using == expected.using
    if fail:
        assert got.outcomes[fail] == "failed" and list(got.outcomes.values()).count("blocked") == 7
    else:
        assert set(got.outcomes.values()) == {"passed"}
        assert got.using["playwright-marimo"] == ["using dist/buckaroo-0.12.12-py3-none-any.whl"]


@pytest.mark.parametrize("fail", ["", "build-wheel"], ids=["green", "DEMO_FAIL=build-wheel"])
def test_demo_with_dagster_job_execute_as_under_pytest(
    fail: str,
    tmp_path: Path,
    dagster_home: Path,
    instance: dg.DagsterInstance,
    pytest_demo: PytestDemo,
) -> None:
    root = copy_demo(tmp_path / "demo")
    run_id = dagster_execute(root / "definitions.py", dagster_home, CIDAG_DEMO_SCALE=SCALE, DEMO_FAIL=fail)
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == (dg.DagsterRunStatus.FAILURE if fail else dg.DagsterRunStatus.SUCCESS)
    events = run_events(instance, run_id)
    assert any(e.event_type_value == "STEP_WORKER_STARTED" for e in events)  # an op per process
    got = dagster_results(job_of(root), root, run_id, events)
    assert_same(got, pytest_demo[fail], fail)


def test_ctrl_c_on_dagster_job_execute_kills_the_running_jobs_trees(
    tmp_path: Path, dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    body = "setsid sleep 300 & echo $! >> pids\necho $$ >> pids\ntouch started\nsleep 300"
    write_jobs(tmp_path, {"serve": (body, ""), "after": ("true", 'needs = ["serve"]')})
    (tmp_path / "definitions.py").write_text(
        "from pathlib import Path\nfrom pytest_cidag.dagster import definitions\n"
        "defs = definitions(Path(__file__).parent)\n"
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f", "definitions.py"],
        cwd=tmp_path,
        env=clean_environ(DAGSTER_HOME=str(dagster_home)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the job did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 2
    assert not [pid for pid in pids if alive(pid)]
    [run_id] = re.findall(r" - ([0-9a-f-]{36}) - \d+ - RUN_START - ", err)
    log = (run_dir(tmp_path, run_id) / "serve.log").read_text()
    assert re.search(r"\[cidag\] job killed: \w+", log), log
    outcomes = run_outcomes(job_of(tmp_path), run_events(instance, run_id))
    assert outcomes == {"serve": "failed", "after": "blocked"}


def dagster_execute(definitions_py: Path, home: Path, **env: str) -> str:
    """``dagster job execute -f FILE`` (the multiprocess executor); the new run's id."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f", str(definitions_py)],
        cwd=definitions_py.parent,
        env=clean_environ(DAGSTER_HOME=str(home), **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    found: list[str] = re.findall(r" - ([0-9a-f-]{36}) - \d+ - RUN_START - ", proc.stderr + proc.stdout)
    assert found, proc.stderr[-3000:]
    return found[-1]


def run_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    return [r.dagster_event for r in instance.all_logs(run_id) if r.dagster_event is not None]


def test_ops_sharing_a_resource_never_overlap(tmp_path: Path, dagster_home: Path, instance: dg.DagsterInstance) -> None:
    # r1..r3 hold one resource; f1 and f2 hold none and wait for each other, which they can
    # only do if the executor runs two ops at once: the limit is what keeps r1..r3 apart.
    log = 'echo "$CIDAG_JOB $1 $(date +%s.%N)" >> times.log'
    held = f"{log.replace('$1', 'start')}\nsleep 2\n{log.replace('$1', 'end')}"
    meet = 'touch "here-$CIDAG_JOB"\nfor i in $(seq 300); do [ -e "here-$OTHER" ] && exit 0; sleep 0.1; done\nexit 1'
    jobs = {f"r{i}": (held, 'resources = ["port:8701"]') for i in (1, 2, 3)}
    jobs |= {"f1": (meet, 'env = { OTHER = "f2" }'), "f2": (meet, 'env = { OTHER = "f1" }')}
    write_jobs(tmp_path, jobs)
    (tmp_path / "definitions.py").write_text(
        "from pathlib import Path\nfrom pytest_cidag.dagster import definitions\n"
        "defs = definitions(Path(__file__).parent, max_concurrent=5)\n"
    )
    run_id = dagster_execute(tmp_path / "definitions.py", dagster_home)
    assert run_outcomes(job_of(tmp_path), run_events(instance, run_id)) == dict.fromkeys(jobs, "passed")
    spans: dict[str, list[float]] = {}
    for line in (tmp_path / "times.log").read_text().splitlines():
        job, _, when = line.split()
        spans.setdefault(job, []).append(float(when))
    assert sorted(spans) == ["r1", "r2", "r3"]
    ordered = sorted(spans.values())
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered)), spans


def test_op_names_are_what_dagster_takes_and_unique() -> None:
    names = op_names(["test-python[3.11]", "a-b", "a.b", "a_b", "-"])
    assert names == {"test-python[3.11]": "test_python_3_11", "a-b": "a_b", "a.b": "a_b_2", "a_b": "a_b_3", "-": "job"}


# --- errors ---------------------------------------------------------------------------------


def test_a_bad_job_file_is_pytest_s_message(tmp_path: Path) -> None:
    write_jobs(tmp_path, {"build": ("true", "neds = []")})
    with pytest.raises(DefinitionsError) as info:
        definitions(tmp_path)
    assert str(info.value).startswith("cijobs/build.sh:2: unknown key 'neds' (did you mean 'needs'?)")


def test_a_need_on_a_python_test(tmp_path: Path) -> None:
    expected = entry("A job that needs a Python test, on Dagster")
    for path, body in expected.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    with pytest.raises(DefinitionsError) as info:
        definitions(tmp_path)
    assert f"pytest_cidag.dagster.DefinitionsError: {info.value}" in expected.expected


def test_no_jobs(tmp_path: Path) -> None:
    with pytest.raises(DefinitionsError, match=r"^no job files in ci/jobs under .*: nothing for Dagster to run$"):
        definitions(tmp_path, ["ci/jobs"])


def test_the_job_directories_come_from_the_rootdir_s_pytest_configuration(tmp_path: Path) -> None:
    write_jobs(tmp_path, {"a": ("true", "")}, directory="ci/jobs")
    write_jobs(tmp_path, {"b": ("true", "")})
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ncidag_paths = ["ci/jobs"]\n')
    assert [op.tags[JOB_TAG] for op in job_of(tmp_path).all_node_defs] == ["a"]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # pytest.ini comes first: the default
    assert [op.tags[JOB_TAG] for op in job_of(tmp_path).all_node_defs] == ["b"]


def test_without_dagster_the_message_names_the_extra() -> None:
    expected = entry("Dagster is not installed")
    # the import system refuses a module whose sys.modules entry is None: Dagster "absent"
    code = "import sys; sys.modules['dagster'] = None; import pytest_cidag.dagster"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == expected.expected[0] == f"ImportError: {MISSING}"


# --- the UI: the webserver's GraphQL and a screenshot ----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory, dagster_home: Path) -> Iterator[str]:
    """``dagster-webserver`` on 127.0.0.1 for the demo; its URL once the demo's code is loaded."""
    root = copy_demo(tmp_path_factory.mktemp("ui") / "demo")
    port = free_port()
    target = ("-f", str(root / "definitions.py"))
    out = (root.parent / "webserver.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *target],
        cwd=root,
        env=clean_environ(DAGSTER_HOME=str(dagster_home)),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its code server is its child: both end with its group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (root.parent / "webserver.log").read_text()[-3000:]
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"][0]["loadStatus"] == "LOADED":
                    break
            assert time.monotonic() < deadline, "the webserver did not load the demo in 180 s"
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
JOB_GRAPH = """
query($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { solids { name inputs { definition { name } dependsOn { solid { name } } } } }
  }
}"""


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.load(response)["data"]
        return data


def test_the_webserver_shows_every_edge(webserver: str) -> None:
    location = graphql(webserver, LOCATIONS)["workspaceOrError"]["locationEntries"][0]["name"]
    selector = {"pipelineName": "cijobs", "repositoryName": "__repository__", "repositoryLocationName": location}
    found = graphql(webserver, JOB_GRAPH, selector=selector)["pipelineOrError"]
    assert found["__typename"] == "Pipeline", found
    edges = {(up["solid"]["name"], op["name"]) for op in found["solids"] for i in op["inputs"] for up in i["dependsOn"]}
    job = job_of(DEMO)
    assert edges == op_edges(job) and len(edges) == 10  # buckaroo-dag.json's needs
    assert {op["name"] for op in found["solids"]} == {op.name for op in job.all_node_defs}


def test_a_screenshot_of_the_demo_dag(webserver: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="no playwright: pip install -e '.[dev]'")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium to take the screenshot with (Debian: apt-get install chromium)")
    location = graphql(webserver, LOCATIONS)["workspaceOrError"]["locationEntries"][0]["name"]
    shot = tmp_path / "dagster-demo.png"
    names = [op.name for op in job_of(DEMO).all_node_defs]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 700}, device_scale_factor=2)
            page.goto(f"{webserver}/locations/{location}/jobs/cijobs", timeout=120_000)
            page.get_by_text("playwright_wasm_marimo").first.wait_for(timeout=120_000)
            page.get_by_text("Hide navigation").click()
            page.wait_for_timeout(1500)  # the graph's layout settles
            text = page.content()
            boxes = [page.get_by_text(name, exact=True).first.bounding_box() for name in names]
            found = [box for box in boxes if box is not None]
            assert len(found) == len(names)  # every op is drawn
            left, top = min(b["x"] for b in found) - 40, min(b["y"] for b in found) - 40
            right = max(b["x"] + b["width"] for b in found) + 40
            bottom = max(b["y"] + b["height"] for b in found) + 40
            page.screenshot(path=str(shot), clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
        finally:
            browser.close()
    assert all(name in text for name in names)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_DOCS"):  # UPDATE_DOCS=1 pytest tests/test_dagster.py -k screenshot
        shutil.copyfile(shot, ROOT / "docs" / "dagster-demo.png")
