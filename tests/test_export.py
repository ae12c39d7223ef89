"""``--cidag-export=github-actions``: the workflow is valid (actionlint), deterministic, checked
by ``--cidag-export-check``, and, run job by job here the way GitHub would run it (a fresh
checkout per job, ``needs:`` order, ``if:``, ``$GITHUB_OUTPUT`` and the ``needs`` context),
gives the outcomes and ``CIDAG_NEEDS_*`` of ``pytest cijobs``."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from pytest_cidag.core.ghexport import ExportJob, ExportSettings, export, github_id
from tests.conftest import JobWriter, Linter

EXPORT = ("--cidag-export=github-actions", "--cidag-export-file=cidag.yml", "-p", "no:randomly")


@pytest.fixture
def project(pytester: pytest.Pytester, job: JobWriter) -> pytest.Pytester:
    pytester.makeini("[pytest]\ncidag_paths = cijobs\ncidag_export_install =\n    python -c pass\n")
    show = 'env | grep "^CIDAG_NEEDS_" | sort | sed "s/^/seen /"'
    job("build", f'{show}\necho "wheel=dist/app-1.0.whl" >> "$CIDAG_OUTPUT"', timeout="90")
    job("docs", f'{show}\necho "site=build/html" >> "$CIDAG_OUTPUT"', markers='["lint"]')
    job("test", f"{show}", needs='["build"]', matrix='{ python = ["3.11", "3.12"] }')
    job("package", f'{show}\necho "tarball=$CIDAG_NEEDS_BUILD_WHEEL.tgz" >> "$CIDAG_OUTPUT"', needs='["build", "docs"]')
    job("publish", show, needs='["package"]', resources='["pypi"]')
    job("optional", 'echo "no browser here"; exit 77')
    job("after-optional", show, needs='["optional"]')
    job("broken", "exit 3")
    job("after-broken", show, needs='["broken"]')
    return pytester


def local_run(project: pytest.Pytester) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each leg's outcome in run.json, and the CIDAG_NEEDS_* lines its log shows."""
    project.runpytest_subprocess("-p", "no:randomly", "--cidag-run-dir=local-run")
    record = json.loads((project.path / "local-run" / "run.json").read_text())
    outcomes = {job["id"]: job["outcome"] for job in record["jobs"]}
    seen = {label: _seen(project.path / "local-run" / f"{label}.log") for label in outcomes}
    return outcomes, seen


def _seen(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith("seen ")]


def _expand(text: str, contexts: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression == "toJSON(needs)":
            return json.dumps(contexts["needs"])
        found: Any = contexts
        for part in expression.split("."):
            found = found.get(part, "") if isinstance(found, dict) else ""
        return str(found)

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _condition(expression: str, needs: dict[str, Any]) -> bool:
    """The exporter's ``if:``: ``needs.<id>.outputs.passed == 'true'`` joined by ``&&``, after
    GitHub's implicit ``success()`` (every need succeeded)."""
    if any(need["result"] != "success" for need in needs.values()):
        return False
    inner = expression.strip().removeprefix("${{").removesuffix("}}")
    for term in inner.split("&&"):
        found = re.fullmatch(r"\s*needs\.([A-Za-z0-9_-]+)\.outputs\.passed == 'true'\s*", term)
        assert found, f"unexpected condition term: {term!r}"
        if needs[found.group(1)]["outputs"].get("passed") != "true":
            return False
    return True


def _legs(definition: dict[str, Any]) -> list[dict[str, str]]:
    matrix = definition.get("strategy", {}).get("matrix")
    if not matrix:
        return [{}]
    if "include" in matrix:
        return [dict(entry) for entry in matrix["include"]]
    keys = list(matrix)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(matrix[k] for k in keys))]


def github_run(
    project: pytest.Pytester, workflow: dict[str, Any], work: Path
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Run the workflow's jobs here as GitHub would: results per GitHub job and each leg's log."""
    jobs = workflow["jobs"]
    order = TopologicalSorter({name: set(d.get("needs", [])) for name, d in jobs.items()}).static_order()
    results: dict[str, dict[str, Any]] = {}
    logs: dict[str, list[str]] = {}
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    for name in order:
        definition = jobs[name]
        needs = {need: results[need] for need in definition.get("needs", [])}
        if "if" in definition and not _condition(definition["if"], needs):
            results[name] = {"result": "skipped", "outputs": {}}
            continue
        if not definition.get("if") and any(need["result"] != "success" for need in needs.values()):
            results[name] = {"result": "skipped", "outputs": {}}
            continue
        result, outputs = "success", {}
        for n, matrix in enumerate(_legs(definition)):
            checkout = work / f"{name}-{n}"  # a fresh checkout for every job
            shutil.copytree(project.path, checkout, ignore=shutil.ignore_patterns(".cidag", "local-run", "*.yml"))
            github_output = checkout.parent / f"{name}-{n}.output"
            github_output.write_text("")
            contexts = {"needs": needs, "matrix": matrix}
            for step in definition["steps"]:
                if "run" not in step:
                    continue  # actions/checkout and setup-python: done above, and by this Python
                env = {**os.environ, "PATH": path, "GITHUB_OUTPUT": str(github_output)}
                env.update({k: _expand(str(v), contexts) for k, v in step.get("env", {}).items()})
                done = subprocess.run(
                    ["bash", "-e", "-c", _expand(step["run"], contexts)],
                    cwd=checkout,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    result = "failure"
                    break
            for log in (checkout / ".cidag" / "github-run").glob("*.log"):
                logs[log.stem] = _seen(log)
            step_outputs = dict(line.split("=", 1) for line in github_output.read_text().splitlines() if "=" in line)
            outputs = {k: _expand(v, {"steps": {"job": {"outputs": step_outputs}}}) for k, v in
                       definition.get("outputs", {}).items()}  # fmt: skip
        results[name] = {"result": result, "outputs": outputs}
    return {name: r["result"] for name, r in results.items()}, logs


def test_exported_workflow_runs_like_pytest(project: pytest.Pytester, actionlint: Linter, tmp_path: Path) -> None:
    result = project.runpytest_subprocess(*EXPORT)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["cidag: wrote cidag.yml (10 jobs)"])
    workflow_file = project.path / "cidag.yml"
    assert actionlint([workflow_file]) == []
    workflow = yaml.safe_load(workflow_file.read_text())
    jobs = workflow["jobs"]

    # the shape: a needed job per leg; the unneeded matrix job as strategy.matrix
    assert jobs["test"]["strategy"]["matrix"] == {"python": ["3.11", "3.12"]}
    assert jobs["package"]["needs"] == ["build", "docs"]
    assert jobs["docs"]["name"] == "docs (lint)"
    assert jobs["build"]["steps"][-1]["timeout-minutes"] == 3  # 90 s, rounded up, plus a minute
    assert jobs["publish"]["concurrency"]["group"] == "cidag-${{ github.run_id }}-pypi"
    assert "--cidag-no-deps" in jobs["package"]["steps"][-1]["run"]

    outcomes, seen_locally = local_run(project)
    results, seen_on_github = github_run(project, workflow, tmp_path)
    expected_result = {"passed": "success", "skipped": "success", "failed": "failure", "blocked": "skipped"}
    by_leg = {label: results[github_id(label, set())] for label in outcomes if not label.startswith("test[")}
    by_leg.update({label: results["test"] for label in outcomes if label.startswith("test[")})
    assert by_leg == {label: expected_result[outcome] for label, outcome in outcomes.items()}
    assert outcomes["after-optional"] == "blocked"  # and skipped on GitHub: an exit-77 need does not release it
    for label, outcome in outcomes.items():
        if outcome == "passed":
            assert seen_on_github[label] == seen_locally[label], label
    assert seen_locally["package"] == [
        "seen CIDAG_NEEDS_BUILD_WHEEL=dist/app-1.0.whl",
        "seen CIDAG_NEEDS_DOCS_SITE=build/html",
    ]
    assert seen_locally["publish"] == ["seen CIDAG_NEEDS_PACKAGE_TARBALL=dist/app-1.0.whl.tgz"]


def test_export_is_deterministic_and_checked(project: pytest.Pytester) -> None:
    assert project.runpytest_subprocess(*EXPORT).ret == 0
    assert not (project.path / ".cidag" / "runs").exists()  # an export runs nothing, records nothing
    first = (project.path / "cidag.yml").read_bytes()
    assert project.runpytest_subprocess(*EXPORT).ret == 0
    assert (project.path / "cidag.yml").read_bytes() == first

    result = project.runpytest_subprocess(*EXPORT, "--cidag-export-check")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["cidag: cidag.yml is up to date"])

    (project.path / "cijobs" / "docs.sh").write_text(
        '# /// cidag\n# timeout = 600\n# ///\necho "site=x" >> "$CIDAG_OUTPUT"\n'
    )
    result = project.runpytest_subprocess(*EXPORT, "--cidag-export-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "cidag: cidag.yml is out of date: run `pytest *--cidag-export=github-actions*` to write it again",
            "+*timeout-minutes: 11",
        ]
    )
    assert (project.path / "cidag.yml").read_bytes() == first  # a check writes nothing

    (project.path / "cidag.yml").unlink()
    result = project.runpytest_subprocess(*EXPORT, "--cidag-export-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["cidag: cidag.yml does not exist: run *"])


def test_selection_exports_only_what_it_selects(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-q", "-k", "package", "--cidag-export=github-actions", "--cidag-export-file=-"
    )
    assert result.ret == 0
    workflow = yaml.safe_load(result.stdout.str())
    assert set(workflow["jobs"]) == {"build", "docs", "package"}  # upstream jobs pulled in, as in a run


def test_export_needing_a_python_test_is_refused(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makepyfile(test_unit="import pytest\n@pytest.mark.dependency()\ndef test_unit():\n    pass\n")
    job("after-unit", "true", needs='["test_unit.py::test_unit"]')
    result = pytester.runpytest_subprocess("--cidag-export=github-actions", "--cidag-export-file=-")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*job 'after-unit' needs 'test_unit.py::test_unit', which is not a job of the export*"]
    )


def test_resource_warnings() -> None:
    jobs = [ExportJob(key=f"j.sh::{n}", label=n, job=n, path="j.sh", resources=("db",)) for n in "abc"]
    jobs.append(ExportJob(key="k.sh::k", label="k", job="k", path="k.sh", resources=("db", "port")))
    _, warnings = export(jobs, ExportSettings())
    assert any("resource 'db' is held by 4 jobs" in w for w in warnings)
    assert any("job 'k' holds 2 resources (db, port)" in w for w in warnings)


def test_github_ids() -> None:
    taken: set[str] = set()
    assert github_id("test[3.12]", taken) == "test-3-12"
    assert github_id("3d", taken) == "job-3d"
    assert github_id("Test[3.12]", taken) == "Test-3-12-2"  # GitHub compares ids ignoring case


def test_the_demo_workflow_is_up_to_date() -> None:
    """examples/github/buckaroo.yml is the demo's export: `--cidag-export-check` keeps it so."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "buckaroo"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--cidag-export=github-actions",
         "--cidag-export-file=../github/buckaroo.yml", "--cidag-export-check"],
        cwd=demo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cidag: ../github/buckaroo.yml is up to date" in done.stdout


def test_the_readme_shows_the_demo_export_as_it_is() -> None:
    root = Path(__file__).resolve().parent.parent
    workflow = (root / "examples" / "github" / "buckaroo.yml").read_text()
    shown = re.search(r"(?ms)^  build-wheel:\n.*?(?=^  [a-z-]+:$)", workflow)
    assert shown is not None
    assert f"```yaml\n{shown.group(0).rstrip()}\n```" in (root / "README.md").read_text()
