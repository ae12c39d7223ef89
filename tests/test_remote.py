"""xdist's own remote workers (``--tx socket=HOST:PORT``) run jobs: README "Remote xdist workers".

The remote workers are execnet's own socket server (``execnet/script/socketserver.py``), the
same program a user starts on another host. "Another host" here is a network namespace with
a veth pair (addresses of our choosing), and a mount and PID namespace in which the
controller's checkout is hidden under an empty tmpfs: the worker cannot read or write the
controller's disk at the controller's paths, and it runs in a copy of the checkout at
another path, as on a machine of its own. Everything the tests create is named ``cidagt-*``
and removed by the fixtures. Marked ``remote`` (each run copies pytest to its workers:
seconds); ``cijobs/remote-workers.sh`` runs them. The network-namespace tests need root
and iproute2, and skip saying so elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import execnet
import pytest

from pytest_cidag.xdist import handoff
from pytest_cidag.xdist.worker import CONTROLLER_GONE
from tests.conftest import JobWriter

SOCKETSERVER = Path(execnet.__file__).parent / "script" / "socketserver.py"
#: What the socket server prints once it listens: its address.
LISTENING = re.compile(r"Entering Accept loop \('([\d.]+)', (\d+)\)")


# --- the handoff between hosts, without a network ---------------------------------------------


def test_what_a_job_leaves_travels_with_paths_under_the_receivers_checkout(tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "elsewhere" / "checkout"
    (here / "runs").mkdir(parents=True)
    (here / "runs" / "build.outputs").write_bytes(f"wheel={here}/dist/x.whl\nname=x\n".encode())
    (here / "runs" / "build.key").write_bytes(b"abc123")
    files = handoff.collect(here / "runs", ["build", "missing"], here)
    assert sorted(files) == ["build.key", "build.outputs"]
    handoff.place(there / "runs", files, there)
    assert (there / "runs" / "build.outputs").read_text() == f"wheel={there}/dist/x.whl\nname=x\n"
    assert (there / "runs" / "build.key").read_bytes() == b"abc123"


def test_a_file_that_is_already_there_is_not_written_again(tmp_path: Path) -> None:
    # A worker whose run directory is the controller's (the same disk) writes nothing.
    (tmp_path / "a.outputs").write_bytes(b"x=1\n")
    before = (tmp_path / "a.outputs").stat().st_ino
    handoff.place(tmp_path, handoff.collect(tmp_path, ["a"], tmp_path), tmp_path)
    assert (tmp_path / "a.outputs").stat().st_ino == before
    handoff.place(tmp_path, {"a.outputs": b"x=2\n"}, tmp_path)  # a stale one is replaced
    assert (tmp_path / "a.outputs").read_bytes() == b"x=2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.outputs"]  # no temporary left


def test_only_a_jobs_own_files_are_written(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    handoff.place(tmp_path / "runs", {"../evil.outputs": b"x", "a.log": b"x", "sub/a.key": b"x"}, tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []
    assert not (tmp_path / "evil.outputs").exists()


def test_a_file_that_cannot_be_written_is_left_out_without_an_error(tmp_path: Path) -> None:
    # (It is written in execnet's receiver thread, where an exception would close the channel.)
    (tmp_path / "file").write_text("")
    handoff.place(tmp_path / "file" / "runs", {"a.outputs": b"x=1\n"}, tmp_path)


@pytest.mark.parametrize(
    ("spec", "remote"),
    [
        ("popen", False),
        ("popen//python=python3.12", False),
        ("popen//chdir=/elsewhere", False),
        ("socket=10.0.0.2:8888", True),
        ("ssh=build-box", True),
        ("popen//via=proxy", True),  # a popen worker started by a gateway on another host
    ],
)
def test_which_workers_are_on_another_host(spec: str, remote: bool) -> None:
    node = SimpleNamespace(gateway=SimpleNamespace(spec=execnet.XSpec(spec)))  # as xdist's WorkerController
    assert handoff.is_remote(node) is remote


# --- socket servers -----------------------------------------------------------------------------


@dataclass
class Server:
    """A running execnet socket server: ``--tx socket=<address>``."""

    address: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(command: list[str], host: str, log: Path) -> Server:
    """Start execnet's socket server (after ``command``, e.g. a namespace's entry) on ``host``."""
    out = log.open("wb")  # a file, not a pipe: the worker's own terminal output goes there too
    process = subprocess.Popen([*command, sys.executable, "-u", str(SOCKETSERVER), f"{host}:0"], stdout=out, stderr=out)
    out.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return Server(f"{found[1]}:{found[2]}", process, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(f"the socket server did not start: {log.read_text(errors='replace')}")


def stop_server(server: Server) -> None:
    server.process.kill()  # in a namespace: unshare, whose child (PID 1 there) dies with it
    server.process.wait()


@pytest.fixture
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A socket server in this network namespace, on 127.0.0.1 (the simplest remote worker)."""
    server = start_server([], "127.0.0.1", tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield server
    finally:
        stop_server(server)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@dataclass
class Netns:
    """A network namespace joined to this one by a veth pair: ``host`` is its address."""

    name: str
    host: str

    def entry(self, hidden: Path) -> list[str]:
        """The command prefix that runs a program "on the other host": in the namespace, in
        a mount and PID namespace of its own where ``hidden`` is an empty tmpfs."""
        mount = f'mount -t tmpfs cidagt-hidden "{hidden}" && exec "$0" "$@"'
        return [
            *("ip", "netns", "exec", self.name),
            *("unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"),
            *("sh", "-c", mount),
        ]


@pytest.fixture
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("needs root, iproute2's ip and util-linux's unshare (network namespaces)")
    token = secrets.token_hex(3)
    name, outer, inner = f"cidagt-{token}", f"cidagt-h{token}", f"cidagt-n{token}"
    n = int(token, 16) % (256 * 64)  # a /30 of 10.213.0.0/16 of our own
    net, base = f"10.213.{n // 64}", (n % 64) * 4
    here, there = f"{net}.{base + 1}", f"{net}.{base + 2}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        steps = [
            ("link", "add", outer, "type", "veth", "peer", "name", inner),
            ("link", "set", inner, "netns", name),
            ("addr", "add", f"{here}/30", "dev", outer),
            ("link", "set", outer, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"{there}/30", "dev", inner),
            ("netns", "exec", name, "ip", "link", "set", inner, "up"),
            ("netns", "exec", name, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield Netns(name, there)
    finally:
        _ip("link", "del", outer)  # (its peer goes with it, or with the namespace)
        _ip("netns", "del", name)


@pytest.fixture
def remote_servers(
    netns: Netns, pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hosts]:
    """``start(n)``: n socket servers on the other host, each with a copy of the pytester
    project (made now: write the jobs first) at a path of its own."""
    servers: list[Server] = []

    def start(count: int) -> list[tuple[Server, Path]]:
        started = []
        for i in range(count):
            place = tmp_path_factory.mktemp(f"host{i}")
            copy = place / "checkout"
            shutil.copytree(pytester.path, copy, symlinks=True)
            server = start_server(netns.entry(pytester.path), netns.host, place / "server.log")
            servers.append(server)
            started.append((server, copy))
        return started

    try:
        yield start
    finally:
        for server in servers:
            stop_server(server)


Hosts = Callable[[int], list[tuple[Server, Path]]]


def tx(server: Server, checkout: Path, name: str) -> list[str]:
    return ["--tx", f"socket={server.address}//chdir={checkout}//id={name}"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # No path arguments: xdist gives remote workers only paths under an --rsyncdir.
    return pytester.runpytest_subprocess(
        "--dist", "load", "-p", "no:randomly", "--cidag-kill-grace", "0.3", "-rA", *args, timeout=180
    )


def workers(pytester: pytest.Pytester) -> dict[str, str]:
    """Job id -> the worker that ran it, from the controller's run record (run.json)."""
    record = json.loads((run_dir_of(pytester.path) / "run.json").read_text())
    return {str(job["id"]): str(job["worker"]) for job in record["jobs"]}


def run_dir_of(checkout: Path) -> Path:
    [run_dir] = [p for p in (checkout / ".cidag" / "runs").iterdir() if p.name != "latest"]
    return run_dir


def run_on_two_hosts(project: pytest.Pytester, hosts: Hosts, *args: str) -> tuple[pytest.RunResult, dict[str, Path]]:
    """Run on two workers, far1 and far2, each on the other host; returns their checkouts."""
    (one, checkout1), (two, checkout2) = hosts(2)
    result = run(project, *args, *tx(one, checkout1, "far1"), *tx(two, checkout2, "far2"))
    return result, {"far1": checkout1, "far2": checkout2}


@pytest.fixture
def meet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where jobs on different hosts leave marks for each other (not hidden on either)."""
    return tmp_path_factory.mktemp("meet")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # the jobs are named by ini, not by path arguments
    pytester.makeini("[pytest]\ntestpaths = cijobs\n")
    return pytester


def barrier(directory: Path, me: str, other: str) -> str:
    """A job body that waits until ``other`` has started too (so the two run at once, on
    two workers)."""
    return (
        f'touch "{directory}/{me}"\n'
        f'for i in $(seq 300); do [ -e "{directory}/{other}" ] && break; sleep 0.1; done\n'
        f'[ -e "{directory}/{other}" ] || {{ echo "{other} never started"; exit 1; }}\n'
    )


# --- a worker in this network namespace, in the controller's own checkout ----------------------


@pytest.mark.remote
def test_a_socket_worker_in_the_same_checkout_runs_the_graph(
    project: pytest.Pytester, job: JobWriter, local_server: Server
) -> None:
    job("a", 'echo "greeting=hello" >> "$CIDAG_OUTPUT"; echo "a ran in $PWD"')
    job("b", 'test "$CIDAG_NEEDS_A_GREETING" = hello', needs='["a"]')
    job("c", "exit 77", needs='["a"]')
    result = run(project, *tx(local_server, project.path, "far"))
    result.assert_outcomes(passed=2, skipped=1)
    assert workers(project) == {"a": "far", "b": "far", "c": "far"}
    # the same checkout, the same disk: the worker's logs are in the controller's run directory
    assert f"a ran in {project.path}" in (run_dir_of(project.path) / "a.log").read_text()


# --- workers on "another host": a network namespace, a checkout at another path ----------------


@pytest.mark.remote
def test_remote_workers_run_the_graph_and_outputs_cross_hosts(
    project: pytest.Pytester, job: JobWriter, remote_servers: Hosts, meet: Path
) -> None:
    # p1 and p2 run at once, so on two hosts; c needs both: one of them ran elsewhere
    job("p1", barrier(meet, "p1", "p2") + 'echo "where=$PWD/p1" >> "$CIDAG_OUTPUT"')
    job("p2", barrier(meet, "p2", "p1") + 'echo "where=$PWD/p2" >> "$CIDAG_OUTPUT"')
    job("c", 'echo "c: $CIDAG_NEEDS_P1_WHERE $CIDAG_NEEDS_P2_WHERE"', needs='["p1", "p2"]')
    result, checkouts = run_on_two_hosts(project, remote_servers)
    result.assert_outcomes(passed=3)
    ran_on = workers(project)
    assert {ran_on["p1"], ran_on["p2"]} == {"far1", "far2"}
    # Each job's log is on the disk of the host that ran it, in its checkout's run directory;
    # the controller's run directory holds the record and every job's outputs (the hub).
    for label, worker in ran_on.items():
        assert (run_dir_of(checkouts[worker]) / f"{label}.log").exists()
    controller_run = run_dir_of(project.path)
    assert not list(controller_run.glob("*.log"))
    assert "cidag: job logs in" not in result.stdout.str()
    # Outputs name paths under the checkout of the host that reads them
    here = checkouts[ran_on["c"]]
    assert f"c: {here}/p1 {here}/p2" in (run_dir_of(here) / "c.log").read_text()
    assert (controller_run / "p1.outputs").read_text() == f"where={project.path}/p1\n"


@pytest.mark.remote
def test_x_kills_a_job_on_a_remote_worker(
    project: pytest.Pytester, job: JobWriter, remote_servers: Hosts, meet: Path
) -> None:
    job("broken", barrier(meet, "broken", "long") + "exit 1")
    job("long", barrier(meet, "long", "broken") + "sleep 120; echo finished")
    result, checkouts = run_on_two_hosts(project, remote_servers, "-x")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * cancelled: stopping after 1 failure ('broken' failed)"])
    log = (run_dir_of(checkouts[workers(project)["long"]]) / "long.log").read_text()
    assert "finished" not in log
    assert log.rstrip().endswith("[cidag] job killed: stopping after 1 failure ('broken' failed)")


@pytest.mark.remote
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_remote_workers_job_dies_with_the_controller(
    project: pytest.Pytester, job: JobWriter, remote_servers: Hosts, meet: Path, signum: signal.Signals
) -> None:
    # Ctrl-C: the controller has the job killed over the side channel, then ends. Killed, it
    # cannot; the worker process (the socket server) outlives it, and so would its reaper:
    # the worker kills its jobs itself when the controller's connection ends.
    reason = "interrupted" if signum == signal.SIGINT else CONTROLLER_GONE
    job("long", f'touch "{meet}/started"; sleep 120; echo finished')
    [(server, checkout)] = remote_servers(1)
    argv = [sys.executable, "-m", "pytest", "--dist", "load", "-p", "no:randomly", *tx(server, checkout, "far")]
    controller = subprocess.Popen(argv, cwd=project.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (meet / "started").exists() and time.monotonic() < deadline and controller.poll() is None:
            time.sleep(0.05)
        assert (meet / "started").exists(), "the job never started"
        controller.send_signal(signum)
        assert controller.wait(timeout=60) == (pytest.ExitCode.INTERRUPTED if signum == signal.SIGINT else -signum)
    finally:
        controller.kill()
        controller.wait()
    log = run_dir_of(checkout) / "long.log"
    deadline = time.monotonic() + 60
    while "[cidag]" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().rstrip().endswith(f"[cidag] job killed: {reason}")
