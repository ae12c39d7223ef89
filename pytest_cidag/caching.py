"""Content-hash caching of jobs: the glue between a :class:`JobItem` and the pure cores.

:mod:`pytest_cidag.core.cachekey` computes a job's key (its script, block, matrix leg,
declared environment, input files, and the keys and outputs of what it needs);
:mod:`pytest_cidag.core.cachestore` keeps passing results under it. This module decides,
for one job in one process: is it cacheable, is it a hit (then restore its files, outputs
and log instead of running it), and after a pass, may it be stored (only if no input changed
while it ran). Every job whose key was computed leaves ``<job>.key`` in the run directory,
so a dependent's key, computed in whichever process runs it, includes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cidag.core import cachekey
from pytest_cidag.core.cachestore import CacheError, CacheStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from collections.abc import Set as AbstractSet

    from pytest_cidag.core.graph import JobGraph
    from pytest_cidag.core.jobspec import JobLeg
    from pytest_cidag.core.settings import Settings

MODES = ("rw", "r", "w", "off")
KEY_SUFFIX = ".key"
#: Where the stat cache of input files lives (one per checkout: it is not shared).
STAT_CACHE = Path(".cidag") / "stat-cache.json"
SIGNATURE_VARIABLE = "CIDAG_CACHE_SIGNATURE_KEY"


@dataclass
class Verdict:
    """What the cache said about one job, for ``--cidag-why`` (JSON-able)."""

    job: str
    state: str  # "hit", "miss", "not cacheable", "off"
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = f"{self.job}: {self.state}"
        return text + (": " + "; ".join(self.reasons) if self.reasons else "")


class JobCache:
    """The cache as one process sees it: created lazily, at the first cacheable job."""

    def __init__(self, settings: Settings, rootdir: Path) -> None:
        self.settings = settings
        self.rootdir = rootdir
        self.mode = settings.cache_mode
        self._store: CacheStore | None = None
        self._hasher: cachekey.FileHasher | None = None
        #: Said once per process: the signature variable is set but empty.
        self.unsigned_warned = False

    @property
    def signature_problem(self) -> str | None:
        """Why entries are not signed although the signature variable is set (an empty
        value, as a CI system gives a secret a pull request from a fork may not read)."""
        if os.environ.get(SIGNATURE_VARIABLE) == "":
            return (
                f"{SIGNATURE_VARIABLE} is set but empty: cache entries are neither signed nor checked "
                "(unset it, or give it the key)"
            )
        return None

    @property
    def reads(self) -> bool:
        return self.mode in ("rw", "r")

    @property
    def writes(self) -> bool:
        return self.mode in ("rw", "w")

    @property
    def store(self) -> CacheStore:
        if self._store is None:
            key = os.environ.get(SIGNATURE_VARIABLE)
            self._store = CacheStore(
                self.settings.cache_dir,
                max_size=self.settings.cache_max_size,
                signing_key=key.encode() if key else None,
            )
        return self._store

    def hasher(self, fresh: bool = False) -> cachekey.FileHasher:
        if self._hasher is None or fresh:
            if self._hasher is not None:
                with contextlib.suppress(OSError):
                    self._hasher.save()
            self._hasher = cachekey.FileHasher(self.rootdir, self.rootdir / STAT_CACHE)
        return self._hasher

    def parts(
        self,
        leg: JobLeg,
        script: bytes,
        *,
        graph: JobGraph | None,
        nodeid: str,
        in_run: AbstractSet[str],
        hasher: cachekey.FileHasher | None = None,
        testcases: str | None = None,
    ) -> cachekey.KeyParts:
        """The key's make-up for ``leg`` run with CIDAG_TESTCASES ``testcases`` (None: unset)
        now: its needs' keys and outputs read from the run directory (or the previous run's,
        for a need outside this run)."""
        spec = leg.spec
        needs: dict[str, str | None] = {}
        needs_outputs: dict[str, bytes] = {}
        if graph is not None and nodeid in graph.nodes:
            for need in graph.needs[nodeid]:
                node = graph.nodes[need]
                if not node.is_job:
                    needs[node.label] = None
                    needs_outputs[node.label] = b""
                    continue
                directory = self.settings.run_dir if need in in_run or not in_run else self.settings.previous_run_dir
                needs[node.label] = _read(directory, node.label + KEY_SUFFIX).decode() or None
                needs_outputs[node.label] = _read(directory, node.label + ".outputs")
        env = {name: os.environ.get(name) for name in spec.env_inputs}
        # What the plugin itself hands every job and that changes what it does: the Python
        # it runs tests with, and its CIDAG_TESTCASES (a narrowed pass is not a full one).
        env["CIDAG_PYTHON"] = sys.executable
        env["CIDAG_TESTCASES"] = testcases
        return cachekey.key_parts(
            job=leg.id,
            script=script,
            block=spec.block_data(),
            leg=dict(leg.matrix_values),
            env=env,
            rootdir=self.rootdir,
            inputs=spec.inputs or (),
            hasher=hasher or self.hasher(),
            needs=needs,
            needs_outputs=needs_outputs,
        )

    def explain_miss(self, parts: cachekey.KeyParts) -> list[str]:
        stored = []
        for data in self.store.entries_for(parts.job):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                stored.append(cachekey.KeyParts.from_json(dict(data)))
        nearest = cachekey.nearest(parts, stored)
        if nearest is None:
            return ["never stored"]
        return cachekey.explain(parts, nearest) or ["stored entry unusable"]

    def close(self) -> None:
        if self._hasher is not None:
            with contextlib.suppress(OSError):
                self._hasher.save()


#: Stands for the rootdir in stored CIDAG_OUTPUT values (a NUL no output value can hold), so
#: a checkout at another path sharing the cache gets its own paths back.
ROOTDIR_MARK = b"\0cidag-rootdir\0"


def relocatable(outputs: bytes, rootdir: Path) -> bytes:
    """``outputs`` with the rootdir's path, where a value names a path under it, as a mark."""
    root = re.escape(os.fsencode(str(rootdir)))
    return re.sub(root + rb"(?=/|\n|$)", lambda _: ROOTDIR_MARK, outputs, flags=re.MULTILINE)


def relocated(outputs: bytes, rootdir: Path) -> bytes:
    return outputs.replace(ROOTDIR_MARK, os.fsencode(str(rootdir)))


def file_states(rootdir: Path, relpaths: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """What tells whether a file was written since: (mtime, ctime, size, inode) of each."""
    states: dict[str, tuple[int, ...]] = {}
    for rel in relpaths:
        with contextlib.suppress(OSError):
            st = os.lstat(rootdir / rel)
            states[rel] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return states


def write_key(run_dir: Path, job: str, key: str) -> None:
    path = run_dir / (job + KEY_SUFFIX)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(key)
    tmp.replace(path)


def _read(directory: Path | None, name: str) -> bytes:
    if directory is None:
        return b""
    try:
        return (directory / name).read_bytes()
    except OSError:
        return b""


__all__ = ["MODES", "CacheError", "JobCache", "Verdict", "write_key"]
