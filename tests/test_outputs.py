"""The outputs file parser (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cidag.core import graph, outputs
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


# --- caps, and the cost of parsing ----------------------------------------------------------


def test_a_big_file_within_the_caps_parses(tmp_path: Path) -> None:
    """As many outputs as allowed, a file close to the size cap: every one is read."""
    value = "v" * 1000
    text = "".join(f"key-{i:04d}={value}\n" for i in range(outputs.MAX_OUTPUTS))
    assert len(text) < outputs.MAX_FILE_BYTES
    parsed = parse(tmp_path, text)
    assert len(parsed) == outputs.MAX_OUTPUTS
    assert parsed["key-0999"] == value


def test_parsing_checks_name_clashes_once_per_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clash check maps each output's name once: the parse is linear in the outputs
    (checking every pair made 16 000 outputs take minutes)."""
    calls = 0
    real = graph.env_name

    def counting(label: str) -> str:
        nonlocal calls
        calls += 1
        return real(label)

    monkeypatch.setattr(outputs, "env_name", counting)
    parse(tmp_path, "".join(f"key-{i:04d}=x\n" for i in range(outputs.MAX_OUTPUTS)))
    assert calls <= 2 * outputs.MAX_OUTPUTS


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(outputs.OutputLimit) as excinfo:
        parse(tmp_path, "a=" + "x" * outputs.MAX_FILE_BYTES + "\n")
    assert excinfo.value.describe("job.outputs") == (
        f"outputs file job.outputs is {outputs.MAX_FILE_BYTES + 3} bytes, over the cap of "
        f"{outputs.MAX_FILE_BYTES} (1 MiB, as GitHub Actions caps a job's outputs): "
        "write big data to a file under $CIDAG_RUN_DIR and output its path"
    )


def test_more_outputs_than_the_cap_are_refused(tmp_path: Path) -> None:
    with pytest.raises(outputs.OutputLimit) as excinfo:
        parse(tmp_path, "".join(f"k{i}=x\n" for i in range(outputs.MAX_OUTPUTS + 5)))
    assert excinfo.value.describe("job.outputs").startswith(
        f"outputs file job.outputs has {outputs.MAX_OUTPUTS + 5} outputs, over the cap of {outputs.MAX_OUTPUTS}"
    )


def test_a_value_too_big_for_one_environment_variable_is_refused(tmp_path: Path) -> None:
    # CIDAG_NEEDS_BUILD_BLOB=value and its NUL must fit Linux's MAX_ARG_STRLEN
    room = outputs.MAX_VARIABLE_BYTES - len("CIDAG_NEEDS_BUILD_BLOB=") - 1
    path = tmp_path / "build.outputs"
    path.write_text(f"ok=1\nblob={'x' * room}\n")
    assert parse_outputs(path, "build")["blob"] == "x" * room
    path.write_text(f"ok=1\nblob={'x' * (room + 1)}\n")
    with pytest.raises(outputs.OutputLimit) as excinfo:
        parse_outputs(path, "build")
    assert excinfo.value.line == 2
    assert excinfo.value.describe("build.outputs") == (
        f"output 'blob' at build.outputs:2 is {room + 1} bytes, over the {room} that CIDAG_NEEDS_BUILD_BLOB "
        f"can hold (Linux caps one environment variable at {outputs.MAX_VARIABLE_BYTES} bytes, 128 KiB): "
        "write big data to a file under $CIDAG_RUN_DIR and output its path"
    )
