"""Who is calling: the integration's API key (``Authorization: Bearer <token>``), and its
rate limit.

A key is restricted to its clinics; routes ask ``clinic_allowed`` and answer another clinic's
case or batch as "not found", so that a key cannot learn what exists elsewhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producers.web.deps import Context
from producers.web.problems import Problem
from workers.reasons import Reason
from workers.store import api_keys
from workers.store.api_keys import ApiKey

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An integration's API key: `Authorization: Bearer <key-id>.<secret>` "
    "(`omvant api-keys create`).",
)


def require_key(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The calling integration's active key, within its rate limit.

    Raises
    ------
    Problem
        401 ``api-key-missing`` / ``api-key-invalid``; 429 ``rate-limited`` (``Retry-After``).
    """
    if credentials is None or not credentials.credentials:
        raise Problem(
            401,
            Reason.API_KEY_MISSING,
            "send the integration's API key: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with context.engine.connect() as conn:
        key = api_keys.authenticate(conn, credentials.credentials)
    if key is None:
        raise Problem(
            401,
            Reason.API_KEY_INVALID,
            "the token is not one of an active API key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    rate = key.rate_per_second or context.settings.api_rate
    if not context.rate_limits.allow(key.key_id, rate):
        raise Problem(
            429,
            Reason.RATE_LIMITED,
            f"more than {rate} requests in one second for key {key.key_id}",
            headers={"Retry-After": "1"},
        )
    return key


Integration = Annotated[ApiKey, Depends(require_key)]
