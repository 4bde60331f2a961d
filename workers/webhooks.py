"""Status callbacks: the sender that delivers the webhook outbox to integrations.

Each callback is a JSON POST to the integration's webhook URL with

- ``Omvant-Event-Id`` and ``Idempotency-Key``: the event's stable id (a retry repeats it);
- ``Omvant-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` under the
  integration's signing key (the one it signs intake messages with), so the receiver can
  check it came from Omvänt and is fresh.

A 2xx answer marks it sent; anything else (or no answer) is retried with backoff (2 s
doubling to an hour) up to ``OMVANT_WEBHOOK_MAX_ATTEMPTS``, then given up (``gave-up``).
No callback carries a personnummer or message content: case id, clinic, state, reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from workers.log import get_logger
from workers.settings import Settings
from workers.store import webhooks
from workers.store.cases import utcnow
from workers.store.schema import api_keys

log = get_logger(__name__)

SIGNATURE = "Omvant-Signature"
EVENT_ID = "Omvant-Event-Id"


def signature(body: bytes, signing_key: str, timestamp: int) -> str:
    """The ``Omvant-Signature`` header of ``body`` sent at ``timestamp``."""
    mac = hmac.new(signing_key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(body: bytes, header: str, signing_key: str, *, tolerance: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` under ``signing_key`` within ``tolerance`` seconds
    (what a receiver does; the simulator uses it)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(body, signing_key, int(stamp)), header.strip())


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed delivery: 2 s, 4 s, ... at most an hour."""
    return dt.timedelta(seconds=min(3600, 2 ** max(1, attempts)))


@dataclass
class SenderCounts:
    """What the sender has done since it started."""

    collected: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class WebhookSender:
    """Collects case events into the outbox and delivers what is due."""

    def __init__(
        self, engine: sa.Engine, settings: Settings, *, client: httpx.Client | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client or httpx.Client(timeout=settings.webhook_timeout_seconds)
        self.counts = SenderCounts()

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    def _targets(self, key_ids: set[str]) -> dict[str, tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(api_keys.c.key_id, api_keys.c.webhook_url, api_keys.c.signing_key).where(
                    api_keys.c.key_id.in_(key_ids),
                    api_keys.c.revoked_at.is_(None),
                    api_keys.c.webhook_url.is_not(None),
                )
            )
            return {r.key_id: (r.webhook_url, r.signing_key) for r in rows}

    def run_once(self) -> int:
        """Collect new events, then deliver the due callbacks; returns how many were tried."""
        with self.engine.begin() as conn:
            self.counts.collected += webhooks.collect(conn).added
        with self.engine.connect() as conn:
            batch = webhooks.due(conn)
        targets = self._targets({c.key_id for c in batch})
        for callback in batch:
            self._deliver(callback, targets.get(callback.key_id))
        return len(batch)

    def _deliver(self, callback: webhooks.Callback, target: tuple[str, str] | None) -> None:
        error: str | None = None
        if target is None:
            error = "the key has no webhook any more, or is revoked"
            retry_at = None
        else:
            url, signing_key = target
            body = json.dumps(callback.payload, separators=(",", ":")).encode()
            headers = {
                "Content-Type": "application/json",
                EVENT_ID: callback.event_id,
                "Idempotency-Key": callback.event_id,
                SIGNATURE: signature(body, signing_key, int(time.time())),
                "User-Agent": "omvant-webhooks/1",
            }
            try:
                response = self.client.post(url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    with self.engine.begin() as conn:
                        webhooks.mark_sent(conn, callback.event_id)
                    self.counts.sent += 1
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            attempts = callback.attempts + 1
            give_up = attempts >= self.settings.webhook_max_attempts
            retry_at = None if give_up else utcnow() + backoff(attempts)
        with self.engine.begin() as conn:
            webhooks.mark_failed(conn, callback.event_id, error=error, retry_at=retry_at)
        if retry_at is None:
            self.counts.gave_up += 1
        else:
            self.counts.failed += 1
        log.warning(
            "webhook not delivered",
            event_id=callback.event_id,
            key_id=callback.key_id,
            error=error,
            gave_up=retry_at is None,
        )

    def run(self, stop: threading.Event, *, poll: float = 1.0) -> SenderCounts:
        """Run until ``stop`` is set, looking every ``poll`` seconds."""
        while not stop.is_set():
            if self.run_once() == 0:
                stop.wait(poll)
        return self.counts
