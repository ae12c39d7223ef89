"""The content-hash cache's store (pure): entries on disk, self-checks, signing, path safety, LRU.

Real files under ``tmp_path``; concurrency and crashes with real processes (``CHILD`` below).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pytest_cidag.core.cachestore import CacheError, CacheRefused, CacheStore, Entry, Lookup

MiB = 1024 * 1024
PARTS = {"script": "abc", "inputs": {"src/a.py": "123"}, "env": {"PYTHON_VERSION": "hash"}}


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


K1, K2, K3, K4 = (key_of(str(n)) for n in range(1, 5))


def make_store(tmp_path: Path, *, max_size: int = 1 << 40, signing_key: bytes | None = None) -> CacheStore:
    return CacheStore(tmp_path / "cache", max_size=max_size, signing_key=signing_key)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A checkout with a few outputs: nested, executable, empty."""
    rootdir = tmp_path / "root"
    (rootdir / "dist" / "deep").mkdir(parents=True)
    (rootdir / "dist" / "app.whl").write_bytes(b"wheel bytes\x00\xff")
    (rootdir / "dist" / "deep" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (rootdir / "dist" / "deep" / "run.sh").chmod(0o750)
    (rootdir / "dist" / "empty").write_bytes(b"")
    (rootdir / "dist" / "empty").chmod(0o600)
    return rootdir


FILES = ["dist/app.whl", "dist/deep/run.sh", "dist/empty"]


def store_one(
    store: CacheStore,
    root: Path,
    *,
    job: str = "build",
    key: str = K1,
    files: Sequence[str] = FILES,
    log: bytes = b"the log\n",
    outputs: bytes = b"wheel=dist/app.whl\n",
    parts: dict[str, object] | None = None,
) -> None:
    log_path = root.parent / f"{job}-{key_of(key)[:8]}.log"
    log_path.write_bytes(log)
    store.store(
        job=job,
        key=key,
        parts=PARTS if parts is None else parts,
        log=log_path,
        outputs=outputs,
        rootdir=root,
        files=files,
    )


def hit(store: CacheStore, job: str = "build", key: str = K1) -> Entry:
    found = store.lookup(job, key)
    assert found.problem is None
    assert found.entry is not None
    return found.entry


def problem_of(store: CacheStore, job: str = "build", key: str = K1) -> str:
    found = store.lookup(job, key)
    assert found.entry is None
    assert found.problem is not None
    assert "\n" not in found.problem
    return found.problem


def cache_files(tmp_path: Path) -> Iterator[Path]:
    return (p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.is_symlink())


def stored_file(tmp_path: Path, name: str) -> Path:
    """The stored copy of the file ``name`` (the manifest says which blob holds it)."""
    (manifest,) = (tmp_path / "cache").glob("entries/*/*/manifest.json")
    (record,) = (f for f in json.loads(manifest.read_bytes())["files"] if f["path"] == name)
    return manifest.parent / "files" / str(record["blob"])


def edit_manifest(tmp_path: Path, edit: dict[str, object]) -> None:
    (manifest,) = (tmp_path / "cache").glob("entries/*/*/manifest.json")
    data = json.loads(manifest.read_bytes())
    for record in data["files"]:
        record.update(edit.get(record["path"], {}))
    manifest.write_text(json.dumps(data))


# --- round trip -------------------------------------------------------------------------------


def test_store_lookup_restore_round_trip(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root, log=b"line 1\nline \xff 2\n", outputs=b"wheel=dist/app.whl\n")
    originals = {name: ((root / name).read_bytes(), stat.S_IMODE((root / name).stat().st_mode)) for name in FILES}

    entry = hit(store)
    assert entry.job == "build"
    assert entry.key == K1
    assert entry.parts == PARTS
    elsewhere = tmp_path / "other-checkout"
    elsewhere.mkdir()
    (elsewhere / "dist").mkdir()
    (elsewhere / "dist" / "app.whl").write_bytes(b"stale")  # replaced
    outputs = store.restore(entry, rootdir=elsewhere, log_to=tmp_path / "run" / "build.log")

    assert outputs == b"wheel=dist/app.whl\n"
    assert (tmp_path / "run" / "build.log").read_bytes() == b"line 1\nline \xff 2\n"
    restored = {
        name: ((elsewhere / name).read_bytes(), stat.S_IMODE((elsewhere / name).stat().st_mode)) for name in FILES
    }
    assert restored == originals
    leftovers = [p.name for p in elsewhere.rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temporary file of the per-file atomic writes is left


def test_non_utf8_file_name_round_trips(tmp_path: Path, root: Path) -> None:
    name = os.fsdecode(b"dist/caf\xe9.bin")
    try:
        (root / name).write_bytes(b"latin-1 named")
    except (OSError, UnicodeEncodeError) as error:  # pragma: no cover - depends on the filesystem
        pytest.skip(f"this filesystem refuses a non-UTF-8 name: {error}")
    store = make_store(tmp_path)
    store_one(store, root, files=[name])
    (root / name).unlink()
    store.restore(hit(store), rootdir=root, log_to=tmp_path / "log")
    assert (root / name).read_bytes() == b"latin-1 named"


def test_symlink_inside_the_rootdir_is_stored_as_a_symlink(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "latest.whl").symlink_to("app.whl")
    store = make_store(tmp_path)
    store_one(store, root, files=["dist/app.whl", "dist/latest.whl"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store.restore(hit(store), rootdir=elsewhere, log_to=tmp_path / "log")
    assert os.readlink(elsewhere / "dist" / "latest.whl") == "app.whl"
    assert (elsewhere / "dist" / "latest.whl").read_bytes() == b"wheel bytes\x00\xff"


def test_an_absolute_symlink_inside_the_rootdir_is_stored_relative(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "deep" / "wheel").symlink_to(root / "dist" / "app.whl")
    store = make_store(tmp_path)
    store_one(store, root, files=["dist/deep/wheel"])
    elsewhere = tmp_path / "elsewhere"
    store.restore(hit(store), rootdir=elsewhere, log_to=tmp_path / "log")
    assert os.readlink(elsewhere / "dist" / "deep" / "wheel") == "../app.whl"  # into this checkout


def test_a_file_that_is_gone_is_not_stored(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(CacheError, match="cannot cache 'dist/gone' for job 'build': it does not exist"):
        store_one(store, root, files=["dist/app.whl", "dist/gone"])
    assert store.lookup("build", K1) == Lookup(None)


def test_miss_two_keys_and_entries_for_order(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    assert store.lookup("build", K1) == Lookup(None)
    assert store.entries_for("build") == []
    store_one(store, root, key=K2, parts={"n": 2})
    store_one(store, root, key=K1, parts={"n": 1})
    store_one(store, root, key=K3, parts={"n": 3})
    store_one(store, root, job="other", key=K1, parts={"n": "other"})
    assert store.lookup("build", K4) == Lookup(None)
    assert hit(store, key=K2).parts == {"n": 2}
    assert hit(store, key=K1).parts == {"n": 1}
    assert [parts["n"] for parts in store.entries_for("build")] == [2, 1, 3]  # stored first, first
    assert store.entries_for("other") == [{"n": "other"}]


def test_a_key_that_is_not_a_sha256_is_a_programming_error(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        store.lookup("build", "../../x")
    with pytest.raises(ValueError, match="sha256"):
        store_one(store, root, key="../x")


def test_storing_again_over_an_entry_keeps_one_whole_entry(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    store_one(store, root, log=b"second")
    assert store.restore(hit(store), rootdir=root, log_to=tmp_path / "log") == b"wheel=dist/app.whl\n"
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


# --- self-check -------------------------------------------------------------------------------


def test_a_flipped_byte_is_a_miss_with_a_problem(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    blob = stored_file(tmp_path, "dist/app.whl")
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    assert (
        problem_of(store) == "cache entry build@" + K1[:12] + ": stored file 'dist/app.whl' does not match its checksum"
    )


def test_a_deleted_file_is_a_miss_with_a_problem(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    stored_file(tmp_path, "dist/deep/run.sh").unlink()
    assert problem_of(store) == "cache entry build@" + K1[:12] + ": stored file 'dist/deep/run.sh' is missing"


@pytest.mark.parametrize("part", ["log", "outputs"])
def test_a_changed_log_or_outputs_is_a_miss(tmp_path: Path, root: Path, part: str) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    (manifest,) = (tmp_path / "cache").glob("entries/*/*/manifest.json")
    (manifest.parent / part).write_bytes(b"planted")
    assert problem_of(store).endswith(f": stored {part} does not match its checksum")


@pytest.mark.parametrize(
    ("corruption", "said"),
    [
        (b"{not json", "manifest is not valid JSON"),
        (b"", "manifest is not valid JSON"),
        (b"[]", "manifest is malformed"),
        (b'{"format": 99}', "manifest has format 99, this version reads format 1"),
        (b"\xff\xfe", "manifest is not valid JSON"),
    ],
)
def test_a_corrupt_manifest_is_a_miss(tmp_path: Path, root: Path, corruption: bytes, said: str) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    (manifest,) = (tmp_path / "cache").glob("entries/*/*/manifest.json")
    manifest.write_bytes(corruption)
    assert problem_of(store) == f"cache entry build@{K1[:12]}: {said}"
    assert store.entries_for("build") == []


def test_a_manifest_with_wrong_field_types_is_a_miss(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    edit_manifest(tmp_path, {"dist/app.whl": {"size": "big"}})
    assert problem_of(store) == f"cache entry build@{K1[:12]}: manifest is malformed"


def test_a_missing_manifest_is_a_miss(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    (manifest,) = (tmp_path / "cache").glob("entries/*/*/manifest.json")
    manifest.unlink()
    assert problem_of(store) == f"cache entry build@{K1[:12]}: manifest is missing"


def test_a_corrupt_entry_is_replaced_by_the_next_store(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    stored_file(tmp_path, "dist/app.whl").unlink()
    assert problem_of(store)
    store_one(store, root)
    hit(store)


def test_an_entry_that_vanishes_after_lookup_is_not_half_restored(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    entry = hit(store)
    stored_file(tmp_path, "dist/empty").unlink()  # e.g. evicted by another run meanwhile
    target = tmp_path / "target"
    with pytest.raises(CacheError, match="'dist/empty' is missing"):
        store.restore(entry, rootdir=target, log_to=tmp_path / "log")
    assert [p for p in target.rglob("*") if not p.is_dir()] == []  # nothing written


# --- signing ----------------------------------------------------------------------------------

SECRET = b"s3cret-signing-key-\x01\x02"


def test_signed_store_and_lookup_hit(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path, signing_key=SECRET)
    store_one(store, root)
    assert hit(store).parts == PARTS
    assert [p["script"] for p in store.entries_for("build")] == ["abc"]
    for path in cache_files(tmp_path):
        content = path.read_bytes()
        assert SECRET not in content, path
        assert SECRET.hex().encode() not in content, path
    assert SECRET.decode("latin-1") not in repr(store)


def test_unsigned_entry_is_a_miss_when_a_key_is_set(tmp_path: Path, root: Path) -> None:
    store_one(make_store(tmp_path), root)
    signed = make_store(tmp_path, signing_key=SECRET)
    assert problem_of(signed) == f"cache entry build@{K1[:12]} is not signed"
    assert signed.entries_for("build") == []  # its parts are not trusted either


def test_wrong_key_is_a_miss(tmp_path: Path, root: Path) -> None:
    store_one(make_store(tmp_path, signing_key=b"another key"), root)
    assert problem_of(make_store(tmp_path, signing_key=SECRET)) == (
        f"cache entry build@{K1[:12]}: signature does not match"
    )


def test_tampered_signed_manifest_is_a_miss(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path, signing_key=SECRET)
    store_one(store, root)
    planted = tmp_path / "planted"
    planted.write_bytes(b"malicious")
    digest = hashlib.sha256(b"malicious").hexdigest()
    blob = stored_file(tmp_path, "dist/app.whl")
    blob.write_bytes(b"malicious")
    edit_manifest(tmp_path, {"dist/app.whl": {"sha256": digest, "size": 9}})
    assert problem_of(store) == f"cache entry build@{K1[:12]}: signature does not match"


def test_a_signed_entry_moved_to_another_key_is_a_miss(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path, signing_key=SECRET)
    store_one(store, root, key=K1)
    (entry_dir,) = (tmp_path / "cache").glob("entries/*/*")
    entry_dir.rename(entry_dir.with_name(K2))
    assert problem_of(store, key=K2) == f"cache entry build@{K2[:12]}: manifest is for another job or key"


# --- path safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("../x", "'../x' leaves the rootdir"),
        ("/etc/passwd", "'/etc/passwd' is absolute"),
        ("dist/../../x", "'dist/../../x' leaves the rootdir"),
        ("dist/./app.whl", "'dist/./app.whl' is not a plain relative path"),
        ("", "'' is not a plain relative path"),
    ],
)
def test_store_refuses_paths_outside_the_rootdir(tmp_path: Path, root: Path, name: str, said: str) -> None:
    store = make_store(tmp_path)
    with pytest.raises(CacheRefused, match=f"^cannot cache {name!r} for job 'build': .*") as excinfo:
        store_one(store, root, files=["dist/app.whl", name])
    assert said in str(excinfo.value)
    assert store.lookup("build", K1) == Lookup(None)
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_store_refuses_a_symlink_pointing_out(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("secret")
    (root / "dist" / "link").symlink_to(outside)
    (root / "dist" / "relative-link").symlink_to("../../secret")
    store = make_store(tmp_path)
    for name in ("dist/link", "dist/relative-link"):
        with pytest.raises(CacheRefused, match="symlink to a path outside the rootdir"):
            store_one(store, root, files=[name])
    assert store.lookup("build", K1) == Lookup(None)


def test_store_refuses_a_file_reached_through_a_symlinked_directory_pointing_out(tmp_path: Path, root: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("outside")
    (root / "out").symlink_to(tmp_path / "outside")
    with pytest.raises(CacheRefused, match="resolves outside the rootdir"):
        store_one(make_store(tmp_path), root, files=["out/f"])


def test_store_refuses_a_directory(tmp_path: Path, root: Path) -> None:
    with pytest.raises(CacheRefused, match="'dist' is not a regular file or a symlink"):
        store_one(make_store(tmp_path), root, files=["dist"])


@pytest.mark.parametrize("bad", ["../x", "/etc/x", "dist/../../x"])
def test_an_entry_naming_a_path_outside_is_refused(tmp_path: Path, root: Path, bad: str) -> None:
    store = make_store(tmp_path)  # no signing: the path check alone must hold
    store_one(store, root)
    good = hit(store)
    edit_manifest(tmp_path, {"dist/app.whl": {"path": bad}})
    assert problem_of(store) == f"cache entry build@{K1[:12]}: stored path {bad!r} would leave the rootdir"

    files = tuple(dataclasses.replace(f, path=bad) if f.path == "dist/app.whl" else f for f in good.files)
    forged = dataclasses.replace(good, files=files)
    target = tmp_path / "deep" / "er" / "target"
    target.mkdir(parents=True)
    with pytest.raises(CacheRefused, match="would leave the rootdir"):
        store.restore(forged, rootdir=target, log_to=tmp_path / "log")
    assert not (tmp_path / "deep" / "er" / "x").exists()
    assert [p for p in target.rglob("*") if not p.is_dir()] == []


def test_an_entry_with_a_symlink_edited_to_point_out_is_refused(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "latest").symlink_to("app.whl")
    store = make_store(tmp_path)
    store_one(store, root, files=["dist/latest"])
    good = hit(store)
    edit_manifest(tmp_path, {"dist/latest": {"target": "../../../etc"}})
    assert (
        problem_of(store) == f"cache entry build@{K1[:12]}: stored symlink 'dist/latest' would point out of the rootdir"
    )
    (link,) = good.files
    forged = dataclasses.replace(good, files=(dataclasses.replace(link, target="/etc"),))
    with pytest.raises(CacheRefused, match="would point out of the rootdir"):
        store.restore(forged, rootdir=root, log_to=tmp_path / "log")
    assert os.readlink(root / "dist" / "latest") == "app.whl"


def test_restore_refuses_a_symlinked_parent_directory_pointing_out(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "dist").symlink_to(outside)
    with pytest.raises(CacheRefused, match=re.escape("'dist/app.whl' would be written outside the rootdir")):
        store.restore(hit(store), rootdir=target, log_to=tmp_path / "log")
    assert list(outside.iterdir()) == []


def test_restore_follows_a_symlinked_parent_directory_inside(tmp_path: Path, root: Path) -> None:
    store = make_store(tmp_path)
    store_one(store, root)
    target = tmp_path / "target"
    (target / "real-dist").mkdir(parents=True)
    (target / "dist").symlink_to("real-dist")
    store.restore(hit(store), rootdir=target, log_to=tmp_path / "log")
    assert (target / "real-dist" / "deep" / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"


# --- LRU --------------------------------------------------------------------------------------


def entry_count(tmp_path: Path) -> int:
    return len(list((tmp_path / "cache").glob("entries/*/*")))


def test_lru_evicts_the_least_recently_used(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "big").write_bytes(b"x" * 1000)
    store = make_store(tmp_path, max_size=3500)  # room for three entries of ~1000 bytes
    for key in (K1, K2, K3):
        store_one(store, root, key=key, files=["dist/big"], log=b"", outputs=b"")
    assert entry_count(tmp_path) == 3
    hit(store, key=K1)  # K1 is now used more recently than K2
    store_one(store, root, key=K4, files=["dist/big"], log=b"", outputs=b"")
    assert store.lookup("build", K2) == Lookup(None)
    for key in (K1, K3, K4):
        hit(store, key=key)
    assert entry_count(tmp_path) == 3


def test_lru_never_evicts_the_entry_just_stored(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "big").write_bytes(b"x" * 5000)
    store = make_store(tmp_path, max_size=1000)
    store_one(store, root, key=K1, files=["dist/empty"], log=b"", outputs=b"")
    store_one(store, root, key=K2, files=["dist/big"], log=b"", outputs=b"")
    assert store.lookup("build", K1) == Lookup(None)
    hit(store, key=K2)
    assert entry_count(tmp_path) == 1


# --- real processes: crashes and concurrency ----------------------------------------------------

#: A child process storing an entry. argv[1] is JSON: the cache, rootdir, job, key, files,
#: and optionally "wait" (read a line from stdin first, so that several start together),
#: "kill_at" (SIGKILL itself at the n-th C-level write, or at the rename that publishes) and
#: "keys" (store under each of these keys in turn).
CHILD = r"""
import json, os, signal, sys
from pathlib import Path
from pytest_cidag.core.cachestore import CacheStore

args = json.loads(sys.argv[1])
store = CacheStore(Path(args["cache"]), max_size=args.get("max_size", 1 << 40), signing_key=None)
log = Path(args["log"])
if args.get("wait"):
    print("ready", flush=True)
    sys.stdin.readline()
kill_at = args.get("kill_at")
if kill_at is not None:
    calls = {"write": 0}

    def profile(frame, event, arg):
        if event != "c_call":
            return
        name = getattr(arg, "__name__", "")
        if name == "write":
            calls["write"] += 1
        if (kill_at == "rename" and name in ("rename", "replace")) or calls["write"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(profile)
for key in args.get("keys", [args.get("key")]):
    store.store(job=args["job"], key=key, parts={"by": os.getpid()}, log=log, outputs=b"out=1\n",
                rootdir=Path(args["root"]), files=args["files"])
sys.setprofile(None)
print("stored", flush=True)
"""


def child(tmp_path: Path, root: Path, **args: object) -> subprocess.Popen[str]:
    log = tmp_path / "child.log"
    log.write_bytes(b"child log\n")
    spec: dict[str, object] = {"cache": str(tmp_path / "cache"), "root": str(root), "log": str(log), "job": "build"}
    spec["key"] = K1
    spec["files"] = ["dist/large", "dist/app.whl"]
    spec.update(args)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def large(root: Path) -> Path:
    """An output of 8 MiB, copied in several chunks."""
    path = root / "dist" / "large"
    with open(path, "wb") as out:
        for n in range(8):
            out.write(bytes([n]) * MiB)
    return path


@pytest.mark.parametrize("kill_at", [1, 4, 8, "rename"])
def test_kill_9_mid_store_leaves_no_visible_entry(tmp_path: Path, root: Path, large: Path, kill_at: object) -> None:
    process = child(tmp_path, root, kill_at=kill_at)
    out, _ = process.communicate()
    assert process.returncode == -9, out  # it died mid-store, not after
    assert list((tmp_path / "cache" / "tmp").iterdir()) != []  # the half-built entry is there ...
    store = make_store(tmp_path)
    assert store.lookup("build", K1) == Lookup(None)  # ... and invisible
    assert store.entries_for("build") == []
    store_one(store, root, files=["dist/large"])  # a later store works and sweeps the leftover
    assert hit(store).files[0].size == 8 * MiB
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_concurrent_stores_of_one_entry_all_succeed_and_it_is_whole(tmp_path: Path, root: Path, large: Path) -> None:
    processes = [child(tmp_path, root, wait=True) for _ in range(4)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:  # all start storing at once
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        out, _ = process.communicate()
        assert (process.returncode, out) == (0, "stored\n")
    store = make_store(tmp_path)
    entry = hit(store)
    assert entry.parts["by"] in {process.pid for process in processes}
    target = tmp_path / "target"
    assert store.restore(entry, rootdir=target, log_to=tmp_path / "log") == b"out=1\n"
    assert (target / "dist" / "large").read_bytes() == large.read_bytes()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []  # the losers removed their builds
    assert entry_count(tmp_path) == 1


def test_a_reader_concurrent_with_writers_never_sees_half_an_entry(tmp_path: Path, root: Path) -> None:
    (root / "dist" / "half-mib").write_bytes(b"h" * (MiB // 2))
    keys = [key_of(f"reader {n}") for n in range(30)]
    files = ["dist/half-mib", "dist/app.whl"]
    writers = [child(tmp_path, root, wait=True, keys=keys[n::2], files=files) for n in range(2)]
    for process in writers:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in writers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    store = make_store(tmp_path)
    hits = misses = 0
    problems: list[str] = []
    writing = True
    while writing:  # one more round after the writers are done
        writing = any(process.poll() is None for process in writers)
        for key in keys:
            found = store.lookup("build", key)
            if found.problem is not None:
                problems.append(found.problem)
            elif found.entry is None:
                misses += 1
            else:
                hits += 1
                assert len(found.entry.files) == 2
    for process in writers:
        assert process.communicate()[0] == "stored\n"
    assert problems == []
    assert hits > 0
    assert misses > 0  # the reader did run while entries were still being written
    assert all(store.lookup("build", key).entry is not None for key in keys)
