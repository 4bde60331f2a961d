"""The e-mail API simulator: an HTTP e-mail provider that dedupes by idempotency key.

Shipped so that ``HttpEmailApi``, the tests and load tests send e-mail over real HTTP to a
separate process that outlives any worker, as a real provider does; runnable on its own with
``omvant sim email-api --port N [--store email.sqlite3] [--token T]``. With ``--store`` the
messages live in a SQLite file (``workers.adapters.email_api_records``): a restart, or another
simulator process on the same file, knows every key taken before. The API (JSON):

``POST /v1/messages``  ``{"to", "subject", "text", "message_id"}`` with an ``Idempotency-Key``
    header: 201 (new) or 200 (that key was taken before: nothing sent) ``{"id", "key", "new"}``;
    400 without a key or with a bad body; 401 without the token (when started with one); 409
    when the key was taken for another recipient; 422 for a refused address; 429 (with
    ``Retry-After``) or 503 when told to.
``POST /v1/messages/batch``  ``{"subject", "text", "messages": [{"to", "idempotency_key",
    "message_id"}]}`` (one e-mail, many recipients, at most ``MAX_BATCH``, else 413): 200
    ``{"results": [...]}``, one per recipient in order, ``{"idempotency_key", "status", "id"?,
    "reason"?}``, ``status`` ``accepted``, ``duplicate`` (a key taken before by either
    endpoint: nothing sent), ``refused`` (``recipient-refused``, or
    ``idempotency-key-reused`` for a key taken for another recipient); 401, 429 or 503 for the
    whole request as for one send.
``GET /v1/messages?idempotency_key=K``  the message taken under that key (id, key, to,
    message_id, at), or 404: how a client settles a send it is in doubt about. Without
    ``idempotency_key``: ``{"messages": [...]}``, every message in the order taken.
``GET /v1/stats``  ``{"attempts", "distinct", "duplicates_refused"}``: accepted POSTs, messages
    stored (one per key), POSTs answered 200.
``GET /v1/control``, ``POST /v1/control``  the behaviour: ``delay_before`` / ``delay_after``
    seconds (slow before or after storing the message: after is how a client times out on a
    message that was taken), ``fail_for`` (answer every send and lookup 503 for that many
    seconds from now: an outage), ``fail_next`` (that many sends answered 503),
    ``throttle_next`` and ``retry_after`` (that many 429s), ``refuse`` (addresses answered 422).

The messages' text is not kept (it is the one fixed notification text); nothing is logged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.adapters.email_api_records import EmailRecords
from workers.adapters.http_simulator import JsonHandler, ServedInThread, ThrottledBehaviour
from workers.adapters.keyed_records import KeyReused

MESSAGES_PATH = "/v1/messages"
BATCH_PATH = "/v1/messages/batch"
MAX_BATCH = 1000
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class EmailApiBehaviour(ThrottledBehaviour):
    """A provider's behaviour (changed with ``POST /v1/control``), and an outage on a timer."""

    fail_for: float = 0.0
    """Answer every send and lookup 503 for that many seconds from the change: an outage."""


Reply = tuple[int, dict[str, Any], dict[str, str]]


class EmailApiSimulator(ServedInThread):
    """The simulator on ``host:port`` (0: any free port): ``start()`` it (or use it as a context
    manager), read ``url``, ``stop()`` it.

    Parameters
    ----------
    store:
        A SQLite file for the messages (shared by processes, kept over restarts); ``None``: in
        memory.
    token:
        If set, sends and lookups must carry ``Authorization: Bearer <token>``.
    """

    thread_name = "email-api-sim"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store: Path | None = None,
        token: str | None = None,
    ) -> None:
        self.records = EmailRecords(store)
        self.token = token
        self.behaviour = EmailApiBehaviour()
        self._failing_until = 0.0
        self._lock = threading.Lock()
        self._serve_on(host, port, _handler_for(self))

    def stop(self) -> None:
        """Stop serving, release the port and close the store."""
        super().stop()
        self.records.close()

    def behave(self, **changes: Any) -> dict[str, Any]:
        """Change the behaviour, as ``POST /v1/control`` does; return it."""
        with self._lock:
            if "fail_for" in changes:
                self._failing_until = time.monotonic() + float(changes["fail_for"])
            self.behaviour = replace(self.behaviour, **changes)
        return self.described()

    def described(self) -> dict[str, Any]:
        """The behaviour now (``fail_for``: the seconds of the outage still to come)."""
        with self._lock:
            left = max(0.0, self._failing_until - time.monotonic())
            return {**asdict(self.behaviour), "fail_for": round(left, 3)}

    def messages(self) -> list[dict[str, object]]:
        """Every message taken (one per idempotency key)."""
        return self.records.messages()

    def _down(self) -> bool:
        return time.monotonic() < self._failing_until

    def lookup(self, key: str) -> Reply:
        """The answer to ``GET /v1/messages?idempotency_key=key``."""
        if self._down():
            return 503, {"error": "unavailable"}, {}
        found = self.records.find(key)
        return (200, found, {}) if found else (404, {"error": "not-found"}, {})

    def _fault(self, to: str | None) -> Reply | None:
        """The failure the behaviour asks for on this send (``to`` None: on a whole batch), if
        any (counting ``*_next`` down)."""
        with self._lock:
            behaviour = self.behaviour
            if self._down():
                return 503, {"error": "unavailable"}, {}
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                return 503, {"error": "unavailable"}, {}
            if behaviour.throttle_next > 0:
                behaviour.throttle_next -= 1
                retry = {"Retry-After": f"{behaviour.retry_after:g}"}
                return 429, {"error": "rate-limited"}, retry
            if to in behaviour.refuse:
                return 422, {"error": "recipient-refused"}, {}
        return None

    def send_batch(self, body: dict[str, Any] | None) -> Reply:
        """The answer to ``POST /v1/messages/batch`` (after the token was checked)."""
        wanted = _batch_messages(body)
        if wanted is None:
            return 400, {"error": "bad-request", "detail": "subject, text and messages"}, {}
        if len(wanted) > MAX_BATCH:
            return 413, {"error": "batch-too-large", "max": MAX_BATCH}, {}
        fault = self._fault(None)
        if fault is not None:
            return fault
        behaviour = self.behaviour
        time.sleep(behaviour.delay_before)
        results: list[dict[str, Any]] = []
        for to, key, mid in wanted:
            result: dict[str, Any] = {"idempotency_key": key, "status": "refused"}
            if to in behaviour.refuse:
                result["reason"] = "recipient-refused"
            else:
                try:
                    taken = self.records.take(key, to, mid)
                except KeyReused:
                    result["reason"] = "idempotency-key-reused"
                else:
                    status = "accepted" if taken.new else "duplicate"
                    result.update(status=status, id=taken.id)
            results.append(result)
        time.sleep(behaviour.delay_after)
        return 200, {"results": results}, {}

    def send(self, key: str, body: dict[str, Any] | None) -> Reply:
        """The answer to ``POST /v1/messages`` (after the token was checked)."""
        to = body.get("to") if body else None
        message_id = body.get("message_id") if body else None
        if not key or not isinstance(to, str) or not to or not isinstance(body, dict):
            return 400, {"error": "bad-request", "detail": "Idempotency-Key and to"}, {}
        if not isinstance(body.get("subject"), str) or not isinstance(body.get("text"), str):
            return 400, {"error": "bad-request", "detail": "subject and text"}, {}
        fault = self._fault(to)
        if fault is not None:
            return fault
        behaviour = self.behaviour
        time.sleep(behaviour.delay_before)
        try:
            taken = self.records.take(key, to, message_id if isinstance(message_id, str) else "")
        except KeyReused:
            return 409, {"error": "idempotency-key-reused"}, {}
        time.sleep(behaviour.delay_after)
        return (201 if taken.new else 200), {"id": taken.id, "key": key, "new": taken.new}, {}


def _batch_messages(body: dict[str, Any] | None) -> list[tuple[str, str, str]] | None:
    """A batch body's ``(to, idempotency_key, message_id)`` triples, or None if the body or
    any message is not well formed."""
    if (
        not body
        or not isinstance(body.get("subject"), str)
        or not isinstance(body.get("text"), str)
    ):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    triples = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        to, key, mid = (
            message.get("to"),
            message.get("idempotency_key"),
            message.get("message_id", ""),
        )
        if not (
            isinstance(to, str) and to and isinstance(key, str) and key and isinstance(mid, str)
        ):
            return None
        triples.append((to, key, mid))
    return triples


def _handler_for(sim: EmailApiSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"
        max_body_bytes = MAX_BODY_BYTES

        def _authorised(self) -> bool:
            if sim.token is None or self.headers.get("Authorization") == f"Bearer {sim.token}":
                return True
            self.reply(401, {"error": "unauthorised"})
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server's handler name
            parts = urlsplit(self.path)
            if parts.path == "/v1/stats":
                self.reply(200, asdict(sim.records.stats()))
            elif parts.path == "/v1/control":
                self.reply(200, sim.described())
            elif parts.path == MESSAGES_PATH and self._authorised():
                key = parse_qs(parts.query).get("idempotency_key")
                if key:
                    self.reply(*sim.lookup(key[-1]))
                else:
                    self.reply(200, {"messages": sim.messages()})
            elif parts.path != MESSAGES_PATH:
                self.reply(404, {"error": "not-found"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's handler name
            body = self.read_json()
            path = urlsplit(self.path).path
            if path == "/v1/control":
                if not self.refused_control(body, EmailApiBehaviour):
                    self.reply(200, sim.behave(**(body or {})))
            elif path == MESSAGES_PATH:
                if self._authorised():
                    self.reply(*sim.send(self.headers.get("Idempotency-Key", ""), body))
            elif path == BATCH_PATH:
                if self._authorised():
                    self.reply(*sim.send_batch(body))
            else:
                self.reply(404, {"error": "not-found"})

    return Handler
