"""What a cached job's result is keyed on: its files, their digests, and the key itself.

Pure: no pytest import. Three pieces, used by the cache glue (issue 14):

- :func:`match_files` turns a job's gitignore-style ``inputs`` (or ``outputs``) globs into
  the sorted list of files they match under the rootdir.
- :class:`FileHasher` gives each file a digest: git's blob id, taken from git's index where
  the file is tracked and unchanged, else computed (and remembered in a stat cache).
- :class:`KeyParts` is everything a key is made of, kept so that a miss can be explained
  (:func:`explain`, :func:`nearest`): which file, env variable (by name only) or upstream job
  differs from the stored entry.

``pathspec`` is imported inside the functions that need it, so that a run without caching
never imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

#: Bump when what goes into a key, or how, changes: every stored entry then misses, saying why.
FORMAT_VERSION: Final = 2

#: The digest of an env variable that is not set (a set one is the sha256 of its value).
UNSET: Final = "unset"
#: The key of a needed job that has none (it is not cacheable).
UNCACHED: Final = "uncached"
#: The digest of a matched file that is gone by the time it is hashed.
MISSING: Final = "missing"
#: Appended to the digest of an executable file: a job that runs ``./tool.sh`` fails once it
#: is not, so the bit is part of the key (as git keeps it: the owner's execute bit).
EXECUTABLE: Final = "+x"

#: Directory (or file) names never walked into nor matched, at any depth: git's own data and
#: pytest-cidag's runs and cache.
NEVER: Final = frozenset({".git", ".cidag"})

#: A file whose mtime or ctime is less than this many seconds old is not put in the stat cache:
#: a change within the filesystem's timestamp granularity (2 s on FAT) could leave its stat
#: unchanged (git's "racy git" problem).
RACY_WINDOW: Final = 2.0

#: Format of the stat cache file (changes of it only make the old file ignored).
STAT_CACHE_VERSION: Final = 1

#: Read files in chunks of this many bytes.
CHUNK: Final = 1 << 20

#: Index entries whose blob id is the content of a regular file (not a symlink or submodule).
_FILE_MODES: Final = frozenset({"100644", "100755"})

_GLOB_CHARS: Final = frozenset("*?[\\")


# --- which files -----------------------------------------------------------------------


def _anchor(pattern: str) -> str:
    """``src/*.py`` as gitignore's ``/src/*.py``: relative to the rootdir, not at any depth."""
    if not pattern.strip() or pattern.startswith("#"):
        return pattern
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    return ("!" if negated else "") + (body if body.startswith("/") else "/" + body)


def _literal_prefix(pattern: str) -> tuple[str, ...] | None:
    """The leading literal directories of an anchored pattern (``src/**/*.py`` -> ``("src",)``),
    ``()`` when the pattern may match at any depth, ``None`` when it never includes anything."""
    if pattern.startswith("!") or not pattern.strip() or pattern.startswith("#"):
        return None
    body = pattern.rstrip("/")
    if "/" not in body:  # gitignore: a pattern without a slash (but a trailing one) matches at any depth
        return ()
    parts: list[str] = []
    for segment in body.lstrip("/").split("/"):
        if not segment or _GLOB_CHARS & set(segment) or segment in {".", ".."}:
            break
        parts.append(segment)
    return tuple(parts)


def _may_hold_matches(dirparts: tuple[str, ...], prefixes: Sequence[tuple[str, ...]]) -> bool:
    """Whether a directory (its path's parts) may hold a file one of the patterns matches."""
    return any(p[: len(dirparts)] == dirparts[: len(p)] for p in prefixes)


def _walk(rootdir: Path, prefixes: Sequence[tuple[str, ...]], walked: list[str] | None) -> Iterator[str]:
    """Relative POSIX paths of the regular files (and links to them) under ``rootdir``.

    Directories that no pattern can reach into are not entered. A symlink to a directory is
    followed only when it leads to a directory under the rootdir that is not already being
    walked (so never out of the rootdir, and never round a loop).
    """
    real_root = os.path.realpath(rootdir)

    def walk(path: str, real: str, rel: tuple[str, ...], stack: frozenset[str]) -> Iterator[str]:
        if walked is not None:
            walked.append("/".join(rel))
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name in NEVER:
                continue
            parts = (*rel, entry.name)
            try:
                if entry.is_dir(follow_symlinks=True):
                    if not _may_hold_matches(parts, prefixes):
                        continue
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if target in stack or not _is_under(target, real_root):
                            continue
                    else:
                        target = f"{real}/{entry.name}"
                    yield from walk(entry.path, target, parts, stack | {target})
                elif entry.is_file(follow_symlinks=True):
                    yield "/".join(parts)
            except OSError:
                continue

    yield from walk(os.fspath(rootdir), real_root, (), frozenset({real_root}))


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def match_files(
    rootdir: Path, patterns: Sequence[str], *, walked: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Files under rootdir matched by gitignore-style patterns, and the patterns matching none.

    As in a ``.gitignore`` (but selecting instead of ignoring), with one difference: every
    pattern is anchored at the rootdir, as a path relative to it reads (``pyproject.toml`` is
    the top one only; ``**/pyproject.toml`` matches at any depth). ``!`` excludes, the last
    pattern that matches a file decides, and ``dir/`` matches everything under ``dir``. Returns the matched files
    as sorted POSIX paths relative to rootdir, and the non-negated patterns that match no file
    at all (whatever later patterns do), in their order. Regular files and symlinks to files
    count; nothing under a ``.git`` or ``.cidag`` directory ever does. Directories no pattern
    can reach are not walked; their relative paths are appended to ``walked`` when given.
    """
    from pathspec import GitIgnoreSpec

    anchored = [_anchor(p) for p in patterns]
    spec = GitIgnoreSpec.from_lines(anchored)
    # one spec per pattern, to tell which match nothing (checked only until each matches once)
    single = {i: GitIgnoreSpec.from_lines([p]) for i, p in enumerate(anchored) if not p.startswith("!")}
    prefixes = [p for p in map(_literal_prefix, anchored) if p is not None]
    files: list[str] = []
    for rel in _walk(rootdir, prefixes, walked):
        if single:
            for i in [i for i, s in single.items() if s.match_file(rel)]:
                del single[i]
        if spec.match_file(rel):
            files.append(rel)
    files.sort()
    return files, [patterns[i] for i in sorted(single)]


# --- digests -----------------------------------------------------------------------------


def blob_id(path: str | os.PathLike[str]) -> tuple[str, os.stat_result | None]:
    """Git's blob id of a file's content (``git hash-object --no-filters``), and the file's stat
    when it held still while read (``None`` when its size or times changed meanwhile)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        sha = hashlib.sha1(b"blob %d\0" % st.st_size)
        length = 0
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            length += len(chunk)
        if length != st.st_size:  # it changed size while being read: hash it again, whole
            f.seek(0)
            data = f.read()
            return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), None
        after = os.fstat(f.fileno())
    return sha.hexdigest(), st if _stat_key(after) == _stat_key(st) else None


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class FileHasher:
    """Content digests of files under a rootdir: git's blob ids, so that a digest is the same
    whether git or this class computed it (``git hash-object --no-filters``).

    Where the rootdir is in a git checkout, a tracked file that git sees unchanged against its
    index takes its blob id from the index: one ``git ls-files -s -v -z`` and one
    ``git diff-files -z --name-only --relative``, run at the first call of :meth:`digests` (and
    again after :meth:`refresh`). Only plain entries count (tag ``H``, stage 0, a regular
    file's mode): not symlinks (git's blob is the link's text, the job reads the target),
    submodules, conflicts, nor entries marked assume-unchanged or skip-worktree (git does not
    look at those files). No git, a failing git, or a sha256 repository: every file is hashed.
    The index is a snapshot: a file edited after the first call keeps its blob id until
    :meth:`refresh`. A file git filters (``core.autocrlf``, LFS) has the index's blob id while
    unchanged and its bytes' id once edited: only a spurious miss, never a wrong hit.

    Every other file is read and hashed, and its digest remembered by its stat
    (size, mtime_ns, ctime_ns, inode), in memory and, with ``stat_cache``, in that JSON file
    (:meth:`save`; read at the first call). The file is ``{"version": 1, "rootdir": <real
    path>, "entries": {relpath: [size, mtime_ns, ctime_ns, ino, digest]}}``, replaced
    atomically; one of another version or rootdir, or one that cannot be read, is ignored.
    A file whose mtime or ctime is less than ``racy_window`` seconds old when hashed, or that
    changed while it was read, is not remembered (see :data:`RACY_WINDOW`).

    One instance may be used from several threads of one process; several processes may
    share one ``stat_cache`` (each save merges what is on disk; the last one wins a race).

    Attributes:
        rootdir: where relative paths start.
        git_runs: git commands run so far.
        from_git: digests taken from git's index so far.
        hashed: (property) the relative paths read and hashed so far, sorted.
    """

    def __init__(
        self, rootdir: Path, stat_cache: Path | None, *, racy_window: float = RACY_WINDOW, use_git: bool = True
    ) -> None:
        self.rootdir = rootdir
        self.git_runs = 0
        self.from_git = 0
        self._stat_cache = stat_cache
        self._racy_ns = int(racy_window * 1e9)
        self._use_git = use_git
        self._lock = threading.Lock()
        self._git: dict[str, str] | None = None
        #: relpath -> (size, mtime_ns, ctime_ns, ino, digest)
        self._entries: dict[str, tuple[int, int, int, int, str]] | None = None
        self._dirty = False
        self._hashed: list[str] = []

    @property
    def hashed(self) -> list[str]:
        return sorted(self._hashed)

    def refresh(self) -> None:
        """Forget git's answer: the next :meth:`digests` asks git again."""
        with self._lock:
            self._git = None

    def digests(self, relpaths: Sequence[str]) -> dict[str, str]:
        """``relpath -> digest`` (40 hex digits, followed by :data:`EXECUTABLE` for an
        executable file; :data:`MISSING` for a file that is gone, ``error:<ERRNO>`` for one
        that cannot be read)."""
        with self._lock:
            if self._git is None:
                self._git = self._read_git() if self._use_git else {}
            if self._entries is None:
                self._entries = self._load_stat_cache()
            blobs, entries = self._git, self._entries
        out: dict[str, str] = {}
        for rel in relpaths:
            blob = blobs.get(rel)
            if blob is not None:
                self.from_git += 1
                out[rel] = blob
            else:
                out[rel] = self._hash(rel, entries)
        return out

    def _hash(self, rel: str, entries: dict[str, tuple[int, int, int, int, str]]) -> str:
        path = self.rootdir / rel
        try:
            st = path.stat()
            mark = EXECUTABLE if st.st_mode & stat.S_IXUSR else ""
            entry = entries.get(rel)
            if entry is not None and entry[:4] == _stat_key(st):
                return entry[4] + mark
            digest, held = blob_id(path)
        except FileNotFoundError:
            return MISSING
        except OSError as exc:
            return f"error:{os.strerror(exc.errno) if exc.errno else type(exc).__name__}"
        with self._lock:
            self._hashed.append(rel)
            if held is not None and time.time_ns() - max(held.st_mtime_ns, held.st_ctime_ns) >= self._racy_ns:
                entries[rel] = (*_stat_key(held), digest)
                self._dirty = True
            elif entries.pop(rel, None) is not None:
                self._dirty = True
        return digest + mark

    def _git_output(self, *args: str) -> bytes | None:
        self.git_runs += 1
        try:
            done = subprocess.run(
                ["git", "-c", "core.quotepath=off", *args],
                cwd=self.rootdir,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def _read_git(self) -> dict[str, str]:
        """Blob ids of the tracked regular files under the rootdir that git sees unchanged."""
        listed = self._git_output("ls-files", "-s", "-v", "-z")
        if not listed:
            return {}
        changed = self._git_output("diff-files", "-z", "--name-only", "--relative")
        if changed is None:
            return {}
        dirty = set(changed.split(b"\0"))
        blobs: dict[str, str] = {}
        for record in listed.split(b"\0"):
            meta, _, path = record.partition(b"\t")
            fields = meta.split(b" ")
            if len(fields) != 4 or path in dirty:
                continue
            tag, mode, blob, stage = fields
            if tag != b"H" or stage != b"0" or mode.decode() not in _FILE_MODES:
                continue
            if len(blob) != 40:  # a sha256 repository: its ids are not what blob_id computes
                return {}
            blobs[os.fsdecode(path)] = blob.decode("ascii") + (EXECUTABLE if mode == b"100755" else "")
        return blobs

    def _load_stat_cache(self) -> dict[str, tuple[int, int, int, int, str]]:
        if self._stat_cache is None:
            return {}
        try:
            data = json.loads(self._stat_cache.read_bytes())
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or data.get("version") != STAT_CACHE_VERSION
            or data.get("rootdir") != os.path.realpath(self.rootdir)
            or not isinstance(data.get("entries"), dict)
        ):
            return {}
        entries = {}
        for rel, entry in data["entries"].items():
            if (
                isinstance(entry, list)
                and len(entry) == 5
                and all(isinstance(n, int) for n in entry[:4])
                and isinstance(entry[4], str)
            ):
                entries[rel] = (entry[0], entry[1], entry[2], entry[3], entry[4])
        return entries

    def save(self) -> None:
        """Write the stat cache (when there is one and something new was hashed): what is on
        disk now, updated with this instance's entries, less files that are gone; atomically
        (a temporary file renamed over it). Raises ``OSError`` when it cannot be written."""
        with self._lock:
            if self._stat_cache is None or self._entries is None or not self._dirty:
                return
            merged = self._load_stat_cache()
            merged.update(self._entries)
            entries = {rel: list(e) for rel, e in sorted(merged.items()) if os.path.lexists(self.rootdir / rel)}
            data = {"version": STAT_CACHE_VERSION, "rootdir": os.path.realpath(self.rootdir), "entries": entries}
            _write_atomically(self._stat_cache, json.dumps(data, separators=(",", ":")).encode())
            self._dirty = False


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink()
        raise


# --- the key ---------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, ASCII only (so any file name fits)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class KeyParts:
    """What a key is made of. JSON-able (:meth:`to_json`, :meth:`from_json`) so it can be
    stored with an entry and compared later (:func:`explain`). Holds no env value, only its
    sha256 (or :data:`UNSET`), and no absolute path, so the same project elsewhere has the
    same key."""

    #: the job id (leg id), e.g. "test[3.12]"
    job: str
    #: sha256 of the job file's bytes
    script: str
    #: sha256 of the canonical JSON of the resolved block
    block: str
    #: matrix leg values
    leg: Mapping[str, str]
    #: env variable name -> sha256 of its value, or UNSET
    env: Mapping[str, str]
    #: input relpath -> digest (FileHasher)
    files: Mapping[str, str]
    #: input patterns that matched nothing
    unmatched: tuple[str, ...]
    #: needed job id -> its key, or UNCACHED
    needs: Mapping[str, str]
    #: needed job id -> sha256 of its CIDAG_OUTPUT bytes ("" when it wrote none)
    needs_outputs: Mapping[str, str]
    version: int = FORMAT_VERSION
    _key: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    def key(self) -> str:
        """sha256 hex of the canonical JSON of all of the above."""
        if not self._key:
            self._key.append(sha256(canonical_json(self.to_json())))
        return self._key[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "job": self.job,
            "script": self.script,
            "block": self.block,
            "leg": dict(self.leg),
            "env": dict(self.env),
            "files": dict(self.files),
            "unmatched": list(self.unmatched),
            "needs": dict(self.needs),
            "needs_outputs": dict(self.needs_outputs),
        }

    @classmethod
    def from_json(cls, data: Any) -> KeyParts:
        """The parts :meth:`to_json` gave; ``ValueError`` for anything else (a damaged entry)."""
        if not isinstance(data, dict):
            raise ValueError(f"a stored cache key is not a JSON object: {type(data).__name__}")

        def get(name: str, kind: type, item: type | None = None) -> Any:
            value = data.get(name)
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if ok and item is not None:
                assert isinstance(value, dict | list)
                values = value.values() if isinstance(value, dict) else value
                ok = all(isinstance(v, item) for v in values) and all(isinstance(k, str) for k in value)
            if not ok:
                raise ValueError(f"a stored cache key has no valid {name!r}: {value!r:.80}")
            return value

        return cls(
            version=get("version", int),
            job=get("job", str),
            script=get("script", str),
            block=get("block", str),
            leg=get("leg", dict, str),
            env=get("env", dict, str),
            files=get("files", dict, str),
            unmatched=tuple(get("unmatched", list, str)),
            needs=get("needs", dict, str),
            needs_outputs=get("needs_outputs", dict, str),
        )


def key_parts(
    *,
    job: str,
    script: bytes,
    block: Mapping[str, Any],
    leg: Mapping[str, str],
    env: Mapping[str, str | None],
    rootdir: Path,
    inputs: Sequence[str],
    hasher: FileHasher,
    needs: Mapping[str, str | None],
    needs_outputs: Mapping[str, bytes],
) -> KeyParts:
    """Match ``inputs`` under ``rootdir`` (the hasher's), hash what they match and the rest.

    ``env`` maps each declared variable to its value (``None`` when unset); ``needs`` each
    needed job to its key (``None`` when it has none); ``needs_outputs`` each needed job to the
    bytes of its ``CIDAG_OUTPUT`` file (``b""`` when it wrote none).
    """
    files, unmatched = match_files(rootdir, inputs)
    return KeyParts(
        job=job,
        script=sha256(script),
        block=sha256(canonical_json(block)),
        leg=dict(sorted(leg.items())),
        env={name: UNSET if value is None else sha256(value.encode()) for name, value in sorted(env.items())},
        files=hasher.digests(files),
        unmatched=tuple(unmatched),
        needs={name: UNCACHED if key is None else key for name, key in sorted(needs.items())},
        needs_outputs={name: sha256(data) if data else "" for name, data in sorted(needs_outputs.items())},
    )


# --- why a miss ------------------------------------------------------------------------------


def _changed(now: Mapping[str, str], stored: Mapping[str, str]) -> list[str]:
    return sorted(name for name in now.keys() | stored.keys() if now.get(name) != stored.get(name))


def explain(now: KeyParts, stored: KeyParts) -> list[str]:
    """What differs between two keys' parts, one short line each, in a fixed order (format,
    job, script, block, matrix leg, files added / removed / changed, unmatched patterns, env,
    upstream keys, upstream outputs; names sorted within each). Never an env value. Empty
    exactly when the keys are equal."""
    lines: list[str] = []
    if now.version != stored.version:
        lines.append(f"cache format changed ({stored.version} -> {now.version})")
    if now.job != stored.job:
        lines.append(f"job changed: {stored.job} -> {now.job}")
    if now.script != stored.script:
        lines.append("script changed")
    if now.block != stored.block:
        lines.append("block changed")
    lines += [
        f"matrix leg changed: {name} {stored.leg.get(name, '(none)')} -> {now.leg.get(name, '(none)')}"
        for name in _changed(now.leg, stored.leg)
    ]
    lines += [f"file added: {rel}" for rel in sorted(now.files.keys() - stored.files.keys())]
    lines += [f"file removed: {rel}" for rel in sorted(stored.files.keys() - now.files.keys())]
    lines += [
        f"file changed: {rel}"
        for rel in sorted(now.files.keys() & stored.files.keys())
        if now.files[rel] != stored.files[rel]
    ]
    unmatched = [f"input pattern matches nothing: {p}" for p in now.unmatched if p not in stored.unmatched]
    unmatched += [f"input pattern matches files now: {p}" for p in stored.unmatched if p not in now.unmatched]
    if now.unmatched != stored.unmatched and not unmatched:
        unmatched.append("input patterns matching nothing changed order")
    lines += unmatched
    lines += [f"env changed: {name}" for name in _changed(now.env, stored.env)]
    for name in _changed(now.needs, stored.needs):
        if name not in stored.needs:
            lines.append(f"upstream added: {name}")
        elif name not in now.needs:
            lines.append(f"upstream removed: {name}")
        else:
            lines.append(f"upstream key changed: {name}")
    lines += [f"upstream outputs changed: {name}" for name in _changed(now.needs_outputs, stored.needs_outputs)]
    return lines


def nearest(now: KeyParts, candidates: Sequence[KeyParts]) -> KeyParts | None:
    """The candidate for the same job that differs least from ``now`` (fewest :func:`explain`
    lines; of equals, the last), or ``None`` when there is none for that job."""
    best: KeyParts | None = None
    best_count = 0
    for candidate in candidates:
        if candidate.job != now.job:
            continue
        count = len(explain(now, candidate))
        if best is None or count <= best_count:
            best, best_count = candidate, count
    return best
