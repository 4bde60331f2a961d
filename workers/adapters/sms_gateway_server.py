"""The SMS-gateway simulator: a small HTTP server that behaves like an SMS provider.

Shipped so the HTTP adapter, the demo and the tests talk real HTTP to something; runnable on its
own with ``omvant sim sms-gateway --port N``. The API (JSON):

``POST /messages``  ``{"to": "+4670...", "text": "..."}`` with an ``Idempotency-Key`` header:
    201 (new) or 200 (same key again, nothing sent) ``{"id": ..., "key": ...}``; 422 for a
    refused number; 503 or 429 (with ``Retry-After``) when told to.
``POST /messages/batch``  ``{"text": "...", "messages": [{"to": ..., "idempotency_key": ...}]}``
    (one text, many recipients, at most ``MAX_BATCH``, else 413): 200 ``{"results": [...]}``,
    one per recipient in order, ``{"idempotency_key", "status", "id"?, "reason"?}`` with
    ``status`` ``accepted`` (new), ``duplicate`` (a key taken before, here or by ``POST
    /messages``: nothing sent, the first message's ``id``), ``refused`` (``reason``
    ``number-refused``: for good) or ``unavailable`` (``reason`` ``try-later``: not taken);
    keys are deduped as by ``POST /messages``; 503 or 429 for the whole request when told to.
``GET /messages/{key or id}``  the message taken under that idempotency key (or with that
    reference), or 404: how a client settles a send it is in doubt about.
``GET /messages``  ``{"messages": [...], "sends": [...], "batches": [...]}``: every message,
    every accepted send (a batch's recipients one by one: so a test can tell a duplicate send
    from a lookup), and the size of every batch request answered 200.
``GET /control``, ``POST /control``  the behaviour: ``delay_before`` / ``delay_after`` seconds
    (slow before or after taking the message), ``fail_next`` (that many 503s),
    ``throttle_next`` and ``retry_after`` (that many 429s, each for a whole request), ``refuse``
    (numbers answered 422, or ``refused`` in a batch), ``unavailable`` (numbers a batch answers
    ``unavailable``).

Written on the standard library's HTTP server: it needs no dependency and serves a test's load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from workers.adapters.http_simulator import JsonHandler, ServedInThread, ThrottledBehaviour
from workers.adapters.notifiers import reference

MAX_BATCH = 1000
"""The most recipients one batch request may carry (a real gateway has such a cap too)."""


@dataclass
class GatewayBehaviour(ThrottledBehaviour):
    """A provider's behaviour (changed with ``POST /control``), and numbers out of reach."""

    unavailable: list[str] = field(default_factory=list)
    """The numbers a batch answers ``unavailable`` for (transient: send them again later)."""


@dataclass
class GatewayState:
    """What the simulator has taken, shared by its request threads."""

    behaviour: GatewayBehaviour = field(default_factory=GatewayBehaviour)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sends: list[dict[str, Any]] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(JsonHandler):
    server: _GatewayHttpServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's handler name
        state = self.server.state
        with state.lock:
            if self.path == "/control":
                self.reply(200, asdict(state.behaviour))
            elif self.path == "/messages":
                self.reply(
                    200,
                    {
                        "messages": list(state.messages.values()),
                        "sends": list(state.sends),
                        "batches": list(state.batches),
                    },
                )
            elif self.path.startswith("/messages/"):
                wanted = unquote(self.path[len("/messages/") :])
                found = state.messages.get(wanted) or next(
                    (m for m in state.messages.values() if m["id"] == wanted), None
                )
                self.reply(200 if found else 404, found or {"error": "not-found"})
            else:
                self.reply(404, {"error": "not-found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's handler name
        state = self.server.state
        body = self.read_json()
        if self.path == "/control":
            if self.refused_control(body, GatewayBehaviour):
                return
            with state.lock:
                state.behaviour = GatewayBehaviour(**{**asdict(state.behaviour), **(body or {})})
                self.reply(200, asdict(state.behaviour))
            return
        if self.path == "/messages/batch":
            self._take_batch(state, body or {})
            return
        if self.path != "/messages":
            self.reply(404, {"error": "not-found"})
            return
        self._take(state, body or {})

    def _turned_away(self, state: GatewayState) -> bool:
        """Answer 503 or 429 when told to (the caller holds the lock); True if it did."""
        behaviour = state.behaviour
        if behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            self.reply(503, {"error": "unavailable"})
            return True
        if behaviour.throttle_next > 0:
            behaviour.throttle_next -= 1
            self.reply(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"error": "rate-limited"},
                {"Retry-After": f"{behaviour.retry_after:g}"},
            )
            return True
        return False

    def _take(self, state: GatewayState, body: dict[str, Any]) -> None:
        key = self.headers.get("Idempotency-Key", "")
        to, text = body.get("to"), body.get("text")
        if not key or not isinstance(to, str) or not isinstance(text, str):
            self.reply(400, {"error": "bad-request"})
            return
        with state.lock:
            behaviour = state.behaviour
            if self._turned_away(state):
                return
            if to in behaviour.refuse:
                self.reply(422, {"error": "number-refused"})
                return
        time.sleep(behaviour.delay_before)
        with state.lock:
            ref, new = _keep(state, key, to, text)
        time.sleep(behaviour.delay_after)
        self.reply(201 if new else 200, {"id": ref, "key": key})

    def _take_batch(self, state: GatewayState, body: dict[str, Any]) -> None:
        text, wanted = body.get("text"), _recipients(body.get("messages"))
        if not isinstance(text, str) or wanted is None:
            self.reply(400, {"error": "bad-request"})
            return
        if len(wanted) > MAX_BATCH:
            self.reply(413, {"error": "batch-too-large", "max": MAX_BATCH})
            return
        with state.lock:
            behaviour = state.behaviour
            if self._turned_away(state):
                return
        time.sleep(behaviour.delay_before)
        results: list[dict[str, Any]] = []
        with state.lock:
            for to, key in wanted:
                if to in behaviour.refuse:
                    results.append(
                        {"idempotency_key": key, "status": "refused", "reason": "number-refused"}
                    )
                elif to in behaviour.unavailable:
                    results.append(
                        {"idempotency_key": key, "status": "unavailable", "reason": "try-later"}
                    )
                else:
                    ref, new = _keep(state, key, to, text)
                    status = "accepted" if new else "duplicate"
                    results.append({"idempotency_key": key, "status": status, "id": ref})
            state.batches.append(len(wanted))
        time.sleep(behaviour.delay_after)
        self.reply(200, {"results": results})


def _recipients(messages: object) -> list[tuple[str, str]] | None:
    """A batch body's ``(to, idempotency_key)`` pairs, or None if any is not two strings."""
    if not isinstance(messages, list):
        return None
    pairs = []
    for message in messages:
        to = message.get("to") if isinstance(message, dict) else None
        key = message.get("idempotency_key") if isinstance(message, dict) else None
        if not isinstance(to, str) or not isinstance(key, str) or not key:
            return None
        pairs.append((to, key))
    return pairs


def _keep(state: GatewayState, key: str, to: str, text: str) -> tuple[str, bool]:
    """Take one message under its key (the caller holds the lock): its reference, and
    whether it is new (a key taken before sends nothing)."""
    ref = reference("sms", key)
    state.sends.append({"key": key, "to": to, "at": time.time()})
    new = key not in state.messages
    if new:
        state.messages[key] = {"id": ref, "key": key, "to": to, "text": text}
    return ref, new


class _GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: GatewayState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class SmsGatewaySimulator(ServedInThread):
    """The simulator in a background thread: ``start()`` it, read ``url``, ``stop()`` it
    (``serve_forever()`` for ``omvant sim sms-gateway``)."""

    thread_name = "sms-gateway-sim"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = GatewayState()
        self._httpd = _GatewayHttpServer((host, port), self.state)

    def behave(self, **changes: Any) -> None:
        """Change the behaviour, as ``POST /control`` does."""
        with self.state.lock:
            self.state.behaviour = GatewayBehaviour(**{**asdict(self.state.behaviour), **changes})

    def messages(self) -> list[dict[str, Any]]:
        """Every message taken (one per idempotency key)."""
        with self.state.lock:
            return list(self.state.messages.values())

    def sends(self) -> list[dict[str, Any]]:
        """Every accepted POST, duplicates included."""
        with self.state.lock:
            return list(self.state.sends)
