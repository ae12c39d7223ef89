"""The DAG in one process: order, skip propagation, outputs, selection, graph view, errors."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from tests.conftest import LOG, JobWriter, order_log


@pytest.fixture
def shop(job: JobWriter) -> JobWriter:
    """A small CI: build-js -> build-wheel -> {playwright-server, test-a} -> deploy; lint alone."""
    job("build-js", LOG, markers='["slow"]')
    job("build-wheel", LOG + '\n[ -n "$FAIL_WHEEL" ] && exit 1; exit 0', needs='["build-js"]', timeout="60")
    job("deploy", LOG, needs='["playwright-server", "test-a", "lint"]')
    job("lint", LOG)
    job("playwright-server", LOG, needs='["build-wheel"]', markers='["playwright"]')
    job("test-a", LOG + '\n[ -n "$FAIL_A" ] && exit 1; exit 0', needs='["build-wheel"]')
    return job


def test_topological_order_keeps_declaration_order(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=6)
    # files are declared alphabetically; deploy waits for everything it needs
    assert order_log(pytester) == ["build-js", "build-wheel", "lint", "playwright-server", "test-a", "deploy"]


def test_failure_skips_dependents_transitively(
    pytester: pytest.Pytester, shop: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_WHEEL", "1")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] cijobs/playwright-server.sh:1: upstream job 'build-wheel' failed",
            "SKIPPED [[]1[]] cijobs/test-a.sh:1: upstream job 'build-wheel' failed",
            "SKIPPED [[]1[]] cijobs/deploy.sh:1: upstream job 'build-wheel' failed (through 'playwright-server')",
        ]
    )
    assert order_log(pytester) == ["build-js", "build-wheel", "lint"]


@pytest.mark.parametrize(
    ("body", "block", "phrase"),
    [
        ("sleep 30", {"timeout": "0.3"}, "timed out"),
        ("echo 'no docker'; exit 77", {}, "was skipped"),
        ("exit 2", {}, "failed"),
    ],
)
def test_every_kind_of_non_pass_blocks(
    pytester: pytest.Pytester, job: JobWriter, body: str, block: dict[str, str], phrase: str
) -> None:
    job("up", body, **block)
    job("down", LOG, needs='["up"]')
    result = pytester.runpytest("-rs", "--cidag-kill-grace", "0.1")
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] cijobs/down.sh:1: upstream job 'up' {phrase}"])
    assert order_log(pytester) == []


def test_maxfail_stops_the_run(pytester: pytest.Pytester, job: JobWriter) -> None:
    for name in ("a", "b", "c", "d"):
        job(name, LOG + "\nexit 1")
    result = pytester.runpytest("-x")
    result.assert_outcomes(failed=1)
    assert order_log(pytester) == ["a"]
    (pytester.path / "order.log").unlink()
    result = pytester.runpytest("--maxfail=2")
    result.assert_outcomes(failed=2)
    assert order_log(pytester) == ["a", "b"]


def test_matrix_needs_all_legs_or_one_leg(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("test", LOG + '\n[ "$CIDAG_MATRIX_PY" = 3.11 ] && exit 1; exit 0', matrix='{ py = ["3.11", "3.12"] }')
    job("needs-all", LOG, needs='["test"]')
    job("needs-312", LOG, needs='["test[3.12]"]')
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/needs-all.sh:1: upstream job 'test[[]3.11[]]' failed"])
    assert "needs-312" in order_log(pytester)


def test_outputs_become_dependents_environment(pytester: pytest.Pytester, job: JobWriter) -> None:
    job(
        "build-wheel",
        """
        echo "wheel=dist/pkg-1.0.whl" >> "$CIDAG_OUTPUT"
        echo "sha-256=abc123" >> "$CIDAG_OUTPUT"
        printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$CIDAG_OUTPUT"
        """,
    )
    job("leg", 'echo "py=$CIDAG_MATRIX_PY" >> "$CIDAG_OUTPUT"', matrix='{ py = ["3.12"] }')
    job(
        "use",
        'env | grep ^CIDAG_NEEDS_ | sort > needs.env; printf "%s" "$CIDAG_NEEDS_BUILD_WHEEL_NOTES" > notes.txt',
        needs='["build-wheel", "leg"]',
    )
    job("unrelated", "env | grep ^CIDAG_NEEDS_ > unrelated.env || true")
    pytester.runpytest().assert_outcomes(passed=4)
    assert (pytester.path / "needs.env").read_text().splitlines() == [
        "CIDAG_NEEDS_BUILD_WHEEL_NOTES=line one",
        "CIDAG_NEEDS_BUILD_WHEEL_SHA_256=abc123",
        "CIDAG_NEEDS_BUILD_WHEEL_WHEEL=dist/pkg-1.0.whl",
        "CIDAG_NEEDS_LEG_3_12_PY=3.12",
    ]
    assert (pytester.path / "notes.txt").read_text() == "line one\nline two"
    assert (pytester.path / "unrelated.env").read_text() == ""
    run_dir = (pytester.path / ".cidag/runs/latest").resolve()
    assert "wheel=dist/pkg-1.0.whl" in (run_dir / "build-wheel.outputs").read_text()


def test_malformed_output_fails_the_producer(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("producer", 'echo "ok=1" >> "$CIDAG_OUTPUT"; echo "this line has no equals sign" >> "$CIDAG_OUTPUT"')
    job("consumer", LOG, needs='["producer"]')
    result = pytester.runpytest("-rs")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "job 'producer' failed: malformed output at .cidag/runs/*/producer.outputs:2: "
            "'this line has no equals sign' is not a key=value line"
        ]
    )


# --- selection ----------------------------------------------------------------------------


def test_k_pulls_in_upstream_jobs_first(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("-k", "playwright-server")
    result.assert_outcomes(passed=3, deselected=3)
    assert order_log(pytester) == ["build-js", "build-wheel", "playwright-server"]
    result.stdout.fnmatch_lines(
        [
            "collected 6 items / 3 deselected / 3 selected",
            "cidag: 2 upstream jobs added because the selection needs them: build-js, build-wheel",
        ],
        consecutive=False,
    )


def test_m_not_slow_keeps_slow_jobs_that_are_needed(pytester: pytest.Pytester, shop: JobWriter, job: JobWriter) -> None:
    job("slow-alone", LOG, markers='["slow"]')
    result = pytester.runpytest("-m", "not slow")
    result.assert_outcomes(passed=6, deselected=1)
    assert "build-js" in order_log(pytester)  # slow, but build-wheel needs it
    assert "slow-alone" not in order_log(pytester)


def test_deselect_and_node_ids(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("--deselect", "cijobs/deploy.sh::deploy", "--deselect", "cijobs/lint.sh::lint")
    result.assert_outcomes(passed=4, deselected=2)
    (pytester.path / "order.log").unlink()
    # an IDE runs one job by node id: its upstream jobs run too
    result = pytester.runpytest("cijobs/test-a.sh::test-a")
    result.assert_outcomes(passed=3)
    assert order_log(pytester) == ["build-js", "build-wheel", "test-a"]


def test_lf_reruns_failed_job_its_upstream_and_blocked_dependents(
    pytester: pytest.Pytester, shop: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop("docs", LOG)  # passes, and nothing failed needs it: --lf leaves it out
    monkeypatch.setenv("FAIL_A", "1")
    pytester.runpytest().assert_outcomes(passed=5, failed=1, skipped=1)
    monkeypatch.delenv("FAIL_A")
    (pytester.path / "order.log").unlink()
    result = pytester.runpytest("--lf")
    result.assert_outcomes(passed=6, deselected=1)
    # test-a failed, deploy was skipped because of it; both rerun, with what they need,
    # and the failed job as early as the graph allows
    assert order_log(pytester) == ["build-js", "build-wheel", "test-a", "lint", "playwright-server", "deploy"]
    (pytester.path / "order.log").unlink()
    pytester.runpytest("--lf").assert_outcomes(passed=7)  # nothing failed: --lf runs everything


def test_lf_leaves_out_what_a_skipped_job_held_back(pytester: pytest.Pytester, job: JobWriter) -> None:
    # --lf reruns failures and what they held back; a job skipped by its own choice (exit 77)
    # and its dependents are not failures, as a skipped test is not for --lf.
    job("broken", LOG + "\nexit 1")
    job("after-broken", LOG, needs='["broken"]')
    job("no-gpu", LOG + "\necho no GPU here; exit 77")
    job("after-no-gpu", LOG, needs='["no-gpu"]')
    pytester.runpytest().assert_outcomes(failed=1, skipped=3)
    (pytester.path / "order.log").unlink()
    result = pytester.runpytest("--lf")
    result.assert_outcomes(failed=1, skipped=1, deselected=2)
    assert order_log(pytester) == ["broken"]


def test_no_deps_runs_exactly_the_selection_with_latest_outputs(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", LOG + '\necho "version=$RANDOM-$$" >> "$CIDAG_OUTPUT"')
    job("use", LOG + '\necho "$CIDAG_NEEDS_BUILD_VERSION" > used-version', needs='["build"]')
    pytester.runpytest().assert_outcomes(passed=2)
    first_version = (pytester.path / "used-version").read_text()
    (pytester.path / "order.log").unlink()
    result = pytester.runpytest("-k", "use", "--cidag-no-deps")
    result.assert_outcomes(passed=1, deselected=1)
    assert order_log(pytester) == ["use"]
    assert (pytester.path / "used-version").read_text() == first_version


def test_first_runs_chosen_jobs_early_in_one_run(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("--cidag-first", "test-a")
    result.assert_outcomes(passed=6)
    assert order_log(pytester) == ["build-js", "build-wheel", "test-a", "lint", "playwright-server", "deploy"]


def test_first_failure_is_not_masked_by_later_jobs(
    pytester: pytest.Pytester, shop: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old runner's phase A failure was hidden when phase B passed."""
    monkeypatch.setenv("FAIL_A", "1")
    result = pytester.runpytest("--cidag-first", "test-a", "-rs")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_jobs_needing_first_jobs_still_run(pytester: pytest.Pytester, shop: JobWriter) -> None:
    """The old runner skipped phase B jobs that needed a phase A job."""
    result = pytester.runpytest("--cidag-first", "build-wheel,lint")
    result.assert_outcomes(passed=6)
    log = order_log(pytester)
    assert log[:3] == ["build-js", "build-wheel", "lint"]
    assert {"playwright-server", "test-a", "deploy"} <= set(log[3:])


def test_first_unknown_job_is_a_usage_error(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("--cidag-first", "test-b")
    result.stderr.fnmatch_lines(
        ["ERROR: cidag: --cidag-first names 'test-b', which is not a known job (did you mean 'test-a'?)"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_testcases_reach_every_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makepyfile(test_suite="def test_login(): pass\ndef test_logout(): pass\ndef test_other(): pass\n")
    job("suite", '"$CIDAG_PYTHON" -m pytest test_suite.py -p no:cidag -p no:cacheprovider -q -k "$CIDAG_TESTCASES"')
    result = pytester.runpytest("cijobs", "--cidag-testcases", "login or logout", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["2 passed, 1 deselected*"])


def test_order_survives_ff_nf_and_randomly(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    job("a", LOG)
    job("b", LOG + "\n[ -f fail-b ] && exit 1; exit 0", needs='["a"]')
    (pytester.path / "fail-b").write_text("")
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    (pytester.path / "fail-b").unlink()
    (pytester.path / "order.log").unlink()
    pytester.runpytest("--ff").assert_outcomes(passed=2)  # --ff wants b first; a must still precede it
    assert order_log(pytester) == ["a", "b"]
    new = job("0-new", LOG, needs='["b"]')  # --nf puts the newest file first
    newest = max(p.stat().st_mtime for p in (pytester.path / "cijobs").glob("*.sh") if p != new)
    os.utime(new, (newest + 10, newest + 10))  # newer by far, however coarse file times are
    (pytester.path / "order.log").unlink()
    pytester.runpytest("--nf").assert_outcomes(passed=3)
    assert order_log(pytester) == ["a", "b", "0-new"]
    monkeypatch.delenv("PYTEST_ADDOPTS")
    for seed in (1, 2, 3, 4, 5):
        (pytester.path / "order.log").unlink()
        pytester.runpytest("-p", "randomly", "-p", "no:cacheprovider", f"--randomly-seed={seed}").assert_outcomes(
            passed=3
        )
        assert order_log(pytester) == ["a", "b", "0-new"]


# --- Python tests take part through pytest-dependency ----------------------------------


def test_python_test_depends_on_a_job(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", LOG + "\n[ -f fail-build ] && exit 1; exit 0")
    pytester.makepyfile(
        test_api="""
        import pytest, pathlib

        @pytest.mark.dependency(depends=["build"])
        def test_uses_build():
            assert "build" in pathlib.Path("order.log").read_text()
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    (pytester.path / "fail-build").write_text("")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_api.py:3: upstream job 'build' failed"])
    # run the test alone, as an IDE would: the job it depends on is pulled in
    (pytester.path / "fail-build").unlink()
    (pytester.path / "order.log").unlink()
    pytester.runpytest("test_api.py::test_uses_build").assert_outcomes(passed=2)


def test_job_needs_a_python_test(pytester: pytest.Pytester, job: JobWriter) -> None:
    pytester.makepyfile(
        test_contract="""
        import pytest, os

        @pytest.mark.dependency(name="api-contract")
        def test_contract():
            assert not os.path.exists("break-contract")

        @pytest.mark.dependency()
        def test_by_node_id():
            pass

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_errors(broken):
            pass
        """
    )
    job("publish", LOG, needs='["api-contract", "test_contract.py::test_by_node_id"]')
    job("after-error", LOG, needs='["test_contract.py::test_errors"]')
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=3, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * cijobs/after-error.sh:1: upstream test 'test_contract.py::test_errors' errored"]
    )
    (pytester.path / "break-contract").write_text("")
    result = pytester.runpytest(
        "-rs", "--deselect", "test_contract.py::test_errors", "--deselect", "cijobs/after-error.sh"
    )
    result.stdout.fnmatch_lines(
        ["SKIPPED * cijobs/publish.sh:1: upstream test 'test_contract.py::test_contract' failed"]
    )


def test_plain_pytest_dependency_suites_keep_working(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("unrelated", "true")
    pytester.makepyfile(
        test_dep="""
        import pytest

        @pytest.mark.dependency()
        def test_a():
            assert False

        @pytest.mark.dependency()
        def test_b():
            pass

        @pytest.mark.dependency(depends=["test_a"])
        def test_c():
            pass

        @pytest.mark.dependency(depends=["test_b"])
        def test_d():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    # the edge between the two tests is in the graph: the skip names the failed test
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_dep.py:* upstream test 'test_dep.py::test_a' failed"])


# --- the graph view ------------------------------------------------------------------------


def test_graph_mermaid_dot_json(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("-q", "--cidag-graph", "-k", "test-a")
    assert result.ret == 0
    assert result.outlines == [
        "flowchart LR",
        '    n0["build-js<br/>markers: slow"]',
        '    n1["build-wheel<br/>timeout 60s"]',
        '    n2["test-a"]',
        "    n0 --> n1",
        "    n1 --> n2",
    ]
    assert order_log(pytester) == []  # nothing ran
    dot = pytester.runpytest("-q", "--cidag-graph=dot").stdout.str()
    assert '"build-wheel" [label="build-wheel\\ntimeout 60s"];' in dot
    assert '"playwright-server" -> "deploy";' in dot
    data = json.loads(pytester.runpytest("-q", "--cidag-graph=json").stdout.str())
    by_id = {j["id"]: j for j in data["jobs"]}
    assert by_id["deploy"]["needs"] == ["playwright-server", "test-a", "lint"]
    assert by_id["build-wheel"]["timeout"] == 60
    assert by_id["playwright-server"]["markers"] == ["playwright"]


def test_graph_under_xdist_is_the_graph_alone(pytester: pytest.Pytester, shop: JobWriter) -> None:
    # The graph is printed by pytest itself: no workers start, so nothing comes before it.
    single = pytester.runpytest_subprocess("-q", "--cidag-graph=dot").outlines
    assert pytester.runpytest_subprocess("-q", "-n", "2", "--cidag-graph=dot").outlines == single
    assert single[0] == "digraph cidag {"


def test_graph_of_a_run_without_jobs_is_an_empty_graph(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    assert pytester.runpytest("-q", "--cidag-graph").outlines == ["flowchart LR"]
    assert pytester.runpytest("-q", "--cidag-graph=dot").outlines == [
        "digraph cidag {",
        "    rankdir=LR;",
        "    node [shape=box];",
        "}",
    ]
    assert json.loads(pytester.runpytest("-q", "--cidag-graph=json").stdout.str()) == {"jobs": []}


def test_graph_unknown_format(pytester: pytest.Pytester, shop: JobWriter) -> None:
    result = pytester.runpytest("--cidag-graph=svg")
    result.stderr.fnmatch_lines(
        ["*argument --cidag-graph: invalid choice: 'svg' (choose from 'mermaid', 'dot', 'json')"]
    )


# --- errors before anything runs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({"a": '["b"]', "b": '["c"]', "c": '["a"]'}, "the jobs' needs form a cycle: * -> * -> * -> *"),
        ({"a": '["a"]'}, "the jobs' needs form a cycle: a -> a"),
        (
            {"a": '["buidl"]', "build": "[]"},
            "job 'a' (cijobs/a.sh:1) needs 'buidl', which is not a job*(did you mean 'build'?)",
        ),
    ],
)
def test_graph_errors(pytester: pytest.Pytester, job: JobWriter, jobs: dict[str, str], message: str) -> None:
    for name, needs in jobs.items():
        job(name, LOG, needs=needs)
    result = pytester.runpytest()
    result.stderr.fnmatch_lines([f"ERROR: cidag: {message}"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert order_log(pytester) == []


def test_cycle_names_every_job_in_order(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("a", LOG, needs='["b"]')
    job("b", LOG, needs='["c"]')
    job("c", LOG, needs='["a"]')
    err = pytester.runpytest().stderr.str()
    cycle = err.split("cycle: ")[1].split("\n")[0].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["a", "b", "c"]
    # each job in the printed cycle needs the next one
    needs = {"a": "b", "b": "c", "c": "a"}
    assert all(needs[x] == y for x, y in itertools.pairwise(cycle))


def test_cycle_through_a_matrix_leg(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("test", LOG, matrix='{ py = ["3.11", "3.12"] }', needs='["setup"]')
    job("setup", LOG, needs='["test[3.12]"]')
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["ERROR: cidag: the jobs' needs form a cycle: *test[[]3.12[]]*setup*"])


def test_duplicate_names_name_both_files(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", LOG)
    job("other", LOG, directory="cijobs/sub", name='"build"')
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(
        ["ERROR: cidag: two jobs are named 'build': cijobs/build.sh:1 and cijobs/sub/other.sh:1; names must be unique"]
    )


def test_blocker_named_is_one_that_did_not_pass(pytester: pytest.Pytester, job: JobWriter) -> None:
    """Under xdist a need may still run when another need fails: the reason names the failure."""
    job("a-slow", "sleep 1")
    job("b-broken", "exit 1")
    job("c-needs-both", "true", needs='["a-slow", "b-broken"]')
    result = pytester.runpytest_subprocess("-n", "2", "-rs", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["SKIPPED * cijobs/c-needs-both.sh:1: upstream job 'b-broken' failed"])


def test_outputs_of_two_needs_that_collide_fail_the_dependent(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", 'echo "js_dir=x" >> "$CIDAG_OUTPUT"')
    job("build-js", 'echo "dir=y" >> "$CIDAG_OUTPUT"')
    job("use", "true", needs='["build", "build-js"]')
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "job 'use' failed: outputs 'build' (js_dir) and 'build-js' (dir) would both be "
            "CIDAG_NEEDS_BUILD_JS_DIR: rename one of the jobs or outputs"
        ]
    )
