"""Which files under the job directories are jobs. Pure: no pytest import.

pytest's collection (:mod:`pytest_cidag.jobfiles`) and the Dagster definitions
(:mod:`pytest_cidag.dagster`) find the same job files with these rules.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

#: pytest's default ``python_files``: such files are test modules, not jobs.
DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")


def executable_script(path: Path) -> bool:
    """An executable file whose first bytes are ``#!``."""
    if not os.access(path, os.X_OK):
        return False
    try:
        with path.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def is_job_file(path: Path, python_files: Sequence[str] = DEFAULT_PYTHON_FILES) -> bool:
    """A ``*.sh`` file, or an executable file with a shebang; not hidden, ``_``-prefixed,
    a conftest or a test module (a ``.py`` file matching ``python_files``)."""
    name = path.name
    if name.startswith((".", "_")) or name == "conftest.py":
        return False
    if name.endswith(".py") and any(fnmatch.fnmatch(name, pat) for pat in python_files):
        return False
    return name.endswith(".sh") or executable_script(path)


def is_loop(directory: Path) -> bool:
    """A directory that is (through a symlink) itself or one of its own ancestors: following
    it would walk the same files again, deeper each time."""
    real = os.path.realpath(directory)
    above = os.path.realpath(directory.parent)
    return above == real or above.startswith(real.rstrip(os.sep) + os.sep)


def iter_job_files(directory: Path, python_files: Sequence[str] = DEFAULT_PYTHON_FILES) -> Iterator[Path]:
    """Job files below ``directory``, sorted, by the paths pytest reaches them by: symlinked
    directories followed (loops not), hidden and ``_`` directories skipped."""
    if not directory.is_dir():
        return
    found: list[Path] = []
    for top, dirs, files in os.walk(directory, followlinks=True):
        here = Path(top)
        dirs[:] = [d for d in dirs if not d.startswith(("_", ".")) and not is_loop(here / d)]
        found.extend(p for p in (here / f for f in files) if p.is_file() and is_job_file(p, python_files))
    yield from sorted(found)
