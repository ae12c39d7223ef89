"""``--cidag-status`` in real runs, against a local stand-in for GitHub's statuses endpoint
(tests/statusserver.py): every request checked, at -n 0 and -n 2; failures of the API
that never fail or slow the run beyond its bound; cancelled runs that leave nothing pending;
settings refused before any job runs. The real service is never contacted."""

from __future__ import annotations

import fnmatch
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cidag.commitstatus import CommitStatusPlugin, StatusSettings
from pytest_cidag.core import ghstatus
from tests.conftest import JobWriter
from tests.statusserver import Answer, Request, StatusServer
from tests.test_catalogue import entry

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_not_a_real_token_0123456789"
XDIST = pytest.mark.parametrize("n", ["0", "2"], ids=["n0", "n2"])
HEADERS = {
    "authorization": f"Bearer {TOKEN}",
    "accept": "application/vnd.github+json",
    "x-github-api-version": ghstatus.API_VERSION,
    "content-type": "application/json",
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusServer]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not take our requests
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    running = StatusServer().start()
    yield running
    running.stop()


def status_args(server: StatusServer, *more: str) -> list[str]:
    return [
        "--cidag-status",
        f"--cidag-status-api-url={server.url}",
        "--cidag-status-repo=acme/widgets",
        f"--cidag-status-sha={SHA}",
        "--cidag-run-dir=run",
        *more,
    ]


def check_requests(requests: list[Request]) -> None:
    """What every request must be, whatever it carries."""
    for request in requests:
        assert request.method == "POST"
        assert request.path == f"/repos/acme/widgets/statuses/{SHA}"
        assert {k: request.headers.get(k) for k in HEADERS} == HEADERS
        assert request.headers["user-agent"].startswith("pytest-cidag/")
        assert set(request.body) <= {"state", "context", "description", "target_url"}
        assert request.body["state"] in ("pending", "success", "failure", "error")
        assert 0 < len(request.body["description"]) <= 140


def finals(server: StatusServer) -> dict[str, dict[str, Any]]:
    """Each context's last status, once checked that what came before it was one pending
    status at most (a pending still waiting when the job ended is replaced by the final one)."""
    out = {}
    for context, bodies in server.statuses().items():
        *before, last = bodies
        assert last["state"] != "pending", (context, bodies)
        assert len(before) <= 1, (context, bodies)
        for body in before:  # "queued" for a job, "running N jobs" for the run
            assert body["state"] == "pending", (context, bodies)
            assert body["description"] == "queued" or fnmatch.fnmatch(body["description"], "running * job*")
        out[context] = last
    return out


def matches(status: dict[str, Any], state: str, description: str) -> bool:
    return status["state"] == state and fnmatch.fnmatchcase(status["description"], description)


def no_token_anywhere(result: pytest.RunResult, root: Path) -> None:
    assert TOKEN not in "\n".join(result.outlines + result.errlines)
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def four_jobs(job: JobWriter) -> None:
    job("pass", "true")
    job("fail", "echo broken; exit 3")
    job("blocked", "true", needs='["fail"]')
    job("skip", "echo no docker here; exit 77")


@XDIST
def test_each_job_posts_pending_then_its_outcome(
    pytester: pytest.Pytester, job: JobWriter, server: StatusServer, n: str
) -> None:
    four_jobs(job)
    template = "--cidag-status-url=https://ci.example.com/{repo}/{run_dir}/{log}?job={job}&sha={sha}"
    result = pytester.runpytest(*status_args(server, template), "-n", n)
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    check_requests(server.requests)
    last = finals(server)
    assert set(last) == {"cidag", "cidag/pass", "cidag/fail", "cidag/blocked", "cidag/skip"}
    assert matches(last["cidag/pass"], "success", "passed in * s")
    assert matches(last["cidag/fail"], "failure", "failed: exit code 3 after * s")
    assert matches(last["cidag/blocked"], "error", "not run: upstream job 'fail' failed")
    assert matches(last["cidag/skip"], "success", "skipped: no docker here")
    assert matches(last["cidag"], "failure", "1 failed, 1 blocked, 1 passed, 1 skipped in * s")
    url = f"https://ci.example.com/acme/widgets/run/{{log}}?job={{job}}&sha={SHA}"
    assert last["cidag/pass"]["target_url"] == url.format(log="pass.log", job="pass")
    assert last["cidag/fail"]["target_url"] == url.format(log="fail.log", job="fail")
    assert last["cidag/blocked"]["target_url"] == url.format(log="", job="blocked")  # no log: it never ran
    assert last["cidag"]["target_url"] == url.format(log="", job="")
    pending = [r for r in server.requests if r.body["state"] == "pending"]
    assert pending, "no job was pending"
    replaced = 10 - len(server.requests)
    line = f"cidag: commit statuses on acme/widgets@0123456: {len(server.requests)} posted, 0 failed"
    if replaced:
        line += f"; {replaced} replaced by a newer status before being sent"
    assert line in result.outlines
    no_token_anywhere(result, pytester.path)


def test_a_matrix_leg_and_a_cache_hit(pytester: pytest.Pytester, job: JobWriter, server: StatusServer) -> None:
    job("test", "true", matrix='{ python = ["3.12"] }', inputs="[]")
    pytester.runpytest(*status_args(server, "--cidag-status-context=ci/linux")).assert_outcomes(passed=1)
    assert matches(finals(server)["ci/linux/test[3.12]"], "success", "passed in * s")
    server.requests.clear()
    pytester.runpytest(*status_args(server, "--cidag-status-context=ci/linux")).assert_outcomes(passed=1)
    last = finals(server)
    assert matches(last["ci/linux/test[3.12]"], "success", "passed: cache hit*")
    assert matches(last["ci/linux"], "success", "1 cached in * s")


def test_a_refused_token_is_one_request_and_the_end_line_says_why(
    pytester: pytest.Pytester, job: JobWriter, server: StatusServer
) -> None:
    four_jobs(job)
    server.answer(Answer(401, body={"message": f"Bad credentials: {TOKEN}"}))  # as if it echoed the token
    result = pytester.runpytest(*status_args(server), "-rA", "--junitxml=junit.xml", "-o", "junit_logging=all")
    assert (pytester.path / "junit.xml").is_file() and (pytester.path / "run" / "run.json").is_file()
    result.assert_outcomes(passed=1, failed=1, skipped=2)  # the run's outcome is the jobs' alone
    assert [r.answered for r in server.requests] == [401]
    result.stdout.fnmatch_lines(
        [
            "cidag: commit statuses on acme/widgets@0123456: 0 posted, * failed (401 Bad credentials: ***: "
            "the token was refused (not retried: every request would be refused alike))*"
        ]
    )
    no_token_anywhere(result, pytester.path)


def test_a_rate_limit_is_waited_out_then_posted(
    pytester: pytest.Pytester, job: JobWriter, server: StatusServer
) -> None:
    job("pass", "true")
    reset = int(time.time()) + 2
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    server.answer(Answer(403, limited, {"message": "API rate limit exceeded for installation ID 1."}))
    result = pytester.runpytest(*status_args(server, "--cidag-status-wait=60"))
    result.assert_outcomes(passed=1)
    first, *later = server.requests
    assert first.answered == 403
    assert later and all(r.wall >= reset for r in later)  # nothing sent before the reset
    assert later[0].body == first.body  # the refused status, sent again
    assert matches(finals(server)["cidag/pass"], "success", "passed in * s")
    assert any(" posted, 0 failed" in line for line in result.outlines), result.outlines


def test_a_server_error_is_retried(pytester: pytest.Pytester, job: JobWriter, server: StatusServer) -> None:
    job("pass", "true")
    server.answer(Answer(500, body={"message": "Server Error"}))
    result = pytester.runpytest(*status_args(server, "--cidag-status-wait=60"))
    result.assert_outcomes(passed=1)
    assert [r.answered for r in server.requests[:2]] == [500, 201]
    assert server.requests[0].body == server.requests[1].body
    assert matches(finals(server)["cidag/pass"], "success", "passed in * s")
    assert any(" posted, 0 failed" in line for line in result.outlines), result.outlines


def test_a_hanging_api_holds_the_run_no_longer_than_the_wait(
    pytester: pytest.Pytester, job: JobWriter, server: StatusServer
) -> None:
    job("pass", "true")
    server.answer(Answer(hang=True))
    # Each request may take 10 minutes, the run waits 1 s at its end: it must end well
    # within the generous bound below, which a run waiting on the request would overrun.
    args = status_args(server, "--cidag-status-timeout=600", "--cidag-status-wait=1")
    result = pytester.runpytest_subprocess(*args, timeout=300)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["cidag: commit statuses on acme/widgets@0123456: 0 posted, * failed (not sent within the 1 s the run waits*"]
    )


@XDIST
def test_x_leaves_no_job_pending(pytester: pytest.Pytester, job: JobWriter, server: StatusServer, n: str) -> None:
    job("long", 'touch "$CIDAG_RUN_DIR/long-started"; sleep 60')
    job("fails", 'while [ ! -e "$CIDAG_RUN_DIR/long-started" ]; do sleep 0.01; done; exit 1')
    job("later", "true", needs='["fails"]')
    job("waits", "true", needs='["long"]')
    if n == "0":  # one process: "long" would run to its end first; let "fails" go first
        job("long", "sleep 60", needs='["fails"]')
        job("fails", "exit 1")
    result = pytester.runpytest(*status_args(server), "-n", n, "-x", "--cidag-kill-grace", "0.2")
    assert result.ret == 1
    last = finals(server)
    assert set(last) == {"cidag", "cidag/long", "cidag/fails", "cidag/later", "cidag/waits"}
    assert matches(last["cidag/fails"], "failure", "failed: exit code 1 after * s")
    stop = "stopping after 1 failure*"
    if n == "2":
        assert matches(last["cidag/long"], "error", f"cancelled: {stop}")  # killed while it ran
    else:
        assert matches(last["cidag/long"], "error", f"cancelled: not started ({stop})")
    # blocked by the failure, or never sent once the run stopped: error either way, never pending
    assert matches(last["cidag/later"], "error", f"cancelled: not started ({stop})") or (
        n == "2" and matches(last["cidag/later"], "error", "not run: upstream job 'fails' failed")
    )
    assert matches(last["cidag/waits"], "error", f"cancelled: not started ({stop})")
    assert last["cidag"]["state"] == "failure"


@pytest.mark.parametrize(("sig", "n"), [(signal.SIGINT, "0"), (signal.SIGTERM, "2")], ids=["sigint-n0", "sigterm-n2"])
def test_a_cancelled_run_leaves_no_job_pending(
    pytester: pytest.Pytester, job: JobWriter, server: StatusServer, sig: signal.Signals, n: str
) -> None:
    job("long", "sleep 60")
    job("after", "true", needs='["long"]')
    job("quick", "true")
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", *status_args(server), "--cidag-kill-grace", "0.2", "-n", n],
        stdin=subprocess.DEVNULL,
    )
    try:
        server.wait_for(lambda requests: any(r.body["context"] == "cidag" for r in requests))  # all pending
        proc.send_signal(sig)  # the controller alone (n2), as a CI cancel reaches it
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    last = finals(server)
    assert set(last) == {"cidag", "cidag/long", "cidag/after", "cidag/quick"}
    why = "interrupted: *" if sig == signal.SIGINT else "interrupted: terminated by SIGTERM*"
    assert matches(last["cidag/long"], "error", f"cancelled: *{why}")
    assert matches(last["cidag/after"], "error", f"cancelled: not started ({why})")
    assert last["cidag"]["state"] == "error"
    assert b"cidag: commit statuses on acme/widgets@0123456: " in out


def test_an_unreachable_api_is_not_fatal(pytester: pytest.Pytester, job: JobWriter, server: StatusServer) -> None:
    documented = entry("An unreachable API")
    for path, body in documented.files.items():
        pytester.path.joinpath(path).parent.mkdir(parents=True, exist_ok=True)
        pytester.path.joinpath(path).write_text(body)
    with socket.socket() as bound:  # bound, not listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        args = [a.replace("127.0.0.1:9", f"127.0.0.1:{port}") for a in documented.args]
        result = pytester.runpytest(*args)
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(documented.expected)


@pytest.mark.parametrize("title", ["A missing token", "A bad repository name", "No commit to post statuses on"])
def test_bad_settings_stop_the_run_before_any_job(pytester: pytest.Pytester, title: str) -> None:
    documented = entry(title)
    for path, body in documented.files.items():
        pytester.path.joinpath(path).parent.mkdir(parents=True, exist_ok=True)
        pytester.path.joinpath(path).write_text('touch "$CIDAG_RUN_DIR/ran"\n' + body)
    result = pytester.runpytest(*documented.args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(documented.expected)
    assert not list(pytester.path.rglob("ran"))


#: (command-line arguments, environment, the usage error's text)
BAD_SETTINGS = {
    "empty token": (
        ["--cidag-status-token-var=MY_TOKEN"],
        {"MY_TOKEN": ""},
        "the environment variable MY_TOKEN (from --cidag-status-token-var) is empty",
    ),
    "token with a newline inside": (
        ["--cidag-status-token-var=MY_TOKEN"],
        {"MY_TOKEN": "ghp_abc\ndef\n"},
        "the token in MY_TOKEN (from --cidag-status-token-var) has a space or a control character in it",
    ),
    "token variable from ini": (
        ["-o", "cidag_status_token_var=MY_TOKEN"],
        {},
        "the environment variable MY_TOKEN (from ini cidag_status_token_var) is not set",
    ),
    "repository from the environment": ([], {"GITHUB_REPOSITORY": "acme"}, "'acme' from GITHUB_REPOSITORY is not a"),
    "plain http": (
        ["--cidag-status-api-url=http://ghe.example.com/api/v3"],
        {},
        "from --cidag-status-api-url: the token would cross the network in the clear",
    ),
    "api url without a scheme": (
        [],
        {"GITHUB_API_URL": "ghe.example.com"},
        "'ghe.example.com' from GITHUB_API_URL: an http(s) URL is expected",
    ),
    "short commit": (["--cidag-status-sha=abc123"], {}, "'abc123' from --cidag-status-sha is not a full commit id"),
    "unknown placeholder": (
        ["--cidag-status-url=https://ci.example.com/{jobs}"],
        {},
        "names {jobs}; known: {job}, {log}, {run}, {run_dir}, {repo}, {sha}",
    ),
    "target url not http": (["--cidag-status-url=ci.example.com/{job}"], {}, "must start with https:// or http://"),
    "negative wait": (
        ["--cidag-status-wait=-1"],
        {},
        "cidag_status_wait: -1.0 from --cidag-status-wait must be at least 0",
    ),
}


@pytest.mark.parametrize("case", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_each_bad_setting_is_named_with_where_it_came_from(
    pytester: pytest.Pytester,
    job: JobWriter,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[list[str], dict[str, str], str],
) -> None:
    args, env, message = case
    job("build", "true")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    repo = [] if "GITHUB_REPOSITORY" in env else ["--cidag-status-repo=acme/widgets"]
    sha = [] if any(a.startswith("--cidag-status-sha") for a in args) else [f"--cidag-status-sha={SHA}"]
    result = pytester.runpytest("--cidag-status", *repo, *sha, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *{message}*"])
    assert "ghp_abc" not in result.stderr.str() + result.stdout.str()


def settings_of(config: pytest.Config) -> StatusSettings:
    plugin = config.pluginmanager.get_plugin("cidag-status")
    assert isinstance(plugin, CommitStatusPlugin)
    return plugin.settings


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(
    ("remote", "api"),
    [
        ("git@github.com:acme/widgets.git", "https://api.github.com"),
        ("https://ghe.example.com/acme/widgets.git", "https://ghe.example.com/api/v3"),
    ],
)
def test_repository_commit_and_api_come_from_the_checkout(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch, remote: str, api: str
) -> None:
    job("build", "true")
    _git(pytester.path, "init", "-q")
    _git(pytester.path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-mx")
    _git(pytester.path, "remote", "add", "origin", remote)
    head = _git(pytester.path, "rev-parse", "HEAD")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    config = pytester.parseconfigure("--cidag-status")
    assert settings_of(config).target == ghstatus.Target(api, "acme/widgets", head)


def test_github_actions_variables_and_a_pull_requests_head(
    pytester: pytest.Pytester, job: JobWriter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    job("build", "true")
    head = "f" * 40
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": head}}}))
    for key, value in {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": "acme/widgets",
        "GITHUB_SHA": "e" * 40,  # the merge commit GitHub made for the pull request
        "GITHUB_API_URL": "https://ghe.example.com/api/v3",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://ghe.example.com",
        "GITHUB_RUN_ID": "42",
    }.items():
        monkeypatch.setenv(key, value)
    config = pytester.parseconfigure("--cidag-status")
    settings = settings_of(config)
    assert settings.target == ghstatus.Target("https://ghe.example.com/api/v3", "acme/widgets", head)
    assert settings.target_url("build", "build.log") == "https://ghe.example.com/acme/widgets/actions/runs/42"
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    config = pytester.parseconfigure("--cidag-status", "--cidag-status-repo=acme/other")
    assert settings_of(config).target == ghstatus.Target("https://ghe.example.com/api/v3", "acme/other", "e" * 40)


def test_a_run_without_the_option_loads_none_of_it(pytester: pytest.Pytester, job: JobWriter) -> None:
    job("build", "true")
    pytester.makeconftest(
        """
        import json, sys

        def pytest_unconfigure(config):
            wanted = ("pytest_cidag.commitstatus", "pytest_cidag.core.ghstatus", "urllib.request", "http.client")
            with open("modules.json", "w") as f:
                json.dump([m for m in wanted if m in sys.modules], f)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "modules.json").read_text()) == []
    assert "commit statuses" not in result.stdout.str()
