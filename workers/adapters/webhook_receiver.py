"""A simulated integration's webhook endpoint: receives Omvänt's status callbacks over HTTP,
checks their signatures, and keeps each event once (by ``Omvant-Event-Id``).

For tests and load tests (``omvant sim webhook-receiver``): ``fail_first`` answers the first N
callbacks with 503 so that retries can be seen; ``events`` holds what arrived, ``deliveries``
counts every POST (repeats included) and ``bad_signatures`` those whose signature was wrong.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workers.adapters.http_simulator import ServedInThread
from workers.webhooks import EVENT_ID, SIGNATURE, verify

MAX_BODY_BYTES = 1024 * 1024


class WebhookReceiver(ServedInThread):
    """An HTTP server on ``host:port`` (0: any free port) taking POSTs on any path."""

    thread_name = "webhook-receiver"

    def __init__(
        self,
        *,
        signing_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        fail_first: int = 0,
        out: Path | None = None,
    ) -> None:
        self.signing_key = signing_key
        self.fail_first = fail_first
        self.out = out
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        """The webhook URL to give ``omvant api-keys create --webhook-url``."""
        return f"{self.base_url}/omvant-events"

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer one callback with; records it if it is new and signed."""
        with self._lock:
            self.deliveries += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                return 503
            if self.signing_key is not None and not verify(
                body, headers.get(SIGNATURE.lower(), ""), self.signing_key
            ):
                self.bad_signatures += 1
                return 401
            try:
                event = json.loads(body)
            except ValueError:
                return 400
            event_id = headers.get(EVENT_ID.lower()) or str(event.get("id"))
            if event_id not in self.events:
                self.events[event_id] = event
                if self.out is not None:
                    with self.out.open("a", encoding="utf-8") as file:
                        file.write(json.dumps(event) + "\n")
            return 204


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(receiver.take(body, headers))

        def do_GET(self) -> None:
            payload = json.dumps(
                {"events": len(receiver.events), "deliveries": receiver.deliveries}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
