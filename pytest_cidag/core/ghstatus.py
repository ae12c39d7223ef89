"""GitHub commit statuses: where they go, what each job's says, and a sender that posts them
from a background thread without ever holding the run up. Pure: no pytest import.

Only ``POST /repos/{owner}/{repo}/statuses/{sha}`` is spoken, through the standard library's
``urllib.request`` (it honours ``HTTPS_PROXY`` / ``NO_PROXY`` as a self-hosted box behind a
proxy needs), with redirects refused: urllib would send the ``Authorization`` header along to
wherever a redirect points. The token is held by :class:`Sender` alone and never put into a
reason, a repr or a message (:func:`redact` guards what the API echoes back).

Loaded only by a run given ``--cidag-status`` (:mod:`pytest_cidag.commitstatus`); the
pytest glue is there.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import http.client
import json
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

#: The API of github.com; a GitHub Enterprise Server's is ``https://HOST/api/v3``.
DEFAULT_API_URL = "https://api.github.com"
#: The REST API version asked for (GitHub's header ``X-GitHub-Api-Version``).
API_VERSION = "2022-11-28"
#: GitHub refuses a longer description (422).
DESCRIPTION_LIMIT = 140
#: Tries of one status on a 5xx answer or a network error (the first included).
MAX_TRIES = 4
#: Seconds before the second try; doubled for each later one, with jitter.
BACKOFF = 1.0
#: Rate-limit waits one status may take (each honours what GitHub said) before it fails.
MAX_RATE_LIMIT_WAITS = 5
#: GitHub's advice for a secondary rate limit that names no time: wait at least a minute.
SECONDARY_RATE_LIMIT_WAIT = 60.0
#: Loopback hosts: the only ones the token may be sent to over plain http.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or a SHA-256 repository's
#: ``[user@]host:owner/name`` (scp-like ssh), with no ``://``.
SCP_RE = re.compile(r"(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)")


class State(StrEnum):
    """The four states of a commit status."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True)
class Target:
    """Where statuses go: ``{api_url}/repos/{repo}/statuses/{sha}``."""

    api_url: str  # no trailing slash
    repo: str  # owner/name
    sha: str

    @property
    def endpoint(self) -> str:
        return f"{self.api_url}/repos/{self.repo}/statuses/{self.sha}"

    def shown(self) -> str:
        return f"{self.repo}@{self.sha[:7]}"


@dataclass(frozen=True)
class CommitStatus:
    """One status to post; the description is cut to GitHub's limit here."""

    context: str
    state: State
    description: str
    target_url: str | None = None

    def body(self) -> bytes:
        data: dict[str, str] = {"state": self.state.value, "context": self.context}
        data["description"] = cut(self.description)
        if self.target_url:
            data["target_url"] = self.target_url
        return json.dumps(data).encode()


def cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters (ending in ``…`` when cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


# --- where: repository, API, commit ---------------------------------------------------------


def is_repo_name(name: str) -> bool:
    """``owner/name`` as GitHub allows them (a name of only dots is not one)."""
    return REPO_RE.fullmatch(name) is not None and name.split("/")[1].strip(".") != ""


@dataclass(frozen=True)
class Remote:
    """A git remote on a GitHub host: ``host`` (with a port for an https remote) and ``repo``."""

    host: str
    repo: str

    @property
    def api_url(self) -> str:
        return api_url_for(self.host)


def parse_remote(url: str) -> Remote | None:
    """The GitHub host and repository a remote URL names, or None: ``https://HOST/o/r.git``
    (credentials in it ignored), ``ssh://git@HOST[:port]/o/r.git``, ``git@HOST:o/r.git``,
    ``git://HOST/o/r``. An ssh remote's port is ssh's, not the API's, so it is dropped."""
    url = url.strip()
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git") or not parts.hostname:
            return None
        host = parts.hostname
        with contextlib.suppress(ValueError):  # a port that is not a number: none
            if parts.scheme in ("https", "http") and parts.port is not None:
                host = f"{host}:{parts.port}"
        path = parts.path
    else:
        match = SCP_RE.fullmatch(url)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git")
    return Remote(host.lower(), path) if is_repo_name(path) else None


def api_url_for(host: str) -> str:
    """github.com's API, or a GitHub Enterprise Server's REST API on ``host``."""
    return DEFAULT_API_URL if host in ("github.com", "www.github.com") else f"https://{host}/api/v3"


def without_credentials(url: str) -> str:
    """A remote URL fit to show: what stands before ``@`` in its host part is dropped."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def api_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the API base, or None. The token goes with every request, so
    plain http is refused except to a loopback host (a local proxy, a test server)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "an http(s) URL is expected, such as https://github.example.com/api/v3"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        return "the token would cross the network in the clear: use https (http is for a loopback host only)"
    if parts.query or parts.fragment:
        return "a URL without ?query or #fragment is expected"
    return None


def pull_request_head(event_name: str | None, event_path: str | None) -> str | None:
    """The head commit of the pull request a GitHub Actions run is for, or None.

    For ``pull_request`` events ``GITHUB_SHA`` is the merge commit GitHub made, on which a
    status shows nowhere on the pull request; its head is in the event's payload."""
    if event_name not in ("pull_request", "pull_request_target") or not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        sha = event["pull_request"]["head"]["sha"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sha if isinstance(sha, str) and SHA_RE.fullmatch(sha) else None


# --- what: each job's status ------------------------------------------------------------------

#: A job's outcome -> the state its status gets. A status has only these four states (no
#: "skipped" or "neutral" as check runs have), and branch protection lets a pull request
#: merge only when each required context is ``success``: so ``success`` is kept for a job
#: that passed, or that decided by itself it has nothing to do (exit 77, as a GitHub Actions
#: job whose ``if:`` is false counts as passed); a job that did not run because of others
#: (blocked, cancelled) is ``error``, never green. README "Commit statuses" says why.
STATES: Mapping[str, State] = {
    "passed": State.SUCCESS,
    "cached": State.SUCCESS,  # passed before with these very inputs: a pass, not a skip
    "skipped": State.SUCCESS,  # its own exit 77: "nothing to do here"
    "failed": State.FAILURE,
    "timeout": State.FAILURE,
    "error": State.ERROR,  # its setup or teardown failed: the runner's trouble, not a verdict
    "crashed": State.ERROR,  # its worker died under it: no verdict
    "blocked": State.ERROR,  # not run: a job it needs did not pass
    "cancelled": State.ERROR,  # not run, or killed: the run was stopped
}
#: The order outcomes are counted in the summary's description.
SUMMARY_ORDER = ("failed", "timeout", "error", "crashed", "blocked", "cancelled", "passed", "cached", "skipped")
SUMMARY_WORDS = {"timeout": "timed out", "crashed": "crashed a worker"}


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def job_status(
    outcome: str,
    *,
    duration: float | None = None,
    reason: str | None = None,
    returncode: int | None = None,
    signal: str | None = None,
) -> tuple[State, str]:
    """The state and description of a job's status, from its outcome (a key of
    :data:`STATES`) and what is known of its end."""
    took = f" after {seconds(duration)}" if duration is not None else ""
    if outcome == "passed":
        text = f"passed in {seconds(duration)}" if duration is not None else "passed"
    elif outcome == "cached":
        text = "passed: cache hit (passed before with these inputs; not run again)"
    elif outcome == "failed":
        how = f": killed by {signal}" if signal else f": exit code {returncode}" if returncode is not None else ""
        text = f"failed{how}{took}"
    elif outcome == "timeout":
        text = f"timed out: killed{took}"
    elif outcome == "error":
        text = f"error outside the job's script{took}" + (f": {reason}" if reason else "")
    elif outcome == "crashed":
        text = "error: its pytest-xdist worker crashed while it ran"
    elif outcome == "skipped":
        text = f"skipped: {reason}" if reason else "skipped"
    elif outcome == "blocked":
        text = f"not run: {reason}" if reason else "not run: a job it needs did not pass"
    elif outcome == "cancelled":
        text = f"cancelled: {reason}" if reason else "cancelled"
    else:
        raise ValueError(f"unknown outcome {outcome!r}")
    return STATES[outcome], cut(text)


def summary_status(counts: Mapping[str, int], exit_status: int, duration: float) -> tuple[State, str]:
    """The run's own status (context ``cidag``): its state follows pytest's exit status (0
    success, 1 failure: a job or test failed, anything else error: interrupted, usage error);
    the description counts the jobs' outcomes."""
    state = State.SUCCESS if exit_status == 0 else State.FAILURE if exit_status == 1 else State.ERROR
    parts = [f"{counts[k]} {SUMMARY_WORDS.get(k, k)}" for k in SUMMARY_ORDER if counts.get(k)]
    return state, cut(", ".join(parts or ["no jobs"]) + f" in {seconds(duration)}")


# --- how: one request, and what its answer means ----------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: its code, headers (lower-case names) and GitHub's ``message``."""

    code: int
    headers: Mapping[str, str]
    message: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect becomes its 3xx answer: urllib would carry the token to its new place."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(target: Target, token: str, status: CommitStatus, timeout: float, user_agent: str) -> Reply:
    """POST one status. Any HTTP answer is a :class:`Reply`; a network failure (no
    connection, no answer within ``timeout`` seconds of connecting or of each read) raises
    ``OSError`` (``TimeoutError`` for the latter)."""
    request = urllib.request.Request(
        target.endpoint,
        data=status.body(),
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": user_agent,
            "X-GitHub-Api-Version": API_VERSION,
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, _headers(response.headers), _message(response.read(65536)))
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                body = exc.read(65536)
            except OSError:
                body = b""
            return Reply(exc.code, _headers(exc.headers), _message(body))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            raise exc.reason from None
        raise OSError(str(exc.reason)) from None
    except http.client.HTTPException as exc:  # a broken answer (no status line, cut short)
        raise OSError(f"a broken answer ({type(exc).__name__})") from None


def _headers(headers: object) -> dict[str, str]:
    items = getattr(headers, "items", None)
    return {str(k).lower(): str(v) for k, v in items()} if items else {}


def _message(body: bytes) -> str:
    """GitHub's ``message`` from a JSON body, else the body's start."""
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(text).get("message")
        if isinstance(message, str):
            return cut(message, 200)
    return cut(text, 200)


class Kind(StrEnum):
    """What to do after an answer."""

    POSTED = "posted"
    RETRY = "retry"  # a transient failure: try again after a backoff
    WAIT = "wait"  # rate limited: try again at the time GitHub said
    FAILED = "failed"  # this status cannot be posted; others may
    FATAL = "fatal"  # no status can be posted (bad token, no such repository)


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str = ""
    delay: float = 0.0  # seconds, for RETRY (GitHub's Retry-After, if it said) and WAIT


def rate_limit_delay(reply: Reply, now: float) -> float | None:
    """Seconds GitHub asks to wait before the next request, or None when ``reply`` is no rate
    limit. ``Retry-After`` first, then ``X-RateLimit-Remaining: 0`` with its reset time,
    then (a secondary limit naming no time) GitHub's advice of a minute."""
    headers = reply.headers
    after = _retry_after(headers, now)
    if after is not None:
        return after
    if headers.get("x-ratelimit-remaining") == "0":
        with contextlib.suppress(ValueError):
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now) + 1.0  # reset is whole seconds
    if reply.code == 429 or "rate limit" in reply.message.lower():
        return SECONDARY_RATE_LIMIT_WAIT
    return None


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):  # the HTTP-date form
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    return None


def _until(now: float, delay: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(now + delay))


def judge(reply: Reply, target: Target, now: float) -> Verdict:  # noqa: PLR0911 (one return per kind of answer)
    """What an answer means for the status sent, and for those still to send."""
    code, said = reply.code, f"{reply.code} {reply.message}".rstrip()
    if 200 <= code < 300:
        return Verdict(Kind.POSTED)
    if code in (403, 429):
        delay = rate_limit_delay(reply, now)
        if delay is not None:
            return Verdict(Kind.WAIT, f"rate limited until {_until(now, delay)} ({said})", delay)
    if code == 401:
        return Verdict(Kind.FATAL, f"{said}: the token was refused (not retried: every request would be refused alike)")
    if code == 403:
        return Verdict(
            Kind.FATAL,
            f"{said}: the token may not write commit statuses (it needs 'statuses: write' or the repo:status "
            "scope; not retried: every request would be refused alike)",
        )
    if code == 404:
        return Verdict(
            Kind.FATAL,
            f"{said}: no repository {target.repo} at {target.api_url}, or the token cannot see it "
            "(not retried: every request would get the same answer)",
        )
    if code == 422:
        return Verdict(Kind.FAILED, f"{said} (not retried: GitHub would refuse the same request again)")
    if 300 <= code < 400:
        where = reply.headers.get("location", "elsewhere")
        return Verdict(
            Kind.FAILED,
            f"{said}: redirected to {where}, not followed so that the token stays with the API "
            "(a renamed repository? name it as it is now)",
        )
    if code >= 500:
        return Verdict(Kind.RETRY, said, _retry_after(reply.headers, now) or 0.0)
    return Verdict(Kind.FAILED, f"{said} (not retried: GitHub would refuse the same request again)")


def network_trouble(exc: OSError, target: Target, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"the API at {target.api_url} did not answer within {timeout:g} s"
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"the API at {target.api_url} is unreachable: {why}"


# --- the sender --------------------------------------------------------------------------------


@dataclass
class Tally:
    """What became of the statuses given to a :class:`Sender`."""

    posted: int = 0
    #: reason -> how many statuses failed for it
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    #: statuses replaced by a newer one for their context before they were sent
    superseded: int = 0

    def line(self) -> str:
        """``7 posted, 2 failed (reason)``; several reasons are counted each."""
        total = sum(self.failed.values())
        text = f"{self.posted} posted, {total} failed"
        if len(self.failed) == 1:
            text += f" ({next(iter(self.failed))})"
        elif self.failed:
            text += " (" + "; ".join(f"{n}: {reason}" for reason, n in self.failed.most_common()) + ")"
        if self.superseded:
            text += f"; {self.superseded} replaced by a newer status before being sent"
        return text


class Sender:
    """Posts commit statuses one at a time, in the order given, from a daemon thread.

    :meth:`submit` never blocks on the network; :meth:`finish` waits a bounded time. One
    thread and one request at a time keep each context's statuses in order, and a rate
    limit holds back every request (GitHub's limits are per token, not per context).

    Attributes (the queue, the tally and what :meth:`finish` sets under ``_cond``'s lock;
    ``_not_before``, ``_fatal``, ``_down`` and ``_last_trouble`` are the thread's, which
    :meth:`finish` only reads):
        _queue: contexts with a status waiting, oldest first.
        _waiting: context -> its newest status not yet sent: a status for a context that
            already waits replaces it where it stands (``superseded``), so a slow API gets
            each job's last word rather than a backlog of its "pending".
        _in_flight: True while the thread sends a status (taken off the queue).
        _not_before: no request before this time (epoch s): a rate limit's end.
        _fatal: set by an answer that no request can succeed after (401, 403, 404); every
            later status fails with it, unsent.
        _down: set when a status used all its tries on a network error or 5xx; later
            statuses get one try each until an answer comes (an API that is down would
            otherwise cost every status the whole backoff).
        _deadline: set by :meth:`finish`: waits that would end later give up at once.
        _abandoned: :meth:`finish` has counted what was left; the thread stops.
        tally: what became of each status.
    """

    def __init__(
        self,
        target: Target,
        token: str,
        *,
        timeout: float,
        user_agent: str = "pytest-cidag",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self._token = token
        self.timeout = timeout
        self.user_agent = user_agent
        self.clock = clock
        self.tally = Tally()
        self._cond = threading.Condition()
        self._queue: collections.deque[str] = collections.deque()
        self._waiting: dict[str, CommitStatus] = {}
        self._in_flight = False
        self._not_before = 0.0
        self._fatal: str | None = None
        self._down: str | None = None
        self._last_trouble: str | None = None
        self._deadline: float | None = None
        self._closing = False
        self._abandoned = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the token
        return f"Sender({self.target.shown()}, {self.tally.line()})"

    def submit(self, status: CommitStatus) -> None:
        """Queue ``status`` (the thread starts with the first one)."""
        with self._cond:
            if self._closing:
                return
            if status.context in self._waiting:
                self.tally.superseded += 1
            else:
                self._queue.append(status.context)
            self._waiting[status.context] = status
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cidag-commit-statuses", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def finish(self, wait: float) -> Tally:
        """Take no more statuses, wait at most ``wait`` seconds for the queue to empty, and
        return the tally; what is left counts as failed (saying why). A ``KeyboardInterrupt``
        while waiting ends the wait."""
        with self._cond:
            self._closing = True
            self._deadline = self.clock() + wait
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    left = self._deadline - self.clock()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            except KeyboardInterrupt:
                pass
            left_over = len(self._queue) + self._in_flight
            if left_over:
                why = f"not sent within the {wait:g} s the run waits for them at its end"
                trouble = self._fatal or self._last_trouble
                self.tally.failed[why + (f"; last trouble: {trouble}" if trouble else "")] += left_over
            self._queue.clear()
            self._waiting.clear()
            self._abandoned = True
            self._cond.notify_all()
            return self.tally

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:  # closing, and all sent (or abandoned: finish() emptied it)
                    return
                status = self._waiting.pop(self._queue.popleft())
                self._in_flight = True
            failure = self._deliver(status)
            with self._cond:
                self._in_flight = False
                if self._abandoned:
                    return
                if failure is None:
                    self.tally.posted += 1
                else:
                    self.tally.failed[redact(failure, self._token)] += 1
                self._cond.notify_all()

    def _deliver(self, status: CommitStatus) -> str | None:  # noqa: PLR0911 (one return per way to give up)
        """Send ``status`` until it is posted (None) or given up (the reason)."""
        tries = 1 if self._down else MAX_TRIES
        attempt = waits = 0
        while True:
            if self._fatal:
                return self._fatal
            if not self._sleep_until(self._not_before):
                return self._last_trouble or "rate limited past the end of the run"
            attempt += 1
            try:
                reply = post(self.target, self._token, status, self.timeout, self.user_agent)
            except OSError as exc:
                verdict = Verdict(Kind.RETRY, network_trouble(exc, self.target, self.timeout))
            except Exception as exc:  # a request urllib refuses to make; its message may quote the
                # token in a form redact() would not find (a repr), so only its type is said
                verdict = Verdict(Kind.FATAL, f"the request could not be made ({type(exc).__name__})")
            else:
                self._down = None
                now = self.clock()
                if reply.headers.get("x-ratelimit-remaining") == "0" and 200 <= reply.code < 300:
                    self._not_before = now + (rate_limit_delay(reply, now) or 0.0)  # the next would be refused
                verdict = judge(reply, self.target, now)
            reason = redact(verdict.reason, self._token)
            if verdict.kind is Kind.POSTED:
                return None
            self._last_trouble = reason
            if verdict.kind is Kind.FATAL:
                self._fatal = reason
                return reason
            if verdict.kind is Kind.FAILED:
                return reason
            if verdict.kind is Kind.WAIT:
                waits += 1
                attempt -= 1  # a rate limit is no failed try
                if waits > MAX_RATE_LIMIT_WAITS:
                    return reason
                self._not_before = self.clock() + verdict.delay
                continue
            delay = verdict.delay or BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            if attempt >= tries or not self._sleep_until(self.clock() + delay):  # RETRY, and no try left
                self._down = reason
                return reason

    def _sleep_until(self, when: float) -> bool:
        """Wait until ``when``; False (at once) when that is past :meth:`finish`'s deadline."""
        with self._cond:
            while True:
                now = self.clock()
                if now >= when:
                    return True
                if self._abandoned or (self._deadline is not None and when > self._deadline):
                    return False
                self._cond.wait(when - now)
