"""The 1177 inbox simulator over HTTP: idempotent on the delivery key, and it counts.

Shipped so that ``HttpInbox``, the chaos suite and load tests deliver over real HTTP to a
separate process that outlives any worker, as the real inbox does; runnable on its own with
``omvant sim inbox --port N``. The API (JSON):

``POST /v1/messages``  an ``InboxMessage`` as JSON with an ``Idempotency-Key`` header:
    201 (new) or 200 (that key was delivered before: nothing new for the resident)
    ``{"id": ..., "key": ..., "new": bool}``; 400 without a key or with a bad body; 409 when
    the key was taken for another case; 422 for a refused resident; 503 when told to.
``GET /v1/stats``  ``{"attempts", "distinct", "duplicates_refused"}``: every accepted POST,
    the messages stored (one per key), and the POSTs answered 200.
``GET /v1/messages?key=K``  the message taken under that key (id, key, case id, when), or 404;
    without ``key``: ``{"keys": [...]}``, every key in the order taken.
``GET /v1/control``, ``POST /v1/control``  the behaviour: ``delay_before`` / ``delay_after``
    seconds (slow before or after storing the message: after is how a client times out on a
    message that was taken), ``fail_next`` (that many 503s), ``refuse`` (case ids answered 422).

Message bodies and identity numbers are kept in memory only for the resident's sake and are
never written to a log or returned by the API. Written on the standard library's HTTP server,
like the SMS-gateway simulator: it needs no dependency and serves a test's load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.adapters.http_simulator import Behaviour, JsonHandler, ServedInThread
from workers.adapters.inbox_records import InboxRecords, MemoryInboxRecords
from workers.adapters.keyed_records import KeyReused


@dataclass
class InboxBehaviour(Behaviour):
    """What the simulator does with the next deliveries (changed with ``POST /v1/control``);
    ``refuse`` names case ids."""


class _Handler(JsonHandler):
    server: _InboxHttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's handler name
        parts = urlsplit(self.path)
        sim = self.server.sim
        if parts.path == "/v1/stats":
            self.reply(200, asdict(sim.records.stats()))
        elif parts.path == "/v1/control":
            with sim.lock:
                self.reply(200, asdict(sim.behaviour))
        elif parts.path == "/v1/messages":
            key = parse_qs(parts.query).get("key")
            if not key:
                self.reply(200, {"keys": sim.records.taken_keys()})
                return
            found = sim.records.find(key[-1])
            self.reply(200 if found else 404, found or {"error": "not-found"})
        else:
            self.reply(404, {"error": "not-found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's handler name
        body = self.read_json()
        path = urlsplit(self.path).path
        if path == "/v1/control":
            if self.refused_control(body, InboxBehaviour):
                return
            self.server.sim.behave(**(body or {}))
            self.reply(200, asdict(self.server.sim.behaviour))
        elif path == "/v1/messages":
            self._deliver(body)
        else:
            self.reply(404, {"error": "not-found"})

    def _deliver(self, body: dict[str, Any] | None) -> None:
        sim = self.server.sim
        key = self.headers.get("Idempotency-Key", "")
        case_id = body.get("case_id") if body else None
        if not key or not isinstance(case_id, str) or not case_id:
            self.reply(400, {"error": "bad-request", "detail": "Idempotency-Key and case_id"})
            return
        with sim.lock:
            behaviour = sim.behaviour
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                self.reply(503, {"error": "unavailable"})
                return
            refused = case_id in behaviour.refuse
        if refused:
            self.reply(422, {"error": "resident-refused"})
            return
        time.sleep(behaviour.delay_before)
        try:
            taken = sim.records.take(key, case_id)
        except KeyReused:
            self.reply(409, {"error": "idempotency-key-reused"})
            return
        time.sleep(behaviour.delay_after)
        self.reply(201 if taken.new else 200, {"id": taken.id, "key": key, "new": taken.new})


class _InboxHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: InboxSimulator) -> None:
        super().__init__(address, _Handler)
        self.sim = sim


class InboxSimulator(ServedInThread):
    """The simulator in a background thread: ``start()`` it, read ``url``, ``stop()`` it
    (``serve_forever()`` for ``omvant sim inbox``)."""

    thread_name = "inbox-sim"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, records: InboxRecords | None = None
    ) -> None:
        self.records = records or MemoryInboxRecords()
        self.behaviour = InboxBehaviour()
        self.lock = threading.Lock()
        self._httpd = _InboxHttpServer((host, port), self)

    def behave(self, **changes: Any) -> None:
        """Change the behaviour, as ``POST /v1/control`` does."""
        with self.lock:
            self.behaviour = InboxBehaviour(**{**asdict(self.behaviour), **changes})
