"""A stand-in for GitHub's commit statuses endpoint, on 127.0.0.1, for the tests.

It speaks ``POST /repos/{owner}/{repo}/statuses/{sha}`` as documented (201 and the status as
JSON; 404 for any other path, 405 for another method, 400 for a body that is not JSON),
records every request, and answers from a script the test sets: an :class:`Answer` per
request, in order, then 201s. An answer with ``hang=True`` never answers (until the server
stops), to stand for an API that accepts a connection and says nothing; one with a
``gate`` answers once the test opens it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH_RE = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})")


@dataclass(frozen=True)
class Answer:
    code: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None  # default: the status, as GitHub echoes it
    hang: bool = False
    gate: threading.Event | None = None  # answer only once it is set


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any
    wall: float  # when it arrived (time.time, to compare with a rate limit's reset)
    answered: int | None  # the code it got; None when it hung


class StatusServer:
    """Attributes: ``requests`` (every request so far, in arrival order, under ``lock``)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: deque[Answer] = deque()
        self.lock = threading.Condition()
        self.released = threading.Event()  # set when the server stops: hanging answers end
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                server.handle(self)

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="status-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.script.extend(answers)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self.lock:
            answer = self.script.popleft() if self.script else Answer()
        code = answer.code
        payload = answer.body
        if handler.command != "POST":
            code, payload = 405, {"message": "Method Not Allowed"}
        elif PATH_RE.fullmatch(handler.path) is None:
            code, payload = 404, {"message": "Not Found"}
        elif not isinstance(body, dict):
            code, payload = 400, {"message": "Problems parsing JSON"}
        elif payload is None:
            payload = {"id": len(self.requests) + 1, **body}
        request = Request(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            time.time(),
            None if answer.hang else code,
        )
        with self.lock:
            self.requests.append(request)
            self.lock.notify_all()
        if answer.gate is not None:
            answer.gate.wait(60)
        if answer.hang:
            self.released.wait()
            handler.close_connection = True
            return
        data = json.dumps(payload).encode()
        handler.send_response(code)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def wait_for(self, condition: Callable[[list[Request]], bool], timeout: float = 60) -> list[Request]:
        """The requests once ``condition`` holds for them (an AssertionError after ``timeout``)."""
        with self.lock:
            assert self.lock.wait_for(lambda: condition(self.requests), timeout), self.requests
            return list(self.requests)

    def statuses(self) -> dict[str, list[dict[str, Any]]]:
        """context -> the bodies posted for it, in order (those it accepted: answered 2xx)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            for request in self.requests:
                if isinstance(request.body, dict) and 200 <= (request.answered or 0) < 300:
                    out.setdefault(request.body["context"], []).append(request.body)
        return out
