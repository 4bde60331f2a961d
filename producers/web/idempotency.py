"""``Idempotency-Key`` on the API's POSTs: the same key and body within the window is answered
again with the first answer (200); the same key with another body, or on another route, is
422 ``idempotency-key-reused``; a new key runs the request (202) and keeps its answer.
"""

from __future__ import annotations

import datetime as dt
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.responses import JSONResponse

from producers.web.context import WebContext
from producers.web.problems import Problem
from workers.reasons import Reason
from workers.store import api_requests
from workers.store.api_keys import ApiKey

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes the request safe to repeat: the same key and body within "
        "OMVANT_API_IDEMPOTENCY_HOURS (24) is answered as the first time, with 200.",
    ),
]


def once(
    context: WebContext,
    key: ApiKey,
    idempotency_key: str | None,
    *,
    route: str,
    body: Any,
    run: Callable[[], dict[str, Any]],
    status: int = 202,
) -> JSONResponse:
    """Run ``run`` once per ``(key, idempotency_key)``; answer repeats from the record.

    Raises
    ------
    Problem
        422 ``idempotency-key-reused``.
    """
    if idempotency_key is None:
        return JSONResponse(run(), status_code=status)
    with _one_at_a_time(context, key.key_id, idempotency_key):
        return _once(context, key, idempotency_key, route=route, body=body, run=run, status=status)


_STRIPES = [threading.Lock() for _ in range(64)]


@contextmanager
def _one_at_a_time(context: WebContext, key_id: str, idempotency_key: str) -> Iterator[None]:
    """Requests with one key's same ``Idempotency-Key`` run one after the other, so that of
    retries racing each other one runs and the rest are answered with its answer: on
    PostgreSQL by an advisory lock (every ``omvant serve`` process), else in this process."""
    name = f"omvant-api\x1f{key_id}\x1f{idempotency_key}"
    if context.engine.dialect.name == "postgresql":
        with context.engine.begin() as conn:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
                {"name": name},
            )
            yield
        return
    with _STRIPES[zlib.crc32(name.encode()) % len(_STRIPES)]:
        yield


def _once(
    context: WebContext,
    key: ApiKey,
    idempotency_key: str,
    *,
    route: str,
    body: Any,
    run: Callable[[], dict[str, Any]],
    status: int,
) -> JSONResponse:
    window = dt.timedelta(hours=context.settings.api_idempotency_hours)
    digest = api_requests.body_digest(body)
    with context.engine.connect() as conn:
        earlier = api_requests.find(conn, key.key_id, idempotency_key, window=window)
    if earlier is not None:
        if earlier.route != route or earlier.body_sha256 != digest:
            raise Problem(
                422,
                Reason.IDEMPOTENCY_KEY_REUSED,
                f"Idempotency-Key {idempotency_key!r} was used at "
                f"{earlier.created_at:%Y-%m-%dT%H:%M:%SZ} for a different request "
                f"({'another route' if earlier.route != route else 'another body'})",
            )
        return JSONResponse(
            earlier.response, status_code=200, headers={"Idempotent-Replayed": "true"}
        )
    response = run()
    with context.engine.begin() as conn:
        api_requests.remember(
            conn,
            key_id=key.key_id,
            idempotency_key=idempotency_key,
            route=route,
            body_sha256=digest,
            status_code=status,
            response=response,
            window=window,
        )
    return JSONResponse(response, status_code=status)
