"""What every HTTP simulator of an outside system does with its server: serve it in a background
thread (or this one), give its base URL, stop it and release the port; what its request
handler does: stay quiet, read a JSON object, answer JSON, check a ``POST /control`` body; and
the behaviour settings the simulators share."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Behaviour:
    """What a simulator does with the next requests (changed with its ``POST .../control``)."""

    delay_before: float = 0.0
    """Seconds to wait before taking a request."""
    delay_after: float = 0.0
    """Seconds to wait after taking it, before answering: how a client times out on a request
    that was taken (in doubt)."""
    fail_next: int = 0
    """How many of the next requests are answered 503."""
    refuse: list[str] = field(default_factory=list)
    """The recipients refused for good (422)."""


@dataclass
class ThrottledBehaviour(Behaviour):
    """A provider's behaviour that also says 429 (too many requests) when told to."""

    throttle_next: int = 0
    """How many of the next requests are answered 429."""
    retry_after: float = 1.0
    """The seconds a 429's ``Retry-After`` says."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


_VALID: dict[str, Callable[[Any], bool]] = {
    "float": _is_number,
    "int": lambda value: _is_number(value) and isinstance(value, int),
    "list[str]": lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
}


def control_problem(behaviour: type, changes: dict[str, Any]) -> str | None:
    """Why ``changes`` cannot be the new ``behaviour`` (a dataclass of ``float`` seconds, ``int``
    counts and ``list[str]`` refusals, each not negative), or ``None``: a bad value would
    otherwise be taken and break every later request (the simulator would answer nothing)."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(behaviour)}  # postponed: "float"
    for name, value in changes.items():
        if name not in kinds:
            return f"unknown setting {name[:40]!r}"
        if not _VALID[kinds[name]](value):
            return f"{name}: not a valid value"
    return None


class JsonHandler(BaseHTTPRequestHandler):
    """The request handler every simulator builds on: logs nothing (request lines and bodies
    carry personal data), reads the body as a JSON object and answers JSON."""

    max_body_bytes: int | None = None
    """A larger body is not read (``read_json`` gives ``None``) and the connection is closed."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: request lines and bodies carry numbers, addresses and other personal data."""

    def reply(
        self,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        """Answer ``status`` with ``body`` as JSON (and ``Connection: close`` if ``close``)."""
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away: what it sent stays taken

    def read_json(self) -> dict[str, Any] | None:
        """The request's JSON object, or ``None`` when the body is not one (or is too large)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if self.max_body_bytes is not None and length > self.max_body_bytes:
            self.close_connection = True
            return None
        try:
            value = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def refused_control(self, body: dict[str, Any] | None, behaviour: type) -> bool:
        """Answer 400 and say so when ``body`` cannot be a ``POST /control``'s new
        ``behaviour`` (see ``control_problem``)."""
        problem = "not a JSON object" if body is None else control_problem(behaviour, body)
        if problem:
            self.reply(400, {"error": "bad-request", "detail": problem})
        return bool(problem)


class ServedInThread:
    """Start, serve and stop of a simulator's ``ThreadingHTTPServer`` (``self._httpd``)."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread | None = None
    thread_name = "http-simulator"

    def _serve_on(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind the server (port 0: any free one); each request in a daemon thread."""
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The URL a client of the simulator is given (its HTTP adapter's base URL)."""
        return self.base_url

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
