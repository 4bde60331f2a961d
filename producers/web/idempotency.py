"""``Idempotency-Key`` on the API's POSTs: the same key and body within the window is answered
again with the first answer (200); the same key with another body, or on another route, is
422 ``idempotency-key-reused``; a new key runs the request (202) and keeps its answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

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
