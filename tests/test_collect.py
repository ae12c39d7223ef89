"""Collection: which files are jobs, node ids, matrix legs, markers, bad metadata blocks."""

from __future__ import annotations

import pytest

from tests.conftest import JobWriter


def test_collect_only_lists_jobs_by_node_id(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build-js", "true")
    job("test-python", "true", matrix='{ python = ["3.11", "3.12", "3.13"] }')
    result = pytester.runpytest("cijobs", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "cijobs/build-js.sh::build-js",
            "cijobs/test-python.sh::test-python[3.11]",
            "cijobs/test-python.sh::test-python[3.12]",
            "cijobs/test-python.sh::test-python[3.13]",
            "4 tests collected in *",
        ]
    )
    assert result.ret == 0


def test_block_name_overrides_the_file_name(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("x", "true", name='"lint-python"')
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["cijobs/x.sh::lint-python"])


def test_root_run_collects_jobs_but_not_scripts_elsewhere(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("lint", "true")
    job("nested", "true", directory="cijobs/sub")
    job("helper", "true", directory="scripts")  # not a job directory
    job("_lib", "true")  # a sourced helper, by convention
    job("helper2", "true", directory="cijobs/_lib")  # so is everything in a _ directory
    job("deploy", "true", filename="deploy", shebang="/bin/sh", executable=True)
    job("notexec", "true", filename="notexec", shebang="/bin/sh")  # no .sh, not executable
    job("data", "", filename="data.txt")
    pytester.makepyfile(test_ok="def test_ok(): pass")
    result = pytester.runpytest("--collect-only", "-q")
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["cijobs/deploy::deploy", "cijobs/lint.sh::lint", "cijobs/sub/nested.sh::nested"])
    assert "test_ok.py::test_ok" in out
    for absent in ("helper", "_lib", "notexec", "data"):
        assert absent not in out
    assert "4 tests collected" in out


def test_cidag_paths_ini(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makeini("[pytest]\ncidag_paths = ci/jobs other\n")
    job("a", "true", directory="ci/jobs")
    job("b", "true", directory="other")
    job("c", "true", directory="cijobs")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["ci/jobs/a.sh::a", "other/b.sh::b", "2 tests collected*"])


def test_a_script_named_on_the_command_line_is_a_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("one-off", "true", directory="scripts")
    result = pytester.runpytest("scripts/one-off.sh", "-q")
    result.assert_outcomes(passed=1)


def test_python_test_modules_in_a_job_dir_stay_python(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("tool", "print(1)", filename="tool.py", shebang="/usr/bin/env python3", executable=True)
    job("t", "def test_x(): pass", filename="test_x.py", shebang="/usr/bin/env python3", executable=True)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["cijobs/test_x.py::test_x", "cijobs/tool.py::tool.py"])


def test_block_markers_are_registered_and_selectable(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("e2e", "true", markers='["playwright", "slow"]')
    job("unit", "true")
    result = pytester.runpytest("--strict-markers", "-m", "not slow", "-q")
    result.assert_outcomes(passed=1, deselected=1)
    result = pytester.runpytest("--strict-markers", "-m", "playwright", "-q")
    result.assert_outcomes(passed=1, deselected=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.playwright: declared by a cidag job"])


def test_k_selects_by_job_name_and_matrix_value(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("test-python", "true", matrix='{ python = ["3.11", "3.12"] }')
    job("lint", "true")
    result = pytester.runpytest("-k", "test-python and 3.12", "-q", "--collect-only")
    result.stdout.fnmatch_lines(["cijobs/test-python.sh::test-python[3.12]", "1/3 tests collected (2 deselected)*"])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"neds": '["a"]'}, "cijobs/bad.sh:2: unknown key 'neds' (did you mean 'needs'?)*"),
        ({"timeout": '"10"'}, "cijobs/bad.sh:2: 'timeout' must be a number of seconds, got a string: '10'"),
        ({"timeout": "1", "needs": "[a"}, "cijobs/bad.sh:3: invalid TOML in the 'cidag' block: *"),
    ],
)
def test_bad_block_is_a_collection_error_naming_file_and_line(
    pytester: pytest.Pytester, job: JobWriter, block: dict[str, str], message: str
) -> None:
    job("bad", "true", **block)
    job("good", "true")
    result = pytester.runpytest("-q")
    result.stdout.fnmatch_lines(["*ERROR collecting cijobs/bad.sh*", message, "*1 error*"])
    assert "Traceback" not in result.stdout.str()
    assert "pytest_cidag" not in result.stdout.str()  # no plugin frames
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_unterminated_block(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("cijobs").mkdir()
    pytester.path.joinpath("cijobs/open.sh").write_text("#!/bin/bash\n# /// cidag\n# timeout = 3\necho hi\n")
    result = pytester.runpytest("-q")
    result.stdout.fnmatch_lines(["cijobs/open.sh:4: the '# /// cidag' block opened at line 2 is not closed*"])


def test_reportinfo_points_at_the_block(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("with-block", "true", shebang="/bin/bash", timeout="5")
    job("no-block", "true")
    items, _ = pytester.inline_genitems()
    by_name = {item.name: item for item in items}
    assert by_name["with-block"].location == ("cijobs/with-block.sh", 1, "job.with-block")
    assert by_name["no-block"].location == ("cijobs/no-block.sh", 0, "job.no-block")
    assert by_name["with-block"].nodeid == "cijobs/with-block.sh::with-block"


#: Job files that used to fail at run time (or make a million items), each with its message.
BAD_INPUTS = {
    # F3: the log file's name would be too long
    "b" * 250 + ".sh": ("echo hi\n", f"cijobs/{'b' * 250}.sh:1: job id '{'b' * 20}...' is 250 characters long; *"),
    # F4: the environment cannot hold a NUL
    "nul.sh": (
        '# /// cidag\n# env = { A = "x\\u0000y" }\n# ///\n',
        "cijobs/nul.sh:2: 'env' value of A holds a NUL character*",
    ),
    # F5: a line that looks like a block's opening is never ignored
    "indented.sh": (
        '  # /// cidag\n# needs = ["good"]\n# ///\n',
        "cijobs/indented.sh:1: '  # /// cidag' is not read as the start of a '# /// cidag' block*",
    ),
    # F6: a working directory outside the rootdir
    "up.sh": ('# /// cidag\n# cwd = "../.."\n# ///\n', "cijobs/up.sh:2: 'cwd' '../..' leads outside the rootdir*"),
    # F11: the legs are counted before they are made
    "wide.sh": (
        "# /// cidag\n# matrix = { a = [%s], b = [%s] }\n# ///\n" % ((", ".join(map(str, range(20))),) * 2),
        "cijobs/wide.sh:2: 'matrix' makes 400 legs (20 x 20), more than the 256 a job may have*",
    ),
}


@pytest.mark.parametrize("n", ["0", "2"])
def test_bad_inputs_are_collection_errors_at_every_n(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    for filename, (text, _) in BAD_INPUTS.items():
        pytester.path.joinpath("cijobs").mkdir(exist_ok=True)
        pytester.path.joinpath("cijobs", filename).write_text(text)
    job("good", "true")
    # at -n 2 the workers collect, and their errors reach the controller
    result = pytester.runpytest_subprocess("-n", n)
    result.stdout.fnmatch_lines_random([message for _, message in BAD_INPUTS.values()])
    result.stdout.fnmatch_lines([f"*{len(BAD_INPUTS)} errors*"])
    assert "Traceback" not in result.stdout.str()
    # xdist's own rule: the workers run what did collect, and the errors make the run fail
    assert result.ret == (pytest.ExitCode.INTERRUPTED if n == "0" else pytest.ExitCode.TESTS_FAILED)


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_block_after_a_bom_or_with_crlf_is_honoured(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("first", "exit 1")
    block = '# /// cidag\n# needs = ["first"]\n# ///\necho ran\n'
    pytester.path.joinpath("cijobs/bom.sh").write_bytes(b"\xef\xbb\xbf" + block.encode())
    pytester.path.joinpath("cijobs/crlf.sh").write_bytes(block.replace("\n", "\r\n").encode())
    result = pytester.runpytest_subprocess("-n", n, "-rs")
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines_random(
        ["SKIPPED*bom*upstream job 'first' failed*", "SKIPPED*crlf*upstream job 'first' failed*"]
    )


def _symlinked_job_dir(pytester: pytest.Pytester, job: JobWriter) -> None:
    """``cijobs`` is a symlink to ``realjobs``, where ``y`` needs ``x``."""
    job("x", "true", directory="realjobs")
    job("y", "true", directory="realjobs", needs='["x"]')
    pytester.path.joinpath("cijobs").symlink_to("realjobs")


@pytest.mark.parametrize(
    "args",
    [[], ["cijobs"], ["cijobs/y.sh"], ["cijobs/y.sh::y"], ["realjobs/y.sh"], ["realjobs/x.sh", "cijobs"], ["-k", "y"]],
    ids=["rootdir", "dir", "file", "node-id", "target-file", "target-and-dir", "k"],
)
def test_a_symlinked_job_directory_keeps_its_path_in_node_ids(
    pytester: pytest.Pytester, job: JobWriter, args: list[str]
) -> None:
    _symlinked_job_dir(pytester, job)
    result = pytester.runpytest(*args, "-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["cijobs/x.sh::x PASSED*", "cijobs/y.sh::y PASSED*"])
    assert "realjobs" not in result.stdout.str()
    result.assert_outcomes(passed=2)


def test_a_symlinked_job_directory_at_n_2(pytester: pytest.Pytester, job: JobWriter) -> None:
    _symlinked_job_dir(pytester, job)
    result = pytester.runpytest_subprocess("cijobs/y.sh", "-n", "2", "-v")
    result.stdout.fnmatch_lines_random(["*PASSED cijobs/x.sh::x*", "*PASSED cijobs/y.sh::y*"])
    assert "realjobs" not in result.stdout.str()
    result.assert_outcomes(passed=2)


def test_a_symlinked_job_file_is_named_by_its_link(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("real", "true", directory="scripts")
    pytester.path.joinpath("cijobs").mkdir()
    pytester.path.joinpath("cijobs/link.sh").symlink_to("../scripts/real.sh")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["cijobs/link.sh::link", "1 test collected*"])


@pytest.mark.parametrize("n", ["0", "2"])
def test_a_directory_loop_is_an_error(pytester: pytest.Pytester, job: JobWriter, n: str) -> None:
    job("ok", "true")
    job("deep", "true", directory="cijobs/a")
    pytester.path.joinpath("cijobs/sub").symlink_to(".")
    pytester.path.joinpath("cijobs/a/up").symlink_to("..")
    result = pytester.runpytest_subprocess("-n", n, "cijobs")
    result.stdout.fnmatch_lines_random(
        [
            "cijobs/sub: a directory loop (a symlink to '.', which holds it): remove the link*",
            "cijobs/a/up: a directory loop (a symlink to '..', which holds it): remove the link*",
        ]
    )
    assert "two jobs are named" not in result.stdout.str() + result.stderr.str()
    assert result.stdout.str().count("ERROR collecting") == 2
