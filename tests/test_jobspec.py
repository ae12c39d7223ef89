"""The metadata block parser: pure, so tested directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cidag.core.jobspec import (
    MAX_ID_LENGTH,
    MAX_RETRIES,
    JobSpec,
    JobSpecError,
    attempt_log_name,
    command_for,
    find_block,
    parse_text,
)

P = Path("cijobs/build.sh")
B = "b"
WHOLE = "'retries' must be a whole number from 0 to 10, got"
AT_LEAST_0 = "'retry_delay' must be a number of seconds, at least 0, got"


def parse(text: str) -> JobSpec:
    return parse_text(text, P)


def error(text: str) -> JobSpecError:
    with pytest.raises(JobSpecError) as excinfo:
        parse(text)
    return excinfo.value


FULL = """\
#!/usr/bin/env bash
# /// cidag
# needs = ["build-js"]
# timeout = 120
# markers = ["playwright", "slow"]
# env = { NODE_ENV = "test" }
# matrix = { python = ["3.11", "3.12", "3.13"] }
# nice = 10
# cwd = "web"
# ///
echo hi
"""


def test_full_block() -> None:
    spec = parse(FULL)
    assert spec.name == "build"
    assert spec.needs == ("build-js",)
    assert spec.timeout == 120.0
    assert spec.markers == ("playwright", "slow")
    assert dict(spec.env) == {"NODE_ENV": "test"}
    assert dict(spec.matrix) == {"python": ("3.11", "3.12", "3.13")}
    assert spec.nice == 10
    assert spec.cwd == "web"
    assert spec.line == 2


def test_no_block_means_defaults() -> None:
    spec = parse("echo hi\n")
    assert spec == JobSpec(path=P, name="build")
    assert [leg.id for leg in spec.legs()] == ["build"]


def test_name_default_keeps_other_suffixes() -> None:
    assert parse_text("", Path("cijobs/deploy.py")).name == "deploy.py"


def test_matrix_legs_are_the_product_in_declaration_order() -> None:
    spec = parse('# /// cidag\n# matrix = { py = ["3.11", "3.12"], os = ["linux", 7] }\n# ///\n')
    legs = spec.legs()
    assert [leg.id for leg in legs] == ["build[3.11-linux]", "build[3.11-7]", "build[3.12-linux]", "build[3.12-7]"]
    assert legs[1].environ() == {"CIDAG_MATRIX_PY": "3.11", "CIDAG_MATRIX_OS": "7"}


def test_needs_accepts_a_single_string() -> None:
    assert parse('# /// cidag\n# needs = "a"\n# ///\n').needs == ("a",)


def test_empty_comment_lines_inside_the_block() -> None:
    spec = parse("# /// cidag\n# timeout = 3\n#\n# nice = 1\n# ///\n")
    assert (spec.timeout, spec.nice) == (3.0, 1)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('# /// cidag\n# neds = ["a"]\n# ///\n', 2, "unknown key 'neds' (did you mean 'needs'?)"),
        ('# /// cidag\n# timeout = 5\n# inputs = "src"\n# ///\n', 3, "'inputs' must be an array of strings"),
        (
            '# /// cidag\n# inputs = ["src/**", "/etc/passwd"]\n# ///\n',
            2,
            "'inputs' pattern '/etc/passwd' is an absolute path: patterns are relative to the rootdir",
        ),
        ('# /// cidag\n# inputs = ["!../x"]\n# ///\n', 2, "'inputs' pattern '!../x' leads outside the rootdir"),
        ('# /// cidag\n# outputs = ["dist/../../x"]\n# ///\n', 2, "'outputs' pattern 'dist/../../x' leads outside"),
        ('# /// cidag\n# outputs = [""]\n# ///\n', 2, "'outputs' pattern '' is empty"),
        ('# /// cidag\n# env_inputs = ["A-B"]\n# ///\n', 2, "'env_inputs' name 'A-B' is not a valid environment"),
        ("#!/bin/sh\n# /// cidag\n# timeout = 5\n# ///\n# /// cidag\n# ///\n", 5, "a second '# /// cidag' block"),
        ("# /// cidag\n# timeout = 5\n", 1, "block is not closed: add a line '# ///'"),
        ("# /// cidag\n# timeout = 5\necho hi\n# ///\n", 3, "opened at line 1 is not closed before this line"),
        ("# /// cidag\n# timeout = 5\n# needs = [\n# ///\n", 3, "invalid TOML"),
        ("# /// cidag\n# timeout = 5\n# needs = [1,, 2]\n# ///\n", 3, "invalid TOML"),
        ('# /// cidag\n# timeout = "10"\n# ///\n', 2, "'timeout' must be a number of seconds, got a string: '10'"),
        ("# /// cidag\n# timeout = -1\n# ///\n", 2, "'timeout' must be a positive number"),
        ("# /// cidag\n# timeout = 0\n# ///\n", 2, "'timeout' must be a positive number"),
        ("# /// cidag\n# timeout = 99999999\n# ///\n", 2, "more than a week"),
        ("# /// cidag\n# timeout = true\n# ///\n", 2, "'timeout' must be a number of seconds, got a boolean"),
        ("# /// cidag\n\n# ///\n", 2, "not closed before this line"),
        ("# /// cidag\n# needs = [1]\n# ///\n", 2, "'needs' must be an array of strings"),
        ('# /// cidag\n# needs = ["a", "a"]\n# ///\n', 2, "'needs' names 'a' twice"),
        ('# /// cidag\n# markers = ["not-valid"]\n# ///\n', 2, "is not a valid pytest marker name"),
        (
            "# /// cidag\n# env = { N = 1 }\n# ///\n",
            2,
            "'env' value of N must be a string, got an integer: 1 (quote it",
        ),
        ('# /// cidag\n# [env]\n# "1X" = "a"\n# ///\n', 2, "is not a valid environment variable name"),
        ("# /// cidag\n# matrix = {}\n# ///\n", 2, "'matrix' must be a non-empty table"),
        ("# /// cidag\n# matrix = { py = [] }\n# ///\n", 2, "'matrix' entry 'py' must be a non-empty array"),
        ('# /// cidag\n# matrix = { py = ["a b"] }\n# ///\n', 2, "cannot be part of a job id"),
        ('# /// cidag\n# matrix = { py = ["1", 1] }\n# ///\n', 2, "lists '1' twice"),
        ('# /// cidag\n# matrix = { py = ["1"], PY = ["2"] }\n# ///\n', 2, "collide once upper-cased"),
        ('# /// cidag\n# cwd = "/abs"\n# ///\n', 2, "'cwd' must be relative to the rootdir"),
        ("# /// cidag\n# nice = 40\n# ///\n", 2, "'nice' must be an integer from -20 to 19, got 40"),
        ("# /// cidag\n# timeout = 5\n# retries = 11\n# ///\n", 3, f"{WHOLE} 11"),
        ("# /// cidag\n# retries = -1\n# ///\n", 2, f"{WHOLE} -1"),
        ('# /// cidag\n# retries = "x"\n# ///\n', 2, f"{WHOLE} a string: 'x'"),
        ("# /// cidag\n# retries = 1.5\n# ///\n", 2, f"{WHOLE} a number: 1.5"),
        ("# /// cidag\n# retries = true\n# ///\n", 2, f"{WHOLE} a boolean"),
        ("# /// cidag\n# retry_delay = -1\n# ///\n", 2, f"{AT_LEAST_0} -1"),
        ("# /// cidag\n# retry_delay = nan\n# ///\n", 2, f"{AT_LEAST_0} nan"),
        ("# /// cidag\n# retry_delay = inf\n# ///\n", 2, f"{AT_LEAST_0} inf"),
        ("# /// cidag\n# retry_delay = 3601\n# ///\n", 2, "'retry_delay' of 3601 seconds is more than an hour (3600)"),
        ('# /// cidag\n# retry_delay = "5s"\n# ///\n', 2, "'retry_delay' must be a number of seconds, got a string"),
        ("# /// cidag\n# retry = 2\n# ///\n", 2, "unknown key 'retry' (did you mean 'retries' or 'retry_delay'?)"),
        ("# /// cidag\n# timeout = 1" + "0" * 400 + "\n# ///\n", 2, "'timeout' of 1000000000... (401 digits) seconds"),
        (
            '# /// cidag\n# matrix = { x = ["a-b", "a"], y = ["c", "b-c"] }\n# ///\n',
            2,
            "'matrix' combinations ('a-b', 'c') and ('a', 'b-c') both make the leg id [a-b-c]",
        ),
        ("# /// cidag\n# matrix = { python = [3.9, 3.10] }\n# ///\n", 2, "'matrix' value 3.9 of 'python' is a float"),
        ('# /// cidag\n# name = "has space"\n# ///\n', 2, "name 'has space' is not a valid job name"),
        ("# /// cidag\n# name = 3\n# ///\n", 2, "'name' must be a string, got an integer"),
        # what the job's environment would refuse (issue 13, F4)
        ('# /// cidag\n# env = { A = "x\\u0000y" }\n# ///\n', 2, "'env' value of A holds a NUL character"),
        ('# /// cidag\n# [env]\n# "A\\u0000" = "x"\n# ///\n', 2, "'env' key 'A\\x00' is not a valid environment"),
        ('# /// cidag\n# [env]\n# "A=B" = "x"\n# ///\n', 2, "'env' key 'A=B' is not a valid environment variable"),
        ('# /// cidag\n# [env]\n# "A\\n" = "x"\n# ///\n', 2, "'env' key 'A\\n' is not a valid environment"),
        ('# /// cidag\n# matrix = { py = ["3.11\\n"] }\n# ///\n', 2, "'matrix' value '3.11\\n' of 'py' cannot be"),
        ('# /// cidag\n# matrix = { py = ["3\\u0000"] }\n# ///\n', 2, "'matrix' value '3\\x00' of 'py' cannot be"),
        ('# /// cidag\n# name = "a\\n"\n# ///\n', 2, "name 'a\\n' is not a valid job name"),
        ('# /// cidag\n# markers = ["slow\\n"]\n# ///\n', 2, "marker 'slow\\n' is not a valid pytest marker"),
        ('# /// cidag\n# cwd = "web\\u0000"\n# ///\n', 2, "'cwd' 'web\\x00' holds a NUL character"),
        # names that would not fit the run directory's file names (F3)
        (f'# /// cidag\n# name = "{B * 248}"\n# ///\n', 2, f"job id '{B * 20}...' is 248 characters long"),
        (
            f'# /// cidag\n# name = "{B * 240}"\n# matrix = {{ x = ["a", "abc"], y = ["1", "22"] }}\n# ///\n',
            3,
            f"job id '{B * 20}...' is 248 characters long",
        ),
        # a line that looks like an opening but is not one: never ignored (F5)
        (
            "  # /// cidag\n# timeout = 1\n# ///\n",
            1,
            "'  # /// cidag' is not read as the start of a '# /// cidag' block",
        ),
        ("# /// CIDAG\n# timeout = 1\n# ///\n", 1, "'# /// CIDAG' is not read as the start of a '# /// cidag' block"),
        ("# /// cidag # CI\n# timeout = 1\n# ///\n", 1, "'# /// cidag # CI' is not read as the start of a"),
        ("echo\n\ufeff# /// cidag\n# timeout = 1\n# ///\n", 2, "'\\ufeff# /// cidag' is not read as the start of a"),
        # the size of a matrix (F11)
        (
            "# /// cidag\n# matrix = { a = [%s], b = [%s], c = [%s] }\n# ///\n"
            % ((", ".join(map(str, range(100))),) * 3),
            2,
            "'matrix' makes 1000000 legs (100 x 100 x 100), more than the 256 a job may have",
        ),
    ],
)
def test_bad_blocks_name_file_line_and_key(text: str, line: int, message: str) -> None:
    exc = error(text)
    assert exc.line == line
    assert message in exc.message
    assert str(exc).startswith(f"{P}:{line}: ")


def test_toml_error_points_at_the_file_line() -> None:
    exc = error('#!/bin/sh\n# /// cidag\n# timeout = 5\n# needs = ["a" "b"]\n# ///\n')
    assert exc.line == 4
    assert "line 2" not in exc.message  # the TOML-relative line is translated, not leaked


def test_other_blocks_are_ignored() -> None:
    spec = parse('# /// script\n# dependencies = ["x"]\n# ///\n')
    assert spec.name == "build"


def test_find_block_reports_lines() -> None:
    block = find_block("#!/bin/sh\n# /// cidag\n# a = 1\n# ///\n", P)
    assert block is not None
    assert (block.start, block.end, block.toml) == (2, 4, "a = 1\n")


def test_command_follows_the_shebang_like_the_kernel(tmp_path: Path) -> None:
    env_style = tmp_path / "a"
    env_style.write_text("#!/usr/bin/env -S python3 -u\nprint(1)\n")
    assert command_for(env_style) == ["/usr/bin/env", "-S python3 -u", str(env_style)]
    plain = tmp_path / "b.sh"
    plain.write_text("echo hi\n")
    assert command_for(plain) == ["bash", str(plain)]


def test_a_file_name_too_long_for_the_log_file_is_an_error_at_line_1() -> None:
    exc = parse_error_for(Path("cijobs/" + B * 250 + ".sh"), "echo hi\n")
    assert (exc.line, exc.message.split(";")[0]) == (1, f"job id '{B * 20}...' is 250 characters long")
    longest = B * MAX_ID_LENGTH  # '<id>@attempt10.log', a retried job's earlier log, fills 255 bytes
    assert len(longest + attempt_log_name("", MAX_RETRIES)) == 255
    assert parse_text("echo hi\n", Path("cijobs/" + longest + ".sh")).name == longest
    exc = parse_error_for(Path("cijobs/" + longest + "b.sh"), "echo hi\n")
    assert "('<id>@attempt10.log' must fit in 255 bytes)" in exc.message


def test_matrix_at_the_cap_is_fine() -> None:
    values = ", ".join(f'"{i}"' for i in range(16))
    spec = parse(f"# /// cidag\n# matrix = {{ a = [{values}], b = [{values}] }}\n# ///\n")
    assert len(spec.legs()) == 256


def parse_error_for(path: Path, text: str) -> JobSpecError:
    with pytest.raises(JobSpecError) as excinfo:
        parse_text(text, path)
    return excinfo.value


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff# /// cidag\n# timeout = 1\n# ///\n",
        "#!/bin/sh\r\n# /// cidag\r\n# timeout = 1\r\n# ///\r\n",
        "# /// cidag \t\n# timeout = 1 \n# /// \n",
        "#///cidag\n# timeout = 1\n#///\n",
    ],
    ids=["utf8-bom", "crlf", "trailing-spaces", "no-spaces"],
)
def test_blocks_that_used_to_hide_are_honoured(text: str) -> None:
    assert parse(text).timeout == 1.0


@pytest.mark.parametrize("cwd", ["../..", "..", "web/../..", "out", "out/x", "web/up"])
def test_cwd_outside_the_rootdir_is_an_error(tmp_path: Path, cwd: str) -> None:
    (tmp_path / "root/web").mkdir(parents=True)
    (tmp_path / "root/out").symlink_to(tmp_path)
    (tmp_path / "root/web/up").symlink_to("../..")
    with pytest.raises(JobSpecError) as excinfo:
        parse_text(f'# /// cidag\n# cwd = "{cwd}"\n# ///\n', P, root=tmp_path / "root")
    assert excinfo.value.line == 2
    assert (
        excinfo.value.message
        == f"'cwd' {cwd!r} leads outside the rootdir (symlinks followed): name a directory under it"
    )


@pytest.mark.parametrize("cwd", [".", "web", "web/../web", "missing/later", "in"])
def test_cwd_under_the_rootdir_is_fine(tmp_path: Path, cwd: str) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "in").symlink_to("web")
    assert parse_text(f'# /// cidag\n# cwd = "{cwd}"\n# ///\n', P, root=tmp_path).cwd == cwd


def test_cache_keys_of_the_block() -> None:
    spec = parse(
        '# /// cidag\n# inputs = ["src/**/*.py", "!src/**/test_*.py"]\n# outputs = ["dist/*.whl"]\n'
        '# env_inputs = ["PY", "PY"]\n# ///\n'
    )
    assert spec.cacheable
    assert spec.inputs == ("src/**/*.py", "!src/**/test_*.py")
    assert spec.outputs == ("dist/*.whl",)
    assert spec.env_inputs == ("PY",)
    assert parse("# /// cidag\n# inputs = []\n# ///\n").cacheable  # its script, block and needs alone
    assert not parse("# /// cidag\n# timeout = 5\n# ///\n").cacheable


def test_retries_and_their_delay() -> None:
    spec = parse("# /// cidag\n# retries = 2\n# retry_delay = 1\n# ///\n")
    assert (spec.retries, spec.retry_delay) == (2, 1.0)
    assert isinstance(spec.retry_delay, float)
    assert parse(f"# /// cidag\n# retries = {MAX_RETRIES}\n# retry_delay = 0\n# ///\n").retries == MAX_RETRIES
    unset = parse("echo hi\n")  # None: the options decide
    assert (unset.retries, unset.retry_delay) == (None, None)


def test_how_often_a_job_is_tried_is_not_part_of_its_cache_key() -> None:
    """Retrying changes how often a job runs, not what it does: the key stays as it was."""
    plain = parse("# /// cidag\n# inputs = []\n# ///\n").block_data()
    retried = parse("# /// cidag\n# inputs = []\n# retries = 3\n# retry_delay = 2\n# ///\n").block_data()
    assert plain == retried
    assert "retries" not in plain and "retry_delay" not in plain


def test_block_data_is_plain_and_leaves_out_where_the_file_is() -> None:
    data = parse('# /// cidag\n# env = { B = "2", A = "1" }\n# matrix = { py = ["3.11"] }\n# ///\n').block_data()
    assert "path" not in data and "line" not in data
    assert data["env"] == {"A": "1", "B": "2"} and list(data["env"]) == ["A", "B"]
    assert data["matrix"] == {"py": ["3.11"]}
    assert json.dumps(data, sort_keys=True)  # JSON-able: it becomes part of a cache key
