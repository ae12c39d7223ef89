from __future__ import annotations

import os
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import _hypothesis_pytestplugin  # type: ignore[import-untyped]  # noqa: F401
import hypothesis  # noqa: F401
import pytest

# Imported here so that in-process pytester runs find them in sys.modules: pytester restores
# sys.modules after each run, and re-importing (and assertion-rewriting) hypothesis, which
# its plugin does at the end of every run, costs about a second per run.

DATA = Path(__file__).parent / "data"


JobWriter = Callable[..., Path]


@pytest.fixture
def job(pytester: pytest.Pytester) -> JobWriter:
    """Write a job script into the pytester project: ``job("build", "echo hi", needs='["a"]')``.

    Keyword arguments become TOML lines of the metadata block (values written as given,
    so pass TOML text: ``timeout="5"``, ``markers='["slow"]'``).
    """

    def write(
        stem: str,
        body: str = "",
        *,
        directory: str = "cijobs",
        filename: str | None = None,
        shebang: str | None = None,
        executable: bool = False,
        **block: str,
    ) -> Path:
        path = pytester.path / directory / (filename or f"{stem}.sh")
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        if shebang:
            lines.append(f"#!{shebang}")
        if block:
            lines.append("# /// cidag")
            lines.extend(f"# {key} = {value}" for key, value in block.items())
            lines.append("# ///")
        lines.append(textwrap.dedent(body).strip("\n"))
        path.write_text("\n".join(lines) + "\n")
        if executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    return write


@pytest.fixture(autouse=True)
def _isolated_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the suite itself runs as a cidag job, the outer job's variables must not leak in.

    pytest-randomly (a dev dependency) is off in the inner runs unless a test turns it on,
    so that tests asserting terminal order see declaration order.
    """
    for key in list(os.environ):
        if key.startswith("CIDAG_") and not key.startswith("CIDAG_TAG_"):
            monkeypatch.delenv(key)
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")


def order_log(pytester: pytest.Pytester) -> list[str]:
    """The job ids in the order the jobs ran (each appends to order.log via LOG)."""
    path = pytester.path / "order.log"
    return path.read_text().split() if path.exists() else []


#: A job body that records the job in order.log (jobs run in the rootdir).
LOG = 'echo "$CIDAG_JOB" >> order.log'
