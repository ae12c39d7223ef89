"""What crosses between hosts for xdist's remote workers (``xdist/handoff.py``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import execnet
import pytest

from pytest_cidag.xdist import handoff

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
