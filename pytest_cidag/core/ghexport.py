"""``--cidag-export=github-actions``: the job graph as a GitHub Actions workflow. Pure: no pytest.

One GitHub job per cidag job leg, ``needs:`` from the graph, each running exactly its leg
with ``pytest <node id> --cidag-no-deps``. A matrix job none of the exported jobs needs
becomes one GitHub job with ``strategy.matrix`` (GitHub keeps only one leg's job outputs,
so a needed matrix job is one GitHub job per leg).

Outputs cross from job to job through GitHub's job outputs: after its leg, a job publishes
``passed`` (``"true"`` when it passed or was a cache hit) and ``cidag`` (its outputs file,
as JSON), with :func:`publish`; a dependent writes its needs' outputs files with
:func:`needs_in` and reads them with ``--cidag-needs-dir``, so ``CIDAG_NEEDS_*`` are what a
local run gives. A dependent runs only when every need published ``passed``: a need that
skipped (exit 77) or failed leaves its dependents skipped, as locally.

The text is deterministic: same jobs and settings, same bytes (``--cidag-export-check``).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: what the steps use; bumped together, by hand, after checking the actions' release notes
CHECKOUT = "actions/checkout@v4"
SETUP_PYTHON = "actions/setup-python@v5"
NEEDS_DIR = ".cidag/github-needs"
RUN_DIR = ".cidag/github-run"


@dataclass(frozen=True)
class ExportJob:
    """One job leg, as the exporter needs it."""

    key: str  # pytest node id
    label: str  # leg id: test[3.12]
    job: str  # the job's name: test
    path: str  # its file, relative to the rootdir, with forward slashes
    matrix: Mapping[str, str] = field(default_factory=dict)  # this leg's values, in the block's key order
    needs: tuple[str, ...] = ()  # node ids
    timeout: float | None = None
    retries: int = 0  # the block's: each attempt may take the whole timeout
    retry_delay: float = 0.0
    markers: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportSettings:
    python: str = "3.12"
    install: tuple[str, ...] = ("python -m pip install pytest-cidag",)
    runs_on: str = "ubuntu-latest"
    #: the rootdir relative to the repository's top, when they differ (runs happen there)
    working_directory: str = ""


@dataclass
class _Group:
    """A GitHub job: one leg, or every leg of a matrix job (``strategy.matrix``)."""

    id: str
    legs: list[ExportJob]

    @property
    def matrix(self) -> bool:
        return len(self.legs) > 1


def github_id(text: str, taken: set[str]) -> str:
    """A GitHub job id (letters, digits, ``-``, ``_``; a letter or ``_`` first), unique in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "job"
    if not (base[0].isalpha() or base[0] == "_"):
        base = f"job-{base}"
    name, n = base, 1
    while name.lower() in taken:  # GitHub compares job ids case-insensitively
        n += 1
        name = f"{base}-{n}"
    taken.add(name.lower())
    return name


def _groups(jobs: Sequence[ExportJob]) -> tuple[list[_Group], dict[str, _Group]]:
    needed = {need for job in jobs for need in job.needs}
    by_job: dict[tuple[str, str], list[ExportJob]] = {}
    for job in jobs:
        by_job.setdefault((job.path, job.job), []).append(job)
    taken: set[str] = set()
    groups: list[_Group] = []
    of: dict[str, _Group] = {}
    for legs in by_job.values():
        same_keys = len({tuple(leg.matrix) for leg in legs}) == 1
        shared = {(leg.timeout, leg.markers, leg.resources) for leg in legs}
        if len(legs) > 1 and same_keys and len(shared) == 1 and not any(leg.key in needed for leg in legs):
            parts = [_Group(github_id(legs[0].job, taken), legs)]
        else:
            parts = [_Group(github_id(leg.label, taken), [leg]) for leg in legs]
        for group in parts:
            groups.append(group)
            for leg in group.legs:
                of[leg.key] = group
    return groups, of


def _q(text: str) -> str:
    """A YAML scalar: plain when that is unambiguous, else double-quoted (JSON is YAML)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./@-]*", text) and text.lower() not in (
        "true", "false", "yes", "no", "on", "off", "null", "y", "n",
    ):  # fmt: skip
        return text
    return json.dumps(text, ensure_ascii=False)


def _shell(text: str) -> str:
    """A single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _matrix_block(legs: Sequence[ExportJob]) -> list[str]:
    keys = list(legs[0].matrix)
    values = {k: list(dict.fromkeys(leg.matrix[k] for leg in legs)) for k in keys}
    full = math.prod(len(v) for v in values.values()) == len(legs)
    lines = ["    strategy:", "      fail-fast: false", "      matrix:"]
    if full:
        lines.extend(f"        {_q(k)}: [{', '.join(json.dumps(v) for v in values[k])}]" for k in keys)
    else:  # a selection took some legs only: list them
        lines.append("        include:")
        for leg in legs:
            pairs = ", ".join(f"{_q(k)}: {json.dumps(v)}" for k, v in leg.matrix.items())
            lines.append(f"          - {{{pairs}}}")
    return lines


def export(jobs: Sequence[ExportJob], settings: ExportSettings) -> tuple[str, list[str]]:
    """The workflow's text, and warnings about what GitHub cannot express exactly."""
    groups, of = _groups(jobs)
    warnings: list[str] = []
    holders: dict[str, list[str]] = {}
    for job in jobs:
        for resource in job.resources:
            holders.setdefault(resource, []).append(job.label)
    lines = [
        "# Generated by pytest-cidag (pytest --cidag-export=github-actions) from the jobs it selected.",
        "# Do not edit: export again; `--cidag-export-check` fails while this file is out of date.",
        "name: cidag",
        "on:",
        "  push:",
        "  pull_request:",
        "  workflow_dispatch:",
        "permissions:",
        "  contents: read",
    ]
    if settings.working_directory:
        lines.extend(["defaults:", "  run:", f"    working-directory: {_q(settings.working_directory)}"])
    lines.append("jobs:")
    for group in groups:
        first = group.legs[0]
        needs = list(dict.fromkeys(of[need].id for leg in group.legs for need in leg.needs if need in of))
        lines.append(f"  {group.id}:")
        name = first.job if group.matrix else first.label
        if first.markers:
            name += f" ({', '.join(first.markers)})"
        lines.append(f"    name: {_q(name)}")
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
            condition = " && ".join(f"needs.{n}.outputs.passed == 'true'" for n in needs)
            lines.append(f"    if: ${{{{ {condition} }}}}")
        lines.append(f"    runs-on: {_q(settings.runs_on)}")
        if group.matrix:
            lines.extend(_matrix_block(group.legs))
        resources = first.resources
        if len(resources) == 1:
            lines.extend(
                [
                    "    concurrency:",
                    f"      group: {_q('cidag-${{ github.run_id }}-' + resources[0])}",
                    "      cancel-in-progress: false",
                ]
            )
            if len(holders[resources[0]]) > 2:
                warnings.append(
                    f"resource '{resources[0]}' is held by {len(holders[resources[0]])} jobs: a GitHub concurrency "
                    "group keeps one job waiting and cancels an earlier waiting one"
                )
        elif len(resources) > 1:
            warnings.append(
                f"job '{first.label}' holds {len(resources)} resources ({', '.join(resources)}): a GitHub job has one "
                "concurrency group, so none is set for it"
            )
        if not group.matrix:
            lines.extend(
                [
                    "    outputs:",
                    "      passed: ${{ steps.job.outputs.passed }}",
                    "      cidag: ${{ steps.job.outputs.cidag }}",
                ]
            )
        if group.matrix:
            suffix = "-".join(f"${{{{ matrix.{k} }}}}" for k in first.matrix)
            nodeid = first.key[: first.key.rindex("[")] + f"[{suffix}]"
            label = f"{first.job}[{suffix}]"
        else:
            nodeid, label = first.key, first.label
        lines.extend(
            [
                "    steps:",
                f"      - uses: {CHECKOUT}",
                f"      - uses: {SETUP_PYTHON}",
                "        with:",
                f"          python-version: {json.dumps(settings.python)}",
                "      - name: Install",
                "        run: |",
                *(f"          {line}" for line in settings.install),
            ]
        )
        if needs:
            lines.extend(
                [
                    "      - name: Outputs of its needs",
                    "        env:",
                    "          CIDAG_GITHUB_NEEDS: ${{ toJSON(needs) }}",
                    f"        run: python -m pytest_cidag.core.ghexport needs-in {NEEDS_DIR}",
                ]
            )
        lines.extend([f"      - name: {_q(label)}", "        id: job"])
        if first.timeout:  # a backstop: the job's own timeout kills its tree first and keeps the log
            longest = first.timeout * (first.retries + 1) + first.retry_delay * first.retries  # every attempt
            lines.append(f"        timeout-minutes: {math.ceil(longest / 60) + 1}")
        command = f"python -m pytest {_shell(nodeid)} --cidag-no-deps --cidag-run-dir={RUN_DIR}"
        if needs:
            command += f" --cidag-needs-dir={NEEDS_DIR}"
        lines.extend(
            [
                "        run: |",
                f"          {command}",
                f"          python -m pytest_cidag.core.ghexport publish {RUN_DIR} {_shell(label)}",
            ]
        )
    return "\n".join(lines) + "\n", warnings


# --- the steps' side: python -m pytest_cidag.core.ghexport needs-in|publish ----------------


def needs_in(directory: Path, needs_json: str) -> list[str]:
    """Write each need's outputs file (``<leg>.outputs``) from GitHub's ``needs`` context."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for need in json.loads(needs_json or "{}").values():
        published = (need.get("outputs") or {}).get("cidag") or "{}"
        for label, text in json.loads(published).items():
            (directory / f"{label}.outputs").write_text(text)
            written.append(label)
    return written


def publish(run_dir: Path, label: str) -> dict[str, str]:
    """``passed`` and ``cidag`` (the leg's outputs file as JSON) for ``$GITHUB_OUTPUT``."""
    record = json.loads((run_dir / "run.json").read_text())
    outcome = next((job["outcome"] for job in record["jobs"] if job["id"] == label), None)
    outputs = run_dir / f"{label}.outputs"
    published = {label: outputs.read_text()} if outputs.exists() else {}
    return {
        "passed": "true" if outcome in ("passed", "cached") else "false",
        "cidag": json.dumps(published, sort_keys=True),
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "needs-in":
        needs_in(Path(argv[1]), os.environ.get("CIDAG_GITHUB_NEEDS", "{}"))
        return 0
    if len(argv) == 3 and argv[0] == "publish":
        values = publish(Path(argv[1]), argv[2])
        target = os.environ.get("GITHUB_OUTPUT")
        text = "".join(f"{key}={value}\n" for key, value in values.items())  # JSON: one line
        if target:
            with open(target, "a", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    sys.stderr.write("usage: python -m pytest_cidag.core.ghexport needs-in DIR | publish RUN_DIR LEG\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
