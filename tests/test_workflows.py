"""The example workflows in examples/github/ are valid GitHub Actions workflows (actionlint,
the ``actionlint`` fixture in conftest.py), and every pytest-cidag option they use exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Linter

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "examples" / "github").glob("*.yml"))


def test_there_are_examples() -> None:
    assert {path.name for path in WORKFLOWS} >= {"hosted.yml", "self-hosted.yml"}


def test_actionlint_finds_errors(actionlint: Linter, tmp_path: Path) -> None:
    """The linter is alive: a broken workflow gets findings (so a clean result means something)."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.shaa }}\n"
    )
    assert any("shaa" in str(finding["message"]) for finding in actionlint([broken]))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_example_workflow_is_valid(actionlint: Linter, workflow: Path) -> None:
    assert actionlint([workflow]) == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_example_workflow_options_exist(workflow: Path) -> None:
    """Every --cidag-* option a workflow passes is one pytest-cidag defines."""
    helptext = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    defined = set(re.findall(r"--cidag-[a-z-]+", helptext))
    code = "\n".join(line for line in workflow.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"--cidag-[a-z-]+", code))
    assert used, "the example runs pytest-cidag with no options of its own?"
    assert used <= defined, f"unknown options: {sorted(used - defined)}"
