"""The intake's record of producers' idempotency keys, so a key means one case per window.

The window is per clinic and integration: a key is scoped to the integration (key id) that
signed it (``scoped_to``), so two integrations of one clinic that both number their requests
from 1 never swallow each other's cases. Within the window the same clinic, integration and key
give the same case and nothing is sent again; after it, the key starts a new case (its id
derived from the key and a generation number).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from workers.store.cases import utcnow
from workers.store.schema import intake_keys
from workers.store.sql import aware_utc, dialect_insert


@dataclass(frozen=True)
class Claim:
    """What the intake does with one request: send it (perhaps renamed), or not."""

    request: SendCaseV2
    send: bool
    generation: int
    key: str
    """The producer's own idempotency key (the request's may carry a generation suffix)."""


KEY_LIMIT = 200
"""The longest idempotency key a SendCase (and the ``cases`` row) carries."""


def bounded(key: str, limit: int = KEY_LIMIT) -> str:
    """``key`` if it fits in ``limit`` characters, else its head and its sha256: distinct keys
    stay distinct (a plain cut would make two long keys one)."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: limit - len(digest) - 1]}~{digest}"


def scoped_to(request: SendCaseV2, integration: str) -> SendCaseV2:
    """The request with its idempotency key scoped to the integration that signed it
    (``<key-id>/<key>``); its case id follows from the clinic and the scoped key (or from the
    clinic and its own ``case_id``)."""
    key = bounded(f"{integration}/{request.idempotency_key}")
    return request.model_copy(update={"idempotency_key": key})


def _renamed(request: SendCaseV2, generation: int) -> SendCaseV2:
    """The request as generation ``generation`` of its key: a new case, whose id comes from
    the renamed key (the producer's ``case_id`` named the first generation's case)."""
    if generation == 0:
        return request
    key = bounded(f"{request.idempotency_key}#g{generation}")
    return request.model_copy(update={"idempotency_key": key, "case_id": None})


def claim(
    conn: sa.Connection, requests: Sequence[SendCaseV2], *, window: dt.timedelta
) -> list[Claim]:
    """Decide each request against the keys seen (one query); the first of two requests with
    the same key in ``requests`` wins."""
    pairs = {(r.clinic_hsa_id, r.idempotency_key) for r in requests}
    seen: dict[tuple[str, str], tuple[dt.datetime, int]] = {}
    if pairs:
        rows = conn.execute(
            sa.select(
                intake_keys.c.clinic_hsa_id,
                intake_keys.c.idempotency_key,
                intake_keys.c.first_seen_at,
                intake_keys.c.generation,
            ).where(
                sa.tuple_(intake_keys.c.clinic_hsa_id, intake_keys.c.idempotency_key).in_(pairs)
            )
        )
        seen = {(r[0], r[1]): (aware_utc(r[2]), int(r[3])) for r in rows}
    now = utcnow()
    claims: list[Claim] = []
    taken: set[tuple[str, str]] = set()
    for request in requests:
        pair = (request.clinic_hsa_id, request.idempotency_key)
        if pair in taken:
            claims.append(Claim(request, False, 0, pair[1]))
            continue
        taken.add(pair)
        earlier = seen.get(pair)
        if earlier is None:
            claims.append(Claim(request, True, 0, pair[1]))
        elif now - earlier[0] < window:
            claims.append(Claim(_renamed(request, earlier[1]), False, earlier[1], pair[1]))
        else:
            generation = earlier[1] + 1
            claims.append(Claim(_renamed(request, generation), True, generation, pair[1]))
    return claims


def record(conn: sa.Connection, claims: Sequence[tuple[Claim, str]]) -> None:
    """Remember the keys of the claims sent (with the integration that sent each)."""
    now = utcnow()
    rows = [
        {
            "clinic_hsa_id": c.request.clinic_hsa_id,
            "idempotency_key": c.key,
            "case_id": c.request.resolved_case_id(),
            "generation": c.generation,
            "integration": integration[:64],
            "first_seen_at": now,
        }
        for c, integration in claims
        if c.send
    ]
    if not rows:
        return
    statement = dialect_insert(conn, intake_keys)
    statement = statement.on_conflict_do_update(
        index_elements=["clinic_hsa_id", "idempotency_key"],
        set_={
            "case_id": statement.excluded.case_id,
            "generation": statement.excluded.generation,
            "integration": statement.excluded.integration,
            "first_seen_at": statement.excluded.first_seen_at,
        },
    )
    conn.execute(statement, rows)
