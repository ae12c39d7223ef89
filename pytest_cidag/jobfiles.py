"""Which files are jobs, the job directories' index, and paths as a user sees them."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pytest_cidag.core.jobspec import JobSpecError, parse_file
from pytest_cidag.plugin import executable_script


def is_job_file(path: Path, config: pytest.Config) -> bool:
    """A ``*.sh`` file, or an executable file with a shebang; not hidden, ``_``-prefixed or a test module."""
    name = path.name
    if name.startswith((".", "_")) or name == "conftest.py":
        return False
    if name.endswith(".py") and any(fnmatch.fnmatch(name, pat) for pat in config.getini("python_files")):
        return False
    return name.endswith(".sh") or executable_script(path)


def register_markers(config: pytest.Config, names: Iterable[str]) -> None:
    """Declared by a job, so known: ``--strict-markers`` accepts them and ``--markers`` lists them."""
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name in names:
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: declared by a cidag job")
            registered.add(name)


def in_helper_dir(path: Path, job_dir: Path) -> bool:
    """True for files under a ``_`` or ``.`` directory of a job directory: helpers, not jobs."""
    return any(part.startswith(("_", ".")) for part in path.relative_to(job_dir).parts[:-1])


def iter_job_files(config: pytest.Config, directory: Path) -> Iterator[Path]:
    """Job files below ``directory`` (hidden and ``_`` directories skipped)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        if not in_helper_dir(path, directory) and path.is_file() and is_job_file(path, config):
            yield path


def scan_job_dirs(config: pytest.Config, directories: Iterable[Path], *, register: bool) -> dict[str, Path]:
    """Parse every job file once: map job names to files, and with ``register`` register
    their markers.

    Registering at configure time makes ``pytest --markers`` list them, and a Python test
    collected before the jobs may use them under ``--strict-markers``. A run that does not
    reach the job directories leaves them unregistered, as without the plugin (a job pulled
    in later registers its own at collection). A file that does not parse is left out here;
    collection reports it with its line.
    """
    index: dict[str, Path] = {}
    for directory in directories:
        for path in iter_job_files(config, directory):
            try:
                spec = parse_file(path)
            except (JobSpecError, OSError):
                continue
            if register:
                register_markers(config, spec.markers)
            index.setdefault(spec.name, path)
    return index


def shown_path(path: Path, config: pytest.Config) -> str:
    """``path`` relative to where pytest was started when it is below it, else absolute."""
    try:
        rel = os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
