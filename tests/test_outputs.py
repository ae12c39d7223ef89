"""The outputs file parser (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cidag.core.outputs import OutputError, needs_environ, parse_outputs


def parse(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "job.outputs"
    path.write_text(text)
    return parse_outputs(path)


def test_lines_heredocs_comments(tmp_path: Path) -> None:
    text = "# a comment\nwheel=dist/x.whl\n\nnotes<<EOF\none\ntwo=2\nEOF\nempty=\n"
    assert parse(tmp_path, text) == {"wheel": "dist/x.whl", "notes": "one\ntwo=2", "empty": ""}
    assert needs_environ("build-wheel", {"sha-256": "x"}) == {"CIDAG_NEEDS_BUILD_WHEEL_SHA_256": "x"}


def test_missing_file_means_no_outputs(tmp_path: Path) -> None:
    assert parse_outputs(tmp_path / "absent") == {}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("ok=1\nnot a pair\n", 2, "'not a pair' is not a key=value line"),
        ("ok=1\nbad key<<EOF\na\nb\nEOF\n", 2, "'bad key' is not a valid output name"),
        ("a-b=1\nx<<EOF\n1\nEOF\na_b<<END\nv\nEND\n", 5, "outputs 'a-b' and 'a_b' would both be *_A_B"),
        ("notes<<EOF\nnever closed\n", 1, "'notes<<EOF' has no closing line 'EOF'"),
    ],
)
def test_errors_name_the_line_of_the_key(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(OutputError) as excinfo:
        parse(tmp_path, text)
    assert (excinfo.value.line, excinfo.value.message[: len(message)]) == (line, message)
