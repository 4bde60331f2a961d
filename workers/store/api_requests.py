"""HTTP requests made with an ``Idempotency-Key``: the same key and body within the window is
answered again as it was the first time; the same key with another body is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import api_requests
from workers.store.sql import aware_utc, dialect_insert


@dataclass(frozen=True)
class Remembered:
    """The first answer to a request with that key."""

    route: str
    body_sha256: str
    status_code: int
    response: dict[str, Any]
    created_at: dt.datetime


def body_digest(body: Any) -> str:
    """The sha256 of a JSON body in canonical form (key order and spacing do not count)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def find(
    conn: sa.Connection, key_id: str, idempotency_key: str, *, window: dt.timedelta
) -> Remembered | None:
    """The remembered answer for ``(key_id, idempotency_key)`` within ``window``, or None."""
    row = conn.execute(
        sa.select(api_requests).where(
            api_requests.c.key_id == key_id,
            api_requests.c.idempotency_key == idempotency_key,
        )
    ).first()
    if row is None or utcnow() - aware_utc(row.created_at) >= window:
        return None
    return Remembered(
        route=row.route,
        body_sha256=row.body_sha256,
        status_code=int(row.status_code),
        response=json.loads(row.response),
        created_at=aware_utc(row.created_at),
    )


def remember(
    conn: sa.Connection,
    *,
    key_id: str,
    idempotency_key: str,
    route: str,
    body_sha256: str,
    status_code: int,
    response: dict[str, Any],
    window: dt.timedelta,
) -> None:
    """Keep the answer to a request (a key past its window is taken over; of two requests
    racing with one key, the first answer stays)."""
    now = utcnow()
    values: dict[str, Any] = {
        "key_id": key_id,
        "idempotency_key": idempotency_key,
        "route": route,
        "body_sha256": body_sha256,
        "status_code": status_code,
        "response": json.dumps(response, ensure_ascii=False),
        "created_at": now,
    }
    expired = now - window
    statement = dialect_insert(conn, api_requests)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["key_id", "idempotency_key"],
        set_={name: getattr(excluded, name) for name in values if name not in ("key_id",)},
        where=api_requests.c.created_at < expired,
    )
    conn.execute(statement, values)
