"""What a job leaves in the run directory for its dependents, carried to workers on other hosts.

A dependent reads, from the run directory, what each job it needs left there: its outputs
(the dependent's ``CIDAG_NEEDS_*``) and its cache key (part of the dependent's own key).
Workers on the controller's host share the controller's run directory. A worker on another
host (``--tx socket=...``, ``ssh=...``) has one of its own, in its own checkout: when one of
its jobs passes, it sends these files to the controller with the "passed" message, and the
controller sends a job's needs' files to such a worker before the job. The controller's run
directory is the hub: it holds every job's files, whichever host ran it.

Paths under a checkout travel with the checkout's path as a mark (as in the job cache), so
an output naming a file under the rootdir names it under the receiver's rootdir.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_cidag.caching import KEY_SUFFIX, relocatable, relocated
from pytest_cidag.core.jobspec import OUTPUTS_SUFFIX

#: The files a job leaves for its dependents, after its label.
SUFFIXES = (OUTPUTS_SUFFIX, KEY_SUFFIX)


def is_remote(node: Any) -> bool:
    """Whether xdist's worker ``node`` runs on another host than the controller: every
    gateway but ``popen``, and a ``popen`` one started through a proxy (``via=``)."""
    spec = getattr(getattr(node, "gateway", None), "spec", None)
    return spec is not None and (not spec.popen or bool(spec.via))


def collect(run_dir: Path, labels: Iterable[str], rootdir: Path) -> dict[str, bytes]:
    """The files the jobs ``labels`` left in ``run_dir``, by name (the missing ones left out)."""
    files = {}
    for label in labels:
        for suffix in SUFFIXES:
            with contextlib.suppress(OSError):
                files[label + suffix] = relocatable((run_dir / (label + suffix)).read_bytes(), rootdir)
    return files


def place(run_dir: Path, files: dict[str, bytes], rootdir: Path) -> None:
    """Write ``files`` (from :func:`collect` on another host) into ``run_dir``.

    A file that already holds the same bytes is left alone: on a run directory the sender
    shares (the same disk), nothing is written. Each is replaced in one rename, so a reader
    never sees half of it. Never raises (it runs in execnet's receiver thread, where an
    exception would close the channel): a file that cannot be written is missing, as if
    its job had left none.
    """
    for name, sent in files.items():
        if Path(name).name != name or not name.endswith(SUFFIXES):
            continue  # only a job's own files, never a path elsewhere
        data = relocated(sent, rootdir)
        path = run_dir / name
        with contextlib.suppress(OSError):
            if path.read_bytes() == data:
                continue
        tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
