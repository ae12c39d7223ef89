"""``--cidag-export=github-actions``: collect, select, write the workflow (or check it), run nothing."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import pytest

from pytest_cidag.core.ghexport import ExportJob, ExportSettings, export
from pytest_cidag.items import JobItem
from pytest_cidag.keys import RUN_KEY

DEFAULT_FILE = Path(".github") / "workflows" / "cidag.yml"
NOT_PASSED_ON = {"--cidag-export-check", "--cidag-export-file"}


def repository_top(path: Path) -> Path | None:
    for parent in (path, *path.parents):
        if (parent / ".git").exists():
            return parent
    return None


def _regenerate(config: pytest.Config) -> str:
    args, skip = [], False
    for arg in config.invocation_params.args:
        if skip:
            skip = False
            continue
        if arg in NOT_PASSED_ON:
            skip = arg == "--cidag-export-file"
            continue
        if arg.split("=", 1)[0] in NOT_PASSED_ON:
            continue
        args.append(arg)
    return " ".join(["pytest", *args])


def export_main(config: pytest.Config, session: pytest.Session) -> int:
    if config.getoption("cidag_first_testcases") is not None:
        raise pytest.UsageError("--cidag-export: a workflow has no first pass: leave out --cidag-first-testcases")
    session.perform_collect()
    if session.testsfailed:
        return pytest.ExitCode.INTERRUPTED  # collection errors: the summary shows them
    tr = config.pluginmanager.get_plugin("terminalreporter")
    run = config.stash[RUN_KEY]
    items = {item.nodeid: item for item in session.items if isinstance(item, JobItem)}
    keys = [key for key in run.graph.order(run.declared) if key in items] if run.graph is not None else []
    rootpath = config.rootpath
    jobs = []
    for key in keys:
        item = items[key]
        needs = run.graph.needs.get(key, ()) if run.graph is not None else ()
        for need in needs:
            if need not in items:
                raise pytest.UsageError(
                    f"--cidag-export: job '{item.job_id}' needs '{need}', which is not a job of the export "
                    "(a Python test, or outside the selection): the workflow runs jobs only"
                )
        jobs.append(
            ExportJob(
                key=key,
                label=item.job_id,
                job=item.spec.name,
                path=item.spec.path.relative_to(rootpath).as_posix(),
                matrix=dict(item.leg.matrix_values),
                needs=tuple(needs),
                timeout=item.declared_timeout(),
                retries=item.spec.retries or 0,
                retry_delay=item.spec.retry_delay or 0.0,
                markers=item.spec.markers,
                resources=item.spec.resources,
            )
        )
    top = repository_top(rootpath) or rootpath
    install = tuple(config.getini("cidag_export_install")) or ExportSettings.install
    settings = ExportSettings(
        python=config.getini("cidag_export_python"),
        install=install,
        runs_on=config.getini("cidag_export_runs_on"),
        working_directory="" if top == rootpath else rootpath.relative_to(top).as_posix(),
    )
    regenerate = _regenerate(config)
    text, warnings = export(jobs, settings)
    where = config.getoption("cidag_export_file")
    if tr is not None:
        tr.ensure_newline()
    write = tr.write_line if tr is not None else print
    for warning in warnings:
        write(f"cidag: warning: {warning}")
    if where == "-":
        if tr is not None:
            config.pluginmanager.unregister(tr)  # nothing after the workflow: `> file` works
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    target = (config.invocation_params.dir / where) if where else top / DEFAULT_FILE
    shown = _shown(target, config.invocation_params.dir)
    if config.getoption("cidag_export_check"):
        current = target.read_text() if target.is_file() else None
        if current == text:
            write(f"cidag: {shown} is up to date")
            return 0
        if current is None:
            write(f"cidag: {shown} does not exist: run `{regenerate}` to write it")
            return 1
        diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), "committed", "exported", lineterm=""))
        write(f"cidag: {shown} is out of date: run `{regenerate}` to write it again")
        for line in diff[:40]:
            write(line)
        if len(diff) > 40:
            write(f"... {len(diff) - 40} more lines of difference")
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    write(f"cidag: wrote {shown} ({len(jobs)} jobs)")
    return 0


def _shown(path: Path, here: Path) -> str:
    return os.path.relpath(path.resolve(), here.resolve())
