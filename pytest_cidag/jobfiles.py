"""Which files are jobs, the job directories' index, and paths as a user sees them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pytest_cidag.core import discovery
from pytest_cidag.core.discovery import is_loop
from pytest_cidag.core.jobspec import JobSpecError, parse_file

__all__ = ["is_loop"]  # re-exported: session.py takes the collection's helpers from here


def is_job_file(path: Path, config: pytest.Config) -> bool:
    """A job file by :func:`pytest_cidag.core.discovery.is_job_file`, with the run's ``python_files``."""
    return discovery.is_job_file(path, config.getini("python_files"))


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
    """Job files below ``directory`` (:func:`pytest_cidag.core.discovery.iter_job_files`)."""
    return discovery.iter_job_files(directory, config.getini("python_files"))


def by_real_path(config: pytest.Config, directories: Iterable[Path]) -> dict[str, Path]:
    """Each job file's real path (symlinks resolved) -> the first path under a job
    directory that reaches it."""
    index: dict[str, Path] = {}
    for directory in directories:
        for path in iter_job_files(config, directory):
            index.setdefault(os.path.realpath(path), path)
    return index


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
