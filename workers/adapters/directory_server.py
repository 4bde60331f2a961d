"""The simulated 1177 account directory behind HTTP, speaking ``HttpAccountDirectory``'s JSON.

For integration tests and load tests: it serves ``SimulatedAccountDirectory``'s answers on
loopback, and can be told to misbehave (answer slowly, answer with a status such as 503 or 401,
for every request or only the next few) to show how the client copes. Run it on its own with
``omvant sim directory --port 0``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from workers.adapters.account_directory import AccountDirectory, account_to_json
from workers.adapters.http_account_directory import LOOKUP_PATH, MAX_BATCH
from workers.adapters.http_simulator import JsonHandler, ServedInThread

_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
MAX_BODY_BYTES = 64 * 1024


@dataclass
class Faults:
    """How the server misbehaves: ``delay`` seconds before each look-up's answer; ``status``
    answers look-ups with that HTTP status, every one (``times`` None) or only the next
    ``times``, after which it serves normally again."""

    delay: float = 0.0
    status: int | None = None
    times: int | None = None


class DirectoryServer(ServedInThread):
    """An HTTP server on ``host:port`` (port 0: any free port) answering from ``directory``.

    Use as a context manager, or ``start()`` and ``stop()``; ``url`` is where it listens.
    ``requests`` and ``numbers`` count the look-ups served (batching and caching show there).
    """

    thread_name = "directory-server"

    def __init__(
        self,
        directory: AccountDirectory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.directory = directory
        self.faults = faults or Faults()
        self.requests = 0
        self.numbers = 0
        self._lock = threading.Lock()
        self._serve_on(host, port, _handler_for(self))

    def fault_status(self) -> int | None:
        """The status this request must fail with, if any (counts down ``times``)."""
        with self._lock:
            self.requests += 1
            faults = self.faults
            if faults.status is None or faults.times == 0:
                return None
            if faults.times is not None:
                faults.times -= 1
            return faults.status

    def answer(self, body: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer for one look-up request body."""
        numbers = body.get("personnummer") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not all(
            isinstance(n, str) and _TWELVE_DIGITS.fullmatch(n) for n in numbers
        ):
            return 422, {"error": "personnummer must be a list of 12-digit strings"}
        if len(numbers) > MAX_BATCH:
            return 413, {"error": f"at most {MAX_BATCH} numbers per request"}
        with self._lock:
            self.numbers += len(numbers)
        accounts = self.directory.lookup_many(numbers)
        return 200, {"accounts": [account_to_json(a) for a in accounts.values()]}


def _handler_for(server: DirectoryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's handler name
            if self.path == "/health":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's handler name
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.reply(413, {"error": "body too large"}, close=True)
                return
            raw = self.rfile.read(length)
            if self.path != LOOKUP_PATH:
                self.reply(404, {"error": "not found"})
                return
            if server.faults.delay:
                time.sleep(server.faults.delay)
            status = server.fault_status()
            if status is not None:
                self.reply(status, {"error": "simulated fault"})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self.reply(400, {"error": "not JSON"})
                return
            self.reply(*server.answer(body))

    return Handler
