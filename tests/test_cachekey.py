"""Cache keys: which files a job's globs match, their digests (git's blob ids), and the key.

Pure module, tested on real files under tmp_path and a real git repository.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.core.cachekey import (
    FORMAT_VERSION,
    UNCACHED,
    UNSET,
    FileHasher,
    KeyParts,
    explain,
    key_parts,
    match_files,
    nearest,
)

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def git_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    write(root, files)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "files")
    return root


def hash_object(path: Path) -> str:
    return subprocess.run(
        ["git", "hash-object", "--no-filters", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


# --- match_files ----------------------------------------------------------------------

TREE: dict[str, str | bytes] = {
    "pyproject.toml": "[project]\n",
    "src/a.py": "a\n",
    "src/pkg/b.py": "b\n",
    "src/pkg/test_b.py": "tb\n",
    "src/keep/test_keep.py": "tk\n",
    "src/data.txt": "d\n",
    "docs/index.md": "i\n",
    "docs/sub/x.md": "x\n",
    "sub/pyproject.toml": "[nested]\n",
    ".git/config": "not a repo, but never an input\n",
    ".cidag/cache/entry.py": "never an input\n",
    "src/.cidag/x.py": "never an input either\n",
}


def test_patterns_gitignore_style(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    patterns = [
        "src/**/*.py",
        "!src/**/test_*.py",
        "src/keep/test_keep.py",  # re-included after the exclusion above
        "pyproject.toml",  # relative to the rootdir: the nested one is not matched
        "docs/",  # a directory: everything under it
        "nothere/*.c",
        "!also-nothing",  # negations are never reported as matching nothing
    ]
    files, unmatched = match_files(tmp_path, patterns)
    assert files == [
        "docs/index.md",
        "docs/sub/x.md",
        "pyproject.toml",
        "src/a.py",
        "src/keep/test_keep.py",
        "src/pkg/b.py",
    ]
    assert unmatched == ["nothere/*.c"]


def test_later_patterns_win(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    assert match_files(tmp_path, ["src/keep/test_keep.py", "!src/**/test_*.py"]) == ([], [])
    assert match_files(tmp_path, ["!src/a.py", "src/a.py"]) == (["src/a.py"], [])


def test_a_name_is_relative_to_the_rootdir_and_double_star_reaches_any_depth(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    assert match_files(tmp_path, ["pyproject.toml"])[0] == ["pyproject.toml"]
    assert match_files(tmp_path, ["/pyproject.toml"])[0] == ["pyproject.toml"]
    assert match_files(tmp_path, ["**/pyproject.toml"])[0] == ["pyproject.toml", "sub/pyproject.toml"]


def test_git_and_cidag_never_match(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    files, unmatched = match_files(tmp_path, ["**", ".git/config", ".cidag/", "src/.cidag/x.py"])
    assert not [f for f in files if ".git/" in f or ".cidag/" in f]
    assert "src/a.py" in files
    assert unmatched == [".git/config", ".cidag/", "src/.cidag/x.py"]


def test_blank_and_comment_patterns_are_reported(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    assert match_files(tmp_path, ["src/a.py", "", "#src/a.py"]) == (["src/a.py"], ["", "#src/a.py"])


def test_no_patterns_match_nothing(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    assert match_files(tmp_path, []) == ([], [])


def test_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside, {"secret.py": "s\n", "lib/deep.py": "d\n"})
    write(root, {"src/a.py": "a\n", "real.py": "r\n"})
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "src" / "outlib").symlink_to(outside / "lib", target_is_directory=True)
    (root / "alias").symlink_to(root / "src", target_is_directory=True)  # inside: followed
    (root / "src" / "loop").symlink_to(root / "src", target_is_directory=True)  # a loop: not entered again
    (root / "link.py").symlink_to(root / "real.py")  # a link to a file is a file
    (root / "dangling.py").symlink_to(root / "gone.py")
    files, unmatched = match_files(root, ["**/*.py", "out/", "src/outlib/deep.py"])
    assert files == ["alias/a.py", "link.py", "real.py", "src/a.py"]
    assert unmatched == ["out/", "src/outlib/deep.py"]


def test_directories_outside_every_pattern_are_not_walked(tmp_path: Path) -> None:
    write(tmp_path, {"src/a.py": "a\n", "big/x.py": "x\n"})
    (tmp_path / "big" / "loop").symlink_to(tmp_path / "big", target_is_directory=True)
    walked: list[str] = []
    match_files(tmp_path, ["src/**/*.py", "!src/x"], walked=walked)
    assert walked == ["", "src"]


# --- FileHasher -----------------------------------------------------------------------


CONTENTS: dict[str, str | bytes] = {
    "empty": b"",
    "text.txt": "hello\n",
    "binary.bin": bytes(range(256)) * 3,
    "big.bin": b"x" * (3 * 1024 * 1024 + 7),
    "dir/nested.txt": "nested\n",
}


@needs_git
def test_digests_are_git_blob_ids(tmp_path: Path) -> None:
    write(tmp_path, CONTENTS)
    hasher = FileHasher(tmp_path, None)
    digests = hasher.digests(list(CONTENTS))
    assert digests == {rel: hash_object(tmp_path / rel) for rel in CONTENTS}
    assert hasher.hashed == sorted(CONTENTS)  # not a git checkout: every file read


@needs_git
def test_git_index_supplies_unchanged_tracked_files(tmp_path: Path) -> None:
    git_repo(tmp_path, {**CONTENTS, "changed.txt": "old\n", "assumed.txt": "old\n", "target.txt": "t\n"})
    (tmp_path / "link.txt").symlink_to("target.txt")
    git(tmp_path, "add", "link.txt")
    git(tmp_path, "commit", "-q", "-m", "link")
    git(tmp_path, "update-index", "--assume-unchanged", "assumed.txt")
    write(tmp_path, {"changed.txt": "new content\n", "assumed.txt": "new\n", "untracked.txt": "u\n"})
    rels = [*CONTENTS, "changed.txt", "assumed.txt", "untracked.txt", "link.txt"]

    hasher = FileHasher(tmp_path, None)
    digests = hasher.digests(rels)

    assert digests == {rel: hash_object(tmp_path / rel) for rel in rels}
    # read: the modified file, the untracked one, the one git was told not to look at, and
    # the symlink (git's blob of a link is its target's name; the job reads the target's bytes)
    assert hasher.hashed == ["assumed.txt", "changed.txt", "link.txt", "untracked.txt"]
    assert hasher.from_git == len(CONTENTS)
    assert digests["link.txt"] == hash_object(tmp_path / "target.txt")


@needs_git
def test_rootdir_below_the_top_of_the_checkout(tmp_path: Path) -> None:
    git_repo(tmp_path, {"proj/a.txt": "a\n", "proj/sub/b.txt": "b\n", "other.txt": "o\n"})
    root = tmp_path / "proj"
    hasher = FileHasher(root, None)
    assert hasher.digests(["a.txt", "sub/b.txt"]) == {
        "a.txt": hash_object(root / "a.txt"),
        "sub/b.txt": hash_object(root / "sub/b.txt"),
    }
    assert hasher.hashed == []


@needs_git
def test_git_commands_run_once_and_lazily(tmp_path: Path) -> None:
    git_repo(tmp_path, {"a.txt": "a\n", "b.txt": "b\n"})
    hasher = FileHasher(tmp_path, None)
    assert hasher.git_runs == 0
    hasher.digests(["a.txt"])
    hasher.digests(["b.txt"])
    assert hasher.git_runs == 2  # ls-files and diff-files, once each
    assert hasher.hashed == []


def test_missing_file_has_a_digest_that_says_so(tmp_path: Path) -> None:
    assert FileHasher(tmp_path, None).digests(["gone.txt"]) == {"gone.txt": "missing"}


def test_stat_cache_is_reused_across_hashers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cache = tmp_path / "state" / "stat-cache.json"
    write(root, CONTENTS)
    first = FileHasher(root, cache, racy_window=0)
    digests = first.digests(list(CONTENTS))
    first.save()
    assert json.loads(cache.read_text())  # valid JSON, written whole
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left behind

    second = FileHasher(root, cache, racy_window=0)
    assert second.digests(list(CONTENTS)) == digests
    assert second.hashed == []


def test_stat_cache_sees_a_same_size_change(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cache = tmp_path / "stat-cache.json"
    write(root, {"a.txt": "aaaa\n", "b.txt": "bbbb\n"})
    first = FileHasher(root, cache, racy_window=0)
    before = first.digests(["a.txt", "b.txt"])
    first.save()

    stat = (root / "a.txt").stat()
    (root / "a.txt").write_text("AAAA\n")  # same size
    os.utime(root / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    second = FileHasher(root, cache, racy_window=0)
    after = second.digests(["a.txt", "b.txt"])
    assert second.hashed == ["a.txt"]
    assert after["a.txt"] != before["a.txt"]
    assert after["b.txt"] == before["b.txt"]


def test_racy_files_are_not_cached(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cache = tmp_path / "stat-cache.json"
    write(root, {"fresh.txt": "just written\n"})
    first = FileHasher(root, cache)  # the default window: a file changed in the last ~2 s
    first.digests(["fresh.txt"])
    first.save()
    second = FileHasher(root, cache)
    second.digests(["fresh.txt"])
    assert second.hashed == ["fresh.txt"]


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"version": 1, "entries": {"a.txt": 5}}'])
def test_a_bad_stat_cache_is_ignored(tmp_path: Path, content: str) -> None:
    root = tmp_path / "root"
    cache = tmp_path / "stat-cache.json"
    write(root, {"a.txt": "a\n"})
    cache.write_text(content)
    hasher = FileHasher(root, cache, racy_window=0)
    assert hasher.digests(["a.txt"]) == {"a.txt": "78981922613b2afb6025042ff6bd878ac1994e85"}
    hasher.save()
    assert FileHasher(root, cache, racy_window=0).digests(["a.txt"])
    assert json.loads(cache.read_text())["entries"]


def test_stat_cache_of_another_rootdir_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "stat-cache.json"
    write(tmp_path / "one", {"a.txt": "a\n"})
    first = FileHasher(tmp_path / "one", cache, racy_window=0)
    first.digests(["a.txt"])
    first.save()
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    second = FileHasher(tmp_path / "two", cache, racy_window=0)
    second.digests(["a.txt"])
    assert second.hashed == ["a.txt"]


def test_save_keeps_what_another_hasher_saved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cache = tmp_path / "stat-cache.json"
    write(root, {"a.txt": "a\n", "b.txt": "b\n"})
    one = FileHasher(root, cache, racy_window=0)
    two = FileHasher(root, cache, racy_window=0)
    one.digests(["a.txt"])
    two.digests(["b.txt"])
    one.save()
    two.save()
    third = FileHasher(root, cache, racy_window=0)
    third.digests(["a.txt", "b.txt"])
    assert third.hashed == []


# --- the key --------------------------------------------------------------------------

PROJECT: dict[str, str | bytes] = {"src/a.py": "a\n", "src/b.py": "b\n", "README.md": "r\n"}


def parts(root: Path, **changes: Any) -> KeyParts:
    args: dict[str, Any] = {
        "job": "test[3.12]",
        "script": b"#!/bin/sh\npytest\n",
        "block": {"inputs": ["src/**/*.py", "missing/*"], "env": {"A": "1", "B": "2"}},
        "leg": {"python": "3.12", "os": "linux"},
        "env": {"PYTHON_VERSION": "3.12.1", "CI": None},
        "rootdir": root,
        "inputs": ["src/**/*.py", "missing/*"],
        "hasher": FileHasher(root, None),
        "needs": {"build-js": "k" * 64, "lint": None},
        "needs_outputs": {"build-js": b"dist=web\n", "lint": b""},
    }
    args.update(changes)
    return key_parts(**args)


def test_key_parts_hold_hashes(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    p = parts(tmp_path)
    assert p.version == FORMAT_VERSION
    assert p.job == "test[3.12]"
    assert list(p.files) == ["src/a.py", "src/b.py"]
    assert p.unmatched == ("missing/*",)
    assert p.env["CI"] == UNSET
    assert p.needs == {"build-js": "k" * 64, "lint": UNCACHED}
    assert p.needs_outputs["lint"] == ""
    assert len(p.key()) == 64
    assert KeyParts.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_key_ignores_dict_order(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    reordered = parts(
        tmp_path,
        block={"env": {"B": "2", "A": "1"}, "inputs": ["src/**/*.py", "missing/*"]},
        leg={"os": "linux", "python": "3.12"},
        env={"CI": None, "PYTHON_VERSION": "3.12.1"},
        needs={"lint": None, "build-js": "k" * 64},
        needs_outputs={"lint": b"", "build-js": b"dist=web\n"},
    )
    assert reordered.key() == parts(tmp_path).key()


KEY_SCRIPT = """\
import json, sys
from pathlib import Path
from pytest_cidag.core.cachekey import FileHasher, key_parts
root = Path(sys.argv[1])
print(key_parts(job="j", script=b"s", block={"b": [1, 2], "a": {"y": 1, "x": 2}}, leg={"p": "1", "q": "2"},
    env={"V": "v", "W": None}, rootdir=root, inputs=["**"], hasher=FileHasher(root, None),
    needs={"n": "k", "m": None}, needs_outputs={"n": b"o=1\\n", "m": b""}).key())
"""


def test_key_is_the_same_in_another_process_and_another_directory(tmp_path: Path) -> None:
    write(tmp_path / "one", PROJECT)
    shutil.copytree(tmp_path / "one", tmp_path / "elsewhere" / "two")
    keys = [
        subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT, str(root)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for root, seed in [(tmp_path / "one", "1"), (tmp_path / "elsewhere" / "two", "2")]
    ]
    assert len(keys[0]) == 64
    assert keys[0] == keys[1]


def edit(root: Path, rel: str, content: str | None) -> dict[str, Any]:
    """Change a file of the project (``None`` removes it); no other part changes."""
    if content is None:
        (root / rel).unlink()
    else:
        (root / rel).write_text(content)
    return {}


CHANGES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "job": lambda root: {"job": "test[3.13]"},
    "script": lambda root: {"script": b"#!/bin/sh\npytest -x\n"},
    "block": lambda root: {"block": {"inputs": ["src/**/*.py", "missing/*"], "env": {"A": "1", "B": "3"}}},
    "leg": lambda root: {"leg": {"python": "3.13", "os": "linux"}},
    "env": lambda root: {"env": {"PYTHON_VERSION": "3.12.2", "CI": None}},
    "env-set": lambda root: {"env": {"PYTHON_VERSION": "3.12.1", "CI": ""}},
    "files": lambda root: edit(root, "src/a.py", "A\n"),
    "files-added": lambda root: edit(root, "src/c.py", "c\n"),
    "files-removed": lambda root: edit(root, "src/b.py", None),
    "unmatched": lambda root: {"inputs": ["src/**/*.py", "missing/*", "nope"]},
    "needs": lambda root: {"needs": {"build-js": "j" * 64, "lint": None}},
    "needs-cached": lambda root: {"needs": {"build-js": "k" * 64, "lint": "l" * 64}},
    "needs_outputs": lambda root: {"needs_outputs": {"build-js": b"dist=web2\n", "lint": b""}},
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_single_change_changes_the_key(tmp_path: Path, change: str) -> None:
    write(tmp_path, PROJECT)
    before = parts(tmp_path)
    after = parts(tmp_path, **CHANGES[change](tmp_path))
    assert after.key() != before.key()
    assert explain(after, before)


def test_format_version_changes_the_key(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    now = parts(tmp_path)
    old = dataclasses.replace(now, version=FORMAT_VERSION - 1)
    assert old.key() != now.key()
    assert explain(now, old) == [f"cache format changed ({FORMAT_VERSION - 1} -> {FORMAT_VERSION})"]


def test_env_values_never_appear(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    p = parts(tmp_path, env={"TOKEN": "s3cret-value", "EMPTY": ""})
    text = json.dumps(p.to_json())
    assert "s3cret-value" not in text
    assert "TOKEN" in text
    assert explain(parts(tmp_path, env={"TOKEN": "other", "EMPTY": ""}), p) == ["env changed: TOKEN"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 1},
        "not a dict",
        {**dict.fromkeys(["job", "script", "block"], "x"), "leg": [], "env": {}, "files": {}},
    ],
)
def test_from_json_refuses_what_it_cannot_read(data: Any) -> None:
    with pytest.raises(ValueError, match="cache key"):
        KeyParts.from_json(data)


# --- explain and nearest --------------------------------------------------------------


def base() -> KeyParts:
    return KeyParts(
        job="test[3.12]",
        script="s1",
        block="b1",
        leg={"python": "3.12"},
        env={"PYTHON_VERSION": "e1"},
        files={"src/b.py": "1", "src/c.py": "1"},
        unmatched=(),
        needs={"build-js": "k1"},
        needs_outputs={"build-js": "o1"},
    )


@pytest.mark.parametrize(
    ("changes", "lines"),
    [
        ({}, []),
        ({"script": "s2"}, ["script changed"]),
        ({"block": "b2"}, ["block changed"]),
        ({"leg": {"python": "3.11"}}, ["matrix leg changed: python 3.12 -> 3.11"]),
        ({"leg": {}}, ["matrix leg changed: python 3.12 -> (none)"]),
        (
            {"files": {"src/a.py": "1", "src/c.py": "2"}},
            ["file added: src/a.py", "file removed: src/b.py", "file changed: src/c.py"],
        ),
        ({"env": {"PYTHON_VERSION": "e2"}}, ["env changed: PYTHON_VERSION"]),
        ({"env": {}}, ["env changed: PYTHON_VERSION"]),
        ({"unmatched": ("x/*",)}, ["input pattern matches nothing: x/*"]),
        ({"needs": {"build-js": "k2"}}, ["upstream key changed: build-js"]),
        ({"needs": {"build-js": "k1", "lint": "k3"}}, ["upstream added: lint"]),
        ({"needs_outputs": {"build-js": "o2"}}, ["upstream outputs changed: build-js"]),
        ({"job": "test[3.11]"}, ["job changed: test[3.12] -> test[3.11]"]),
        ({"version": FORMAT_VERSION + 1}, [f"cache format changed ({FORMAT_VERSION} -> {FORMAT_VERSION + 1})"]),
    ],
)
def test_explain(changes: dict[str, Any], lines: list[str]) -> None:
    stored = base()
    now = dataclasses.replace(stored, **changes)
    assert explain(now, stored) == lines
    assert (now.key() == stored.key()) == (not lines)


def test_explain_in_a_stable_order() -> None:
    stored = base()
    now = dataclasses.replace(
        stored, script="s2", env={"PYTHON_VERSION": "e2"}, needs={"build-js": "k2"}, files={"src/b.py": "2"}
    )
    assert explain(now, stored) == [
        "script changed",
        "file removed: src/c.py",
        "file changed: src/b.py",
        "env changed: PYTHON_VERSION",
        "upstream key changed: build-js",
    ]


def test_explain_stored_input_no_longer_unmatched() -> None:
    stored = dataclasses.replace(base(), unmatched=("x/*",))
    assert explain(base(), stored) == ["input pattern matches files now: x/*"]


def test_nearest() -> None:
    now = base()
    one = dataclasses.replace(now, script="s2")
    two = dataclasses.replace(now, script="s2", block="b2")
    other_job = dataclasses.replace(now, job="lint")
    assert nearest(now, []) is None
    assert nearest(now, [other_job]) is None
    assert nearest(now, [two, one, two]) is one
    tie = dataclasses.replace(now, block="b3")
    assert nearest(now, [one, tie]) is tie  # ties: the last one (the newest, as the store lists them)
    assert nearest(now, [one, tie, now]) is now


def test_importing_the_module_does_not_import_pathspec() -> None:
    # a run without caching must not pay for pathspec: it is imported where patterns are matched
    code = "import sys, pytest_cidag.core.cachekey\nassert 'pathspec' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)
