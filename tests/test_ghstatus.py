"""pytest_cidag.core.ghstatus without pytest runs: remotes, descriptions, what an answer
means, and the sender against a local stand-in for GitHub's statuses endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cidag.core import ghstatus
from pytest_cidag.core.ghstatus import CommitStatus, Kind, Reply, Sender, State, Target
from tests.statusserver import Answer, StatusServer

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_not_a_real_token_0123456789"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not take our requests
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    running = StatusServer().start()
    yield running
    running.stop()


def target(server: StatusServer) -> Target:
    return Target(server.url, "acme/widgets", SHA)


@pytest.mark.parametrize(
    ("url", "host", "repo", "api"),
    [
        ("https://github.com/acme/widgets.git", "github.com", "acme/widgets", "https://api.github.com"),
        ("https://github.com/acme/widgets", "github.com", "acme/widgets", "https://api.github.com"),
        ("https://x-access-token:abc@github.com/acme/widgets.git", "github.com", "acme/widgets", None),
        ("git@github.com:acme/widgets.git", "github.com", "acme/widgets", "https://api.github.com"),
        ("ssh://git@github.com/acme/widgets.git", "github.com", "acme/widgets", None),
        ("ssh://git@GHE.example.com:2222/acme/widgets.git", "ghe.example.com", "acme/widgets", None),
        ("git@ghe.example.com:acme/wid.gets.git", "ghe.example.com", "acme/wid.gets", "https://ghe.example.com/api/v3"),
        ("https://ghe.example.com:8443/acme/widgets/", "ghe.example.com:8443", "acme/widgets", None),
        ("git://github.com/acme/widgets", "github.com", "acme/widgets", None),
    ],
)
def test_a_remote_names_its_host_and_repository(url: str, host: str, repo: str, api: str | None) -> None:
    remote = ghstatus.parse_remote(url)
    assert remote == ghstatus.Remote(host, repo)
    assert remote.api_url == (api or ghstatus.api_url_for(host))
    if host.startswith("ghe."):
        assert remote.api_url == f"https://{host}/api/v3"


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/widgets.git",
        "file:///srv/git/acme/widgets.git",
        "https://github.com/acme",
        "https://github.com/acme/widgets/tree/main",
        "git@github.com:acme/widgets/extra.git",
        "git@github.com:/acme",
        "",
    ],
)
def test_a_remote_that_names_no_repository(url: str) -> None:
    assert ghstatus.parse_remote(url) is None


def test_credentials_in_a_remote_are_never_shown() -> None:
    shown = ghstatus.without_credentials("https://x-access-token:s3cret@github.com/acme/widgets.git")
    assert shown == "https://github.com/acme/widgets.git"
    assert ghstatus.without_credentials("git@github.com:acme/widgets.git") == "git@github.com:acme/widgets.git"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("acme/widgets", True),
        ("acme-corp/widgets.py", True),
        ("a/_", True),
        ("acme", False),
        ("acme/widgets/extra", False),
        ("-acme/widgets", False),
        ("acme/..", False),
        ("acme/wid gets", False),
        ("/widgets", False),
    ],
)
def test_repository_names(name: str, ok: bool) -> None:
    assert ghstatus.is_repo_name(name) is ok


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.github.com", None),
        ("https://ghe.example.com/api/v3", None),
        ("http://127.0.0.1:8080", None),
        ("http://localhost/api", None),
        ("http://ghe.example.com/api/v3", "in the clear"),
        ("ftp://ghe.example.com", "http(s) URL is expected"),
        ("api.github.com", "http(s) URL is expected"),
        ("https://api.github.com?x=1", "without ?query"),
    ],
)
def test_api_urls(url: str, problem: str | None) -> None:
    said = ghstatus.api_url_problem(url)
    assert said is None if problem is None else problem in (said or "")


def test_a_pull_request_run_posts_on_the_head_not_the_merge_commit(tmp_path: Path) -> None:
    head = "f" * 40
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": head}}}))
    assert ghstatus.pull_request_head("pull_request", str(event)) == head
    assert ghstatus.pull_request_head("pull_request_target", str(event)) == head
    assert ghstatus.pull_request_head("push", str(event)) is None
    assert ghstatus.pull_request_head("pull_request", str(tmp_path / "missing.json")) is None
    event.write_text("{not json")
    assert ghstatus.pull_request_head("pull_request", str(event)) is None


def test_a_description_is_one_line_of_at_most_140_characters() -> None:
    assert ghstatus.cut("a\n  b\tc") == "a b c"
    long = "x" * 200
    assert len(ghstatus.cut(long)) == 140
    assert ghstatus.cut(long).endswith("…")
    assert ghstatus.cut("y" * 140) == "y" * 140
    body = json.loads(CommitStatus("cidag/a", State.ERROR, "z" * 500).body())
    assert len(body["description"]) == 140
    assert "target_url" not in body


@pytest.mark.parametrize(
    ("outcome", "kwargs", "state", "text"),
    [
        ("passed", {"duration": 1.25}, State.SUCCESS, "passed in 1.2 s"),
        ("cached", {}, State.SUCCESS, "passed: cache hit (passed before with these inputs; not run again)"),
        ("skipped", {"reason": "no docker here"}, State.SUCCESS, "skipped: no docker here"),
        ("failed", {"duration": 2.0, "returncode": 3}, State.FAILURE, "failed: exit code 3 after 2.0 s"),
        (
            "failed",
            {"duration": 2.0, "returncode": -9, "signal": "SIGKILL"},
            State.FAILURE,
            "failed: killed by SIGKILL after 2.0 s",
        ),
        ("timeout", {"duration": 60.0}, State.FAILURE, "timed out: killed after 60.0 s"),
        (
            "error",
            {"duration": 0.5, "reason": "its setup failed"},
            State.ERROR,
            "error outside the job's script after 0.5 s: its setup failed",
        ),
        ("crashed", {}, State.ERROR, "error: its pytest-xdist worker crashed while it ran"),
        ("blocked", {"reason": "upstream job 'build' failed"}, State.ERROR, "not run: upstream job 'build' failed"),
        ("cancelled", {"reason": "stopping after 1 failure"}, State.ERROR, "cancelled: stopping after 1 failure"),
    ],
)
def test_what_each_outcome_posts(outcome: str, kwargs: dict[str, object], state: State, text: str) -> None:
    assert ghstatus.job_status(outcome, **kwargs) == (state, text)  # type: ignore[arg-type]


def test_only_a_pass_a_cache_hit_and_a_skip_of_its_own_are_green() -> None:
    green = {name for name, state in ghstatus.STATES.items() if state is State.SUCCESS}
    assert green == {"passed", "cached", "skipped"}
    assert ghstatus.STATES["blocked"] is State.ERROR
    assert ghstatus.STATES["cancelled"] is State.ERROR
    assert set(ghstatus.SUMMARY_ORDER) == set(ghstatus.STATES)


def test_the_runs_status_follows_the_exit_status() -> None:
    counts = {"passed": 3, "failed": 1, "blocked": 2}
    assert ghstatus.summary_status(counts, 1, 12.34) == (State.FAILURE, "1 failed, 2 blocked, 3 passed in 12.3 s")
    assert ghstatus.summary_status({"passed": 2}, 0, 1)[0] is State.SUCCESS
    assert ghstatus.summary_status({"cancelled": 2}, 2, 1) == (State.ERROR, "2 cancelled in 1.0 s")


TARGET = Target("https://api.github.com", "acme/widgets", SHA)
NOW = 1_800_000_000.0


LIMITED = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}
PAST_RESET = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)}


@pytest.mark.parametrize(
    ("reply", "kind", "delay", "said"),
    [
        (Reply(201, {}, ""), Kind.POSTED, 0, ""),
        (Reply(401, {}, "Bad credentials"), Kind.FATAL, 0, "the token was refused (not retried"),
        (Reply(404, {}, "Not Found"), Kind.FATAL, 0, "no repository acme/widgets at https://api.github.com"),
        (Reply(403, {}, "Resource not accessible by integration"), Kind.FATAL, 0, "statuses: write"),
        (Reply(422, {}, "No commit found for SHA"), Kind.FAILED, 0, "not retried"),
        (Reply(400, {}, "Problems parsing JSON"), Kind.FAILED, 0, "not retried"),
        (Reply(301, {"location": "https://api.github.com/repositories/1"}, "Moved"), Kind.FAILED, 0, "not followed"),
        (Reply(500, {}, "Server Error"), Kind.RETRY, 0, "500 Server Error"),
        (Reply(503, {"retry-after": "7"}, "Unavailable"), Kind.RETRY, 7, "503"),
        (Reply(403, LIMITED, "API rate limit exceeded"), Kind.WAIT, 31, "rate limited until"),
        (Reply(403, {"retry-after": "12"}, "You have exceeded a secondary rate limit"), Kind.WAIT, 12, "rate limited"),
        (Reply(403, {}, "You have exceeded a secondary rate limit"), Kind.WAIT, 60, "rate limited"),
        (Reply(429, {}, "Too many requests"), Kind.WAIT, 60, "rate limited"),
        (Reply(429, PAST_RESET, ""), Kind.WAIT, 1, "rate limited"),
    ],
)
def test_what_an_answer_means(reply: Reply, kind: Kind, delay: float, said: str) -> None:
    verdict = ghstatus.judge(reply, TARGET, NOW)
    assert verdict.kind is kind
    assert verdict.delay == pytest.approx(delay)
    assert said in verdict.reason


def test_retry_after_as_an_http_date() -> None:
    reply = Reply(429, {"retry-after": "Fri, 15 Jan 2027 08:00:10 GMT"}, "")
    now = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    assert ghstatus.rate_limit_delay(reply, now) == pytest.approx(10)


def test_the_sender_posts_in_order_with_the_documented_request(server: StatusServer) -> None:
    sender = Sender(target(server), TOKEN, timeout=30, user_agent="pytest-cidag/test")
    sender.submit(CommitStatus("cidag/a", State.PENDING, "queued", "https://ci.example.com/a"))
    sender.submit(CommitStatus("cidag", State.PENDING, "running 1 job"))
    tally = sender.finish(60)
    assert (tally.posted, sum(tally.failed.values())) == (2, 0)
    first, second = server.requests
    assert first.method == "POST"
    assert first.path == f"/repos/acme/widgets/statuses/{SHA}"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == ghstatus.API_VERSION
    assert first.headers["user-agent"] == "pytest-cidag/test"
    assert first.headers["content-type"] == "application/json"
    assert first.body == {
        "state": "pending",
        "context": "cidag/a",
        "description": "queued",
        "target_url": "https://ci.example.com/a",
    }
    assert second.body == {"state": "pending", "context": "cidag", "description": "running 1 job"}
    assert TOKEN not in repr(sender)


def test_a_newer_status_replaces_one_of_its_context_that_waits(server: StatusServer) -> None:
    gate = threading.Event()
    server.answer(Answer(gate=gate))  # the first request waits for the gate
    sender = Sender(target(server), TOKEN, timeout=30)
    sender.submit(CommitStatus("cidag/a", State.PENDING, "queued"))
    server.wait_for(lambda requests: len(requests) == 1)  # in flight
    sender.submit(CommitStatus("cidag/b", State.PENDING, "queued"))
    sender.submit(CommitStatus("cidag/c", State.PENDING, "queued"))
    sender.submit(CommitStatus("cidag/b", State.SUCCESS, "passed in 1.0 s"))
    gate.set()
    tally = sender.finish(60)
    assert [(r.body["context"], r.body["state"]) for r in server.requests] == [
        ("cidag/a", "pending"),
        ("cidag/b", "success"),  # where b's pending stood: b before c
        ("cidag/c", "pending"),
    ]
    assert (tally.posted, tally.superseded) == (3, 1)
    assert tally.line() == "3 posted, 0 failed; 1 replaced by a newer status before being sent"


def test_a_refused_token_stops_all_posting_at_the_first_answer(server: StatusServer) -> None:
    server.answer(Answer(401, body={"message": f"Bad credentials for {TOKEN}"}))  # echoes the token
    sender = Sender(target(server), TOKEN, timeout=30)
    for name in "abc":
        sender.submit(CommitStatus(f"cidag/{name}", State.PENDING, "queued"))
    tally = sender.finish(60)
    assert len(server.requests) == 1
    assert tally.posted == 0
    [(reason, count)] = tally.failed.items()
    assert count == 3
    assert TOKEN not in reason
    assert reason.startswith("401 Bad credentials for ***: the token was refused (not retried")


def test_a_server_error_is_retried(server: StatusServer) -> None:
    server.answer(Answer(500, body={"message": "Server Error"}), Answer(502, body={"message": "Bad Gateway"}))
    sender = Sender(target(server), TOKEN, timeout=30)
    sender.submit(CommitStatus("cidag/a", State.SUCCESS, "passed"))
    tally = sender.finish(60)
    assert [r.answered for r in server.requests] == [500, 502, 201]
    assert len({json.dumps(r.body) for r in server.requests}) == 1  # the same status each time
    assert (tally.posted, sum(tally.failed.values())) == (1, 0)


def test_a_server_that_always_fails_costs_each_status_after_the_first_one_try(server: StatusServer) -> None:
    server.answer(*[Answer(500, body={"message": "Server Error"})] * (ghstatus.MAX_TRIES + 2))
    sender = Sender(target(server), TOKEN, timeout=30)
    for name in "abcd":
        sender.submit(CommitStatus(f"cidag/{name}", State.SUCCESS, "passed"))
    tally = sender.finish(60)
    contexts = [r.body["context"] for r in server.requests]
    # a: all its tries; b and c: one each (the API is down); d: one, answered 201
    assert contexts == ["cidag/a"] * ghstatus.MAX_TRIES + ["cidag/b", "cidag/c", "cidag/d"]
    assert tally.posted == 1
    assert tally.failed == {"500 Server Error": 3}


def test_a_rate_limit_holds_every_request_until_its_reset(server: StatusServer) -> None:
    reset = int(time.time()) + 2
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    server.answer(Answer(403, limited, {"message": "API rate limit exceeded for user ID 1."}))
    sender = Sender(target(server), TOKEN, timeout=30)
    sender.submit(CommitStatus("cidag/a", State.PENDING, "queued"))
    sender.submit(CommitStatus("cidag/b", State.PENDING, "queued"))
    tally = sender.finish(60)
    first, *later = server.requests
    assert first.answered == 403
    assert [r.body["context"] for r in later] == ["cidag/a", "cidag/b"]
    assert all(r.wall >= reset for r in later)  # none before the reset
    assert (tally.posted, sum(tally.failed.values())) == (2, 0)


def test_a_rate_limit_past_the_end_fails_at_once_saying_until_when(server: StatusServer) -> None:
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
    server.answer(Answer(403, limited, {"message": "API rate limit exceeded"}))
    sender = Sender(target(server), TOKEN, timeout=30)
    sender.submit(CommitStatus("cidag/a", State.PENDING, "queued"))
    server.wait_for(lambda requests: len(requests) == 1)
    tally = sender.finish(0.5)
    assert len(server.requests) == 1
    [(reason, count)] = tally.failed.items()
    assert count == 1
    assert reason.startswith("rate limited until ")
    assert "403 API rate limit exceeded" in reason


def test_a_request_that_gets_no_answer_times_out_and_is_tried_again(server: StatusServer) -> None:
    server.answer(Answer(hang=True))
    sender = Sender(target(server), TOKEN, timeout=0.5)
    sender.submit(CommitStatus("cidag/a", State.SUCCESS, "passed"))
    tally = sender.finish(60)
    assert [r.answered for r in server.requests] == [None, 201]
    assert (tally.posted, sum(tally.failed.values())) == (1, 0)


def test_finish_waits_no_longer_than_it_is_told_for_a_hanging_request(server: StatusServer) -> None:
    server.answer(Answer(hang=True))
    sender = Sender(target(server), TOKEN, timeout=600)  # the request alone would take 10 minutes
    sender.submit(CommitStatus("cidag/a", State.SUCCESS, "passed"))
    sender.submit(CommitStatus("cidag/b", State.SUCCESS, "passed"))
    server.wait_for(lambda requests: len(requests) == 1)
    tally = sender.finish(0.2)  # returns: the test would hang here otherwise
    assert tally.posted == 0
    assert tally.failed == {"not sent within the 0.2 s the run waits for them at its end": 2}


def test_an_unreachable_api_is_a_reason_not_an_exception(server: StatusServer) -> None:
    import socket

    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        sender = Sender(Target(f"http://127.0.0.1:{port}", "acme/widgets", SHA), TOKEN, timeout=5)
        sender.submit(CommitStatus("cidag/a", State.SUCCESS, "passed"))
        tally = sender.finish(0.5)
    [(reason, count)] = tally.failed.items()
    assert count == 1
    assert reason == f"the API at http://127.0.0.1:{port} is unreachable: Connection refused"


def test_a_token_no_header_can_carry_fails_without_showing_it(server: StatusServer) -> None:
    token = "ghp_first\nX-Injected: yes"
    sender = Sender(target(server), token, timeout=30)
    sender.submit(CommitStatus("cidag/a", State.SUCCESS, "passed"))
    sender.submit(CommitStatus("cidag/b", State.SUCCESS, "passed"))
    tally = sender.finish(60)
    assert server.requests == []
    [(reason, count)] = tally.failed.items()
    assert count == 2
    assert reason == "the request could not be made (ValueError)"
