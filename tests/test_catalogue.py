"""Runs every entry of docs/errors.md and checks the exact lines it documents."""

from __future__ import annotations

import re
import shlex
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "errors.md"
#: A file of the entry's project; a ``symlink`` block is a symbolic link to the path it holds.
FILE_RE = re.compile(r"^`(?P<path>[^`]+)`\n```(?P<kind>sh|python|json|symlink)\n(?P<body>.*?)```", re.M | re.S)
#: pytest, or the report command (the installed console script, as a user runs it); in an
#: entry the catalogue does not run, also python or dagster.
COMMAND_RE = re.compile(
    r"^`(?P<command>(?:pytest|cidag-report|python|dagster)\b[^`]*)`\n```text\n(?P<lines>.*?)```", re.M | re.S
)
CIDAG_REPORT = Path(sysconfig.get_path("scripts")) / "cidag-report"


#: An entry whose prose says this needs what a catalogue run cannot set up (a mount); the
#: test file it names checks its lines instead.
NOT_RUN = "Not run by the catalogue"


@dataclass
class Entry:
    title: str
    files: dict[str, str]
    links: dict[str, str]
    args: list[str]
    expected: list[str]
    runs_here: bool = True
    program: str = "pytest"


def entries() -> list[Entry]:
    out = []
    for section in DOC.read_text().split("\n### ")[1:]:
        title, _, rest = section.partition("\n")
        files = {m["path"]: m["body"] for m in FILE_RE.finditer(rest) if m["kind"] != "symlink"}
        links = {m["path"]: m["body"].strip() for m in FILE_RE.finditer(rest) if m["kind"] == "symlink"}
        command = COMMAND_RE.search(rest)
        assert command is not None, f"entry {title!r} has no command"
        program, *args = shlex.split(command["command"])
        expected = command["lines"].splitlines()
        runs_here = NOT_RUN not in rest
        assert not runs_here or program in ("pytest", "cidag-report"), f"entry {title!r}: only pytest runs here"
        out.append(Entry(title, files, links, args, expected, runs_here=runs_here, program=program))
    return out


def entry(title: str) -> Entry:
    """The entry titled ``title``: a test that checks an entry's lines takes them from here."""
    return next(e for e in entries() if e.title == title)


def test_the_catalogue_is_complete() -> None:
    titles = {e.title for e in entries()}
    assert len(titles) >= 20
    for needed in ("Invalid TOML", "Unknown key", "A job that needs itself", "Two jobs with one name"):
        assert needed in titles
    tests = Path(__file__).parent
    for entry in entries():
        if not entry.runs_here:  # the file it names checks its lines
            [named] = re.findall(r"`(tests/test_\w+\.py)`", DOC.read_text().split(f"### {entry.title}\n")[1])[:1]
            assert f'entry("{entry.title}")' in (tests.parent / named).read_text(), entry.title


@pytest.mark.parametrize("entry", [e for e in entries() if e.runs_here], ids=lambda e: e.title)
def test_documented_message(pytester: pytest.Pytester, entry: Entry) -> None:
    for path, body in entry.files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    for path, to in entry.links.items():
        pytester.path.joinpath(path).symlink_to(to)
    # a real process: the messages are what a user sees from the command line
    if entry.program == "cidag-report":
        result = pytester.run(CIDAG_REPORT, *entry.args)
    else:
        result = pytester.runpytest_subprocess(*entry.args)
    # argparse names the program as it was started: `pytest` for a user, `python -m pytest` here
    lines = [line.replace("python -m pytest", "pytest") for line in result.outlines + result.errlines]
    for expected in entry.expected:
        pattern = re.escape(expected).replace(r"\*", ".*")
        assert any(re.fullmatch(pattern, line) for line in lines), f"{expected!r} not in:\n" + "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)
    assert result.ret != 0
