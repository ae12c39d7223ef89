"""The content-hash cache's entries on disk: store, self-checking lookup, restore, LRU eviction.
Pure: no pytest import. The key itself is computed elsewhere; here it is only a name.

The cache directory may be shared by several checkouts, machines (a mounted volume) and
concurrent runs. Its layout::

    entries/<sha256(job)[:16]>/<key>/  one entry, published whole by one rename
        manifest.json                  what the entry holds (below); never changed once published
        manifest.sig                   HMAC-SHA256 of manifest.json's bytes, hex (only when signing)
        log                            the job's log
        outputs                        its CIDAG_OUTPUT bytes
        files/<n>                      the bytes of the manifest's n-th file (symlinks live in the
                                       manifest only)
        used                           holds the entry's size in bytes; its mtime is the entry's
                                       last use (store or hit), for LRU eviction
    tmp/build-<random>/                an entry being built, locked by its builder through
    tmp/build-<random>.lock            the sibling lock file (taken before the directory exists);
                                       once no process holds that lock (its builder died), the
                                       next store removes both
    tmp/discarded-<random>/            an evicted or bad entry, renamed here (so that it vanishes
                                       whole) to be deleted

``manifest.json``: ``format`` (:data:`FORMAT`), ``job``, ``key``, ``parts`` (the key's make-up,
for explanations), ``created`` (ns since the epoch), ``size`` (bytes of log, outputs and files),
``log`` and ``outputs`` (``{"sha256", "size"}``), and ``files``: ``{"path", "mode", "blob",
"sha256", "size"}`` for a file, ``{"path", "target"}`` for a symlink; paths are POSIX, relative
to the rootdir (a non-UTF-8 name is kept as Python's surrogate escapes). A signature over the
manifest's bytes therefore covers every stored byte.

A stored entry that fails a check is a miss with a one-line problem, never an exception; a
restore re-checks every byte and path as it copies, so an entry changed or evicted after its
lookup is refused before anything under the rootdir is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

_T = TypeVar("_T")

#: The manifest's format; a manifest of another format is a miss.
FORMAT = 1
#: Bytes copied (and hashed) at a time.
CHUNK = 1024 * 1024
KEY_RE = re.compile(r"[0-9a-f]{64}")
_BLOB_RE = re.compile(r"[0-9]{1,9}")
_LOCK = ".lock"
_DISCARDED = "discarded-"
#: Publishing attempts when another process keeps replacing a bad entry at the same place.
_PUBLISH_ATTEMPTS = 10


class CacheError(Exception):
    """A store or restore that could not be done; the message says why, in one line."""


class CacheRefused(CacheError):
    """A path that would be read or written outside the rootdir."""


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredFile:
    """One stored file: a regular file (``blob`` names its bytes under ``files/``) or, when
    ``target`` is set, a symlink with that target (relative, inside the rootdir)."""

    path: str
    mode: int = 0
    blob: str = ""
    digest: Digest = Digest("", 0)
    target: str | None = None
    #: matched by the job's outputs but not written by its run (another job's file, or one an
    #: incremental tool left as it was): restored only where no file is, never over one
    if_absent: bool = False

    @property
    def size(self) -> int:
        return self.digest.size


@dataclass(frozen=True)
class Entry:
    """A stored entry that passed its checks (from :meth:`CacheStore.lookup`)."""

    job: str
    key: str
    parts: Mapping[str, Any]
    created: int  # ns since the epoch
    size: int  # bytes of log, outputs and files
    log: Digest
    outputs: Digest
    files: tuple[StoredFile, ...]
    directory: Path

    @property
    def label(self) -> str:
        return entry_label(self.job, self.key)


@dataclass(frozen=True)
class Lookup:
    """A hit (``entry``), a miss, or a miss because the stored entry failed a check (``problem``)."""

    entry: Entry | None
    problem: str | None = None


def entry_label(job: str, key: str) -> str:
    return f"cache entry {job}@{key[:12]}"


class _Bad(Exception):
    """A stored entry failed a check; the message continues ``cache entry JOB@KEY``."""


class CacheStore:
    """Entries of passing jobs, by (job, key), under ``directory`` (layout: the module's docstring).

    ``max_size``: bytes; after each store, least-recently-used entries are evicted while the
    total is larger (never the entry just stored). ``signing_key``: when set, entries are
    signed on store and an entry without a valid signature is a miss; it is kept in memory only.
    """

    def __init__(self, directory: Path, *, max_size: int, signing_key: bytes | None) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must be 0 or more, not {max_size}")
        self.directory = Path(directory)
        self.max_size = max_size
        self._signing_key = signing_key
        self._entries = self.directory / "entries"
        self._tmp = self.directory / "tmp"

    def __repr__(self) -> str:
        signed = self._signing_key is not None
        return f"CacheStore({str(self.directory)!r}, max_size={self.max_size}, signed={signed})"

    def entry_dir(self, job: str, key: str) -> Path:
        _check_key(key)
        return self._entries / _job_dir(job) / key

    # --- store ------------------------------------------------------------------------------

    def store(
        self,
        *,
        job: str,
        key: str,
        parts: Mapping[str, Any],
        log: Path,
        outputs: bytes,
        rootdir: Path,
        files: Sequence[str],
        if_absent: Collection[str] = (),
    ) -> None:
        """Store a passing job's result under (job, key), atomically, then evict; ``CacheRefused``
        for a path outside the rootdir, ``CacheError`` when it cannot be stored (nothing is then
        visible). A concurrent store of the same entry wins or loses whole. The files named in
        ``if_absent`` (among ``files``) are restored only where no file is."""
        final = self.entry_dir(job, key)
        label = entry_label(job, key)
        parts_json = json.loads(json.dumps(parts, allow_nan=False))  # JSON-able, or TypeError now
        root_real = rootdir.resolve()
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            sources = [_source(root_real, name, job) for name in dict.fromkeys(files)]
            with self._building() as build:
                self._build(
                    build,
                    job=job,
                    key=key,
                    parts=parts_json,
                    log=log,
                    outputs=outputs,
                    sources=sources,
                    if_absent=set(if_absent),
                )
                self._publish(build, final, job, key)
            self._sweep_tmp()
            self._evict(keep=final)
        except OSError as error:
            raise CacheError(f"cannot store {label}: {error}") from error

    def _build(
        self,
        build: Path,
        *,
        job: str,
        key: str,
        parts: Any,
        log: Path,
        outputs: bytes,
        sources: list[_Source],
        if_absent: Collection[str],
    ) -> None:
        (build / "files").mkdir()
        records: list[dict[str, Any]] = []
        for number, source in enumerate(sources):
            flag = {"if_absent": True} if source.path in if_absent else {}
            if source.target is not None:
                records.append({"path": source.path, "target": source.target, **flag})
                continue
            with source.open() as (reader, mode):
                digest = _copy(reader, build / "files" / str(number))
            records.append({"path": source.path, "mode": mode, "blob": str(number), **_digest_json(digest), **flag})
        with open(log, "rb") as reader:
            log_digest = _copy(reader, build / "log")
        (build / "outputs").write_bytes(outputs)
        outputs_digest = Digest(hashlib.sha256(outputs).hexdigest(), len(outputs))
        size = log_digest.size + outputs_digest.size + sum(r.get("size", 0) for r in records)
        manifest = {
            "format": FORMAT,
            "job": job,
            "key": key,
            "created": time.time_ns(),
            "size": size,
            "parts": parts,
            "log": _digest_json(log_digest),
            "outputs": _digest_json(outputs_digest),
            "files": records,
        }
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("ascii") + b"\n"
        (build / "manifest.json").write_bytes(manifest_bytes)
        if self._signing_key is not None:
            (build / "manifest.sig").write_text(self._sign(manifest_bytes) + "\n")
        used = build / "used"
        used.write_text(f"{size}\n")
        _touch(used)

    @contextlib.contextmanager
    def _building(self) -> Iterator[Path]:
        """A new directory under tmp/, locked (through its sibling ``<name>.lock``, taken before
        the directory exists) while it is built; removed unless it was published."""
        while True:
            build = self._tmp / f"build-{secrets.token_hex(8)}"
            lock = build.with_name(build.name + _LOCK)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits while a sweeper holds it
                try:
                    still_ours = lock.stat().st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:  # swept in the moment before it was locked
                    still_ours = False
                if not still_ours:
                    continue
                try:
                    build.mkdir()
                    yield build
                finally:
                    if build.exists():  # not published: a failure, or another store won
                        shutil.rmtree(build, ignore_errors=True)
                    lock.unlink(missing_ok=True)
                return
            finally:
                os.close(fd)

    def _publish(self, build: Path, final: Path, job: str, key: str) -> None:
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                build.rename(final)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                return
            # An entry is there already: a concurrent store of the same result won, or it is bad.
            try:
                there = self._read(job, key, final)
            except _Bad:
                self._discard(final)
                continue
            if there is None:  # removed meanwhile: try again
                continue
            with contextlib.suppress(OSError):
                _touch(final / "used")
            return  # ours is removed by _building
        raise CacheError(f"cannot store {entry_label(job, key)}: the entry kept changing while it was stored")

    def _discard(self, path: Path) -> None:
        """Remove an entry: first renamed under tmp/, so that it vanishes whole."""
        trash = self._tmp / f"{_DISCARDED}{secrets.token_hex(8)}"
        try:
            path.rename(trash)
        except FileNotFoundError:  # another process removed it first
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _sweep_tmp(self) -> None:
        """Remove the builds of processes that died (their lock is free) and discarded entries."""
        for path in self._tmp.iterdir():
            name = path.name
            if name.startswith(_DISCARDED):
                shutil.rmtree(path, ignore_errors=True)
                continue
            if not name.endswith(_LOCK):
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:  # removed meanwhile
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its builder is alive
                shutil.rmtree(path.with_name(name.removesuffix(_LOCK)), ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # while locked: a builder that locks it now sees it is gone
            finally:
                os.close(fd)

    def _evict(self, *, keep: Path) -> None:
        """Evict least-recently-used entries while the total size exceeds ``max_size``."""
        found: list[tuple[int, Path, int]] = []
        total = 0
        for job_dir in _listdir(self._entries):
            for key in _listdir(self._entries / job_dir):
                path = self._entries / job_dir / key
                used, size = _usage(path)
                found.append((used, path, size))
                total += size
        for _used, path, size in sorted(found):
            if total <= self.max_size:
                return
            if path != keep:
                self._discard(path)
                total -= size

    # --- lookup -----------------------------------------------------------------------------

    def lookup(self, job: str, key: str) -> Lookup:
        """A hit marks the entry used; a stored entry that fails a check is a miss with a problem."""
        directory = self.entry_dir(job, key)
        try:
            entry = self._read(job, key, directory)
        except _Bad as bad:
            return Lookup(None, f"{entry_label(job, key)}{bad}")
        if entry is None:
            return Lookup(None)
        with contextlib.suppress(OSError):  # a read-only cache still hits
            _touch(directory / "used")
        return Lookup(entry)

    def entries_for(self, job: str) -> list[Mapping[str, Any]]:
        """The ``parts`` of every entry of ``job`` (signed ones only when signing), oldest first."""
        job_dir = self._entries / _job_dir(job)
        found: list[Entry] = []
        for key in _listdir(job_dir):
            if KEY_RE.fullmatch(key):
                with contextlib.suppress(_Bad):
                    entry = self._read(job, key, job_dir / key, check_bytes=False)
                    if entry is not None:
                        found.append(entry)
        return [entry.parts for entry in sorted(found, key=lambda e: (e.created, e.key))]

    def _read(self, job: str, key: str, directory: Path, *, check_bytes: bool = True) -> Entry | None:
        """The entry at ``directory``, None when there is none; ``_Bad`` when it fails a check.

        Everything is read through one descriptor of the entry's directory: a directory there
        was published whole, and one evicted or replaced while it was read (renamed away, so
        it is no longer the one at ``directory``) is a plain miss, not a problem."""
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        try:
            return self._read_at(job, key, directory, dir_fd, check_bytes=check_bytes)
        except _Bad:
            if not _still_at(directory, dir_fd):
                return None
            raise
        finally:
            os.close(dir_fd)

    def _read_at(self, job: str, key: str, directory: Path, dir_fd: int, *, check_bytes: bool) -> Entry:
        try:
            with _open_at(dir_fd, "manifest.json") as reader:
                manifest_bytes = reader.read()
        except FileNotFoundError:
            raise _Bad(": manifest is missing") from None
        except OSError as error:
            raise _Bad(f": manifest cannot be read ({error.strerror})") from None
        if self._signing_key is not None:
            try:
                with _open_at(dir_fd, "manifest.sig") as reader:
                    signature = reader.read().strip()
            except FileNotFoundError:
                raise _Bad(" is not signed") from None
            except OSError as error:
                raise _Bad(f": signature cannot be read ({error.strerror})") from None
            if not hmac.compare_digest(signature, self._sign(manifest_bytes).encode()):
                raise _Bad(": signature does not match")
        try:
            data = json.loads(manifest_bytes)
        except ValueError:
            raise _Bad(": manifest is not valid JSON") from None
        if isinstance(data, dict) and "format" in data and data["format"] != FORMAT:
            raise _Bad(f": manifest has format {data['format']!r}, this version reads format {FORMAT}")
        try:
            entry = _entry_from(data, directory)
        except (KeyError, TypeError, ValueError):
            raise _Bad(": manifest is malformed") from None
        if (entry.job, entry.key) != (job, key):
            raise _Bad(": manifest is for another job or key")
        for stored in entry.files:
            _check_stored_path(stored)
        if check_bytes:
            _check_blob(dir_fd, "log", entry.log, "stored log")
            _check_blob(dir_fd, "outputs", entry.outputs, "stored outputs")
            for stored in entry.files:
                if stored.target is None:
                    _check_blob(dir_fd, f"files/{stored.blob}", stored.digest, f"stored file {stored.path!r}")
        return entry

    def _sign(self, manifest_bytes: bytes) -> str:
        assert self._signing_key is not None
        return hmac.new(self._signing_key, manifest_bytes, hashlib.sha256).hexdigest()

    # --- restore ----------------------------------------------------------------------------

    def restore(self, entry: Entry, *, rootdir: Path, log_to: Path) -> bytes:
        """Write the entry's files under ``rootdir`` (each replaced atomically), copy its log to
        ``log_to`` and return its CIDAG_OUTPUT bytes. Every byte and path is checked first:
        ``CacheRefused`` for a path that would be written outside the rootdir (also through a
        symlinked directory), ``CacheError`` for bytes that changed or vanished since the
        lookup; in both cases nothing under the rootdir was replaced."""
        staged: list[tuple[Path, Path]] = []  # (temporary, final)
        try:
            rootdir.mkdir(parents=True, exist_ok=True)
            root_real = rootdir.resolve()
            for stored in entry.files:
                if stored.if_absent and os.path.lexists(root_real.joinpath(*stored.path.split("/"))):
                    continue  # not this job's to overwrite: it did not write it
                staged.append(_stage(entry, stored, root_real))
            log_to.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_stage_copy(entry, "log", entry.log, "stored log", log_to.parent), log_to))
            try:
                outputs = (entry.directory / "outputs").read_bytes()
            except FileNotFoundError:
                raise CacheError(f"{entry.label}: stored outputs is missing") from None
            if Digest(hashlib.sha256(outputs).hexdigest(), len(outputs)) != entry.outputs:
                raise CacheError(f"{entry.label}: stored outputs does not match its checksum")
            for temporary, final in staged:
                temporary.replace(final)
            staged = []
            return outputs
        except OSError as error:
            raise CacheError(f"cannot restore {entry.label}: {error}") from error
        finally:
            for temporary, _final in staged:
                with contextlib.suppress(OSError):
                    temporary.unlink()


# --- storing: where each file comes from -------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    path: str  # as given, relative to the rootdir
    full: Path  # under the resolved rootdir
    target: str | None  # a symlink's target, relative

    @contextlib.contextmanager
    def open(self) -> Iterator[tuple[BinaryIO, int]]:
        """The file and its mode; the file's last component is not followed."""
        fd = os.open(self.full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # no wait on a FIFO
        with os.fdopen(fd, "rb") as reader:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise CacheRefused(f"cannot cache {self.path!r}: it is not a regular file or a symlink")
            yield reader, stat.S_IMODE(mode) & 0o777


def _source(root_real: Path, name: str, job: str) -> _Source:
    """Check one file to store: a plain relative path, inside the rootdir, a file or a symlink
    whose target is inside it."""

    def refuse(reason: str) -> CacheRefused:
        return CacheRefused(f"cannot cache {name!r} for job {job!r}: {reason}")

    reason = _path_problem(name)
    if reason:
        raise refuse(f"{name!r} {reason}")
    full = root_real.joinpath(*name.split("/"))
    if not _inside(full.parent.resolve(), root_real):
        raise refuse(f"{name!r} resolves outside the rootdir")
    try:
        st = full.lstat()
    except FileNotFoundError:
        raise CacheError(f"cannot cache {name!r} for job {job!r}: it does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        resolved = full.resolve()
        target = os.fspath(full.readlink())
        if target.startswith("/") and _inside(resolved, root_real):
            target = os.path.relpath(resolved, full.parent.resolve())
        if not _inside(resolved, root_real) or _target_problem(name, target):
            raise refuse("it is a symlink to a path outside the rootdir")
        return _Source(name, full, target)
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"{name!r} is not a regular file or a symlink")
    return _Source(name, full, None)


def _copy(reader: BinaryIO, destination: Path) -> Digest:
    with open(destination, "xb") as writer:
        return _copy_open(reader, writer)


def _digest_json(digest: Digest) -> dict[str, Any]:
    return {"sha256": digest.sha256, "size": digest.size}


# --- reading: the manifest and the blobs --------------------------------------------------------


def _entry_from(data: Any, directory: Path) -> Entry:
    """An entry from a manifest's JSON; KeyError, TypeError or ValueError when malformed."""
    if not isinstance(data, dict):
        raise TypeError("not an object")
    files = tuple(_stored_file(record) for record in _typed(data["files"], list))
    return Entry(
        job=_typed(data["job"], str),
        key=_typed(data["key"], str),
        parts=_typed(data["parts"], dict),
        created=_typed(data["created"], int),
        size=_typed(data["size"], int),
        log=_digest_from(data["log"]),
        outputs=_digest_from(data["outputs"]),
        files=files,
        directory=directory,
    )


def _stored_file(record: Any) -> StoredFile:
    path = _typed(_typed(record, dict)["path"], str)
    if_absent = _typed(record.get("if_absent", False), bool)
    if "target" in record:
        return StoredFile(path, target=_typed(record["target"], str), if_absent=if_absent)
    blob = _typed(record["blob"], str)
    if not _BLOB_RE.fullmatch(blob):
        raise ValueError(f"bad blob name {blob!r}")
    mode = _typed(record["mode"], int) & 0o777
    return StoredFile(path, mode=mode, blob=blob, digest=_digest_from(record), if_absent=if_absent)


def _digest_from(record: Any) -> Digest:
    return Digest(_typed(_typed(record, dict)["sha256"], str), _typed(record["size"], int))


def _typed(value: Any, kind: type[_T]) -> _T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value


def _check_stored_path(stored: StoredFile) -> None:
    if _path_problem(stored.path):
        raise _Bad(f": stored path {stored.path!r} would leave the rootdir")
    if stored.target is not None and _target_problem(stored.path, stored.target):
        raise _Bad(f": stored symlink {stored.path!r} would point out of the rootdir")


def _check_blob(dir_fd: int, name: str, expected: Digest, what: str) -> None:
    try:
        with _open_at(dir_fd, name) as reader:
            if os.fstat(reader.fileno()).st_size != expected.size:
                raise _Bad(f": {what} does not match its checksum")
            digest = hashlib.sha256()
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise _Bad(f": {what} is missing") from None
    except OSError as error:
        raise _Bad(f": {what} cannot be read ({error.strerror})") from None
    if digest.hexdigest() != expected.sha256:
        raise _Bad(f": {what} does not match its checksum")


def _open_at(dir_fd: int, name: str) -> BinaryIO:
    """``name`` (relative) in the directory ``dir_fd``, for reading."""
    return open(name, "rb", opener=lambda path, flags: os.open(path, flags, dir_fd=dir_fd))


def _still_at(directory: Path, dir_fd: int) -> bool:
    """Whether the directory open as ``dir_fd`` is still the one at ``directory``."""
    try:
        here, opened = directory.stat(), os.fstat(dir_fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (opened.st_dev, opened.st_ino)


def _usage(entry: Path) -> tuple[int, int]:
    """(last use in ns, size in bytes) of an entry, from its ``used`` file."""
    try:
        with open(entry / "used", "rb") as reader:
            return os.fstat(reader.fileno()).st_mtime_ns, int(reader.read(32))
    except (OSError, ValueError):  # damaged: count what it holds, evict it first
        return 0, sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())


# --- restoring ---------------------------------------------------------------------------------


def _stage(entry: Entry, stored: StoredFile, root_real: Path) -> tuple[Path, Path]:
    """Check one file's path and write its bytes (or symlink) to a temporary name beside it."""
    try:
        _check_stored_path(stored)
    except _Bad as bad:
        raise CacheRefused(f"{entry.label}{bad}") from None
    parent = _make_parents(entry, stored.path, root_real)
    final = parent / stored.path.rsplit("/", 1)[-1]
    if stored.target is None:
        what = f"stored file {stored.path!r}"
        return _stage_copy(entry, f"files/{stored.blob}", stored.digest, what, parent, mode=stored.mode), final
    if not _inside((parent / stored.target).resolve(), root_real):
        raise CacheRefused(f"{entry.label}: stored symlink {stored.path!r} would point out of the rootdir")
    while True:
        temporary = parent / f".cidag-restore-{secrets.token_hex(8)}"
        try:
            temporary.symlink_to(stored.target)
        except FileExistsError:
            continue
        return temporary, final


def _stage_copy(entry: Entry, blob: str, expected: Digest, what: str, parent: Path, *, mode: int = 0o644) -> Path:
    """Copy a blob to a new temporary file in ``parent``, checking its bytes; its path."""
    fd, name = tempfile.mkstemp(dir=parent, prefix=".cidag-restore-")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as writer:
            try:
                with open(entry.directory / blob, "rb") as reader:
                    digest = _copy_open(reader, writer)
            except FileNotFoundError:
                raise CacheError(f"{entry.label}: {what} is missing") from None
            os.fchmod(writer.fileno(), mode)
        if digest != expected:
            raise CacheError(f"{entry.label}: {what} does not match its checksum")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _copy_open(reader: BinaryIO, writer: BinaryIO) -> Digest:
    """Copy ``reader`` to ``writer`` in chunks; the bytes' digest."""
    digest = hashlib.sha256()
    size = 0
    while chunk := reader.read(CHUNK):
        digest.update(chunk)
        writer.write(chunk)
        size += len(chunk)
    return Digest(digest.hexdigest(), size)


def _make_parents(entry: Entry, path: str, root_real: Path) -> Path:
    """The resolved directory ``path`` goes in, its missing directories made; ``CacheRefused``
    when a component is a symlink leading out of the rootdir (checked before anything is made
    through it)."""
    current = root_real
    for part in path.split("/")[:-1]:
        step = current / part
        with contextlib.suppress(FileExistsError):
            step.mkdir()  # does not follow a symlink that is there
        if step.is_symlink():
            step = step.resolve()
            if not _inside(step, root_real):
                raise CacheRefused(f"{entry.label}: {path!r} would be written outside the rootdir (through a symlink)")
        if not step.is_dir():
            raise CacheError(f"cannot restore {entry.label}: {path!r} needs a directory where a file is")
        current = step
    return current


# --- paths -------------------------------------------------------------------------------------


def _path_problem(path: str) -> str:
    """Why ``path`` is not a plain relative POSIX path inside the rootdir ('' when it is)."""
    parts = path.split("/")
    if path.startswith("/"):
        return "is absolute"
    if ".." in parts:
        return "leaves the rootdir"
    if not path or "\0" in path or any(part in ("", ".") for part in parts):
        return "is not a plain relative path"
    return ""


def _target_problem(path: str, target: str) -> bool:
    """Whether a symlink at ``path`` with ``target`` could point out of the rootdir, by its text."""
    if not target or target.startswith("/") or "\0" in target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == ".." or joined.startswith("../")


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or under it (both resolved)."""
    return path.is_relative_to(root)


def _check_key(key: str) -> None:
    if not KEY_RE.fullmatch(key):
        raise ValueError(f"a cache key is a sha256 hex digest, not {key!r}")


def _job_dir(job: str) -> str:
    return hashlib.sha256(job.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _listdir(path: Path) -> list[str]:
    try:
        return [child.name for child in path.iterdir()]
    except FileNotFoundError:
        return []


def _touch(path: Path) -> None:
    now = time.time_ns()
    os.utime(path, ns=(now, now))
