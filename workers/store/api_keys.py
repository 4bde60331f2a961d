"""Integrations' API keys: one per integration, restricted to its clinics, stored hashed.

A key is shown once, when it is made: the bearer token ``<key-id>.<secret>`` for the HTTP API
and the signing key (hex) that signs intake messages (``omvant-signature``) and the webhooks
Omvänt sends back. The table keeps the token's sha256, never the token: a copy of the table
does not let anyone call the API. The signing key is kept as it is, because checking an
HMAC needs the key itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import api_keys
from workers.store.sql import aware_utc

KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
HSA_ID = re.compile(r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$")


class ApiKeyError(ValueError):
    """A key that cannot be made or changed as asked; the message says why."""


@dataclass(frozen=True)
class ApiKey:
    """One integration's key, without its secrets."""

    key_id: str
    name: str
    clinics: tuple[str, ...]
    webhook_url: str | None
    rate_per_second: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just made, with the secrets shown this once."""

    key: ApiKey
    token: str
    signing_key: str


def token_digest(token: str) -> str:
    """The sha256 the table keeps of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        key_id=m["key_id"],
        name=m["name"],
        clinics=tuple(json.loads(m["clinics"])),
        webhook_url=m["webhook_url"],
        rate_per_second=m["rate_per_second"],
        created_at=aware_utc(m["created_at"]) or utcnow(),
        revoked_at=aware_utc(m["revoked_at"]),
        last_used_at=aware_utc(m["last_used_at"]),
    )


def _check(key_id: str, clinics: Sequence[str], webhook_url: str | None) -> None:
    if not KEY_ID.match(key_id):
        raise ApiKeyError(
            f"key id {key_id!r}: 2-63 lower-case letters, digits and '-', starting with one"
        )
    if not clinics:
        raise ApiKeyError("name at least one clinic the key may act for (--clinic HSA-ID)")
    for clinic in clinics:
        if not HSA_ID.match(clinic):
            raise ApiKeyError(f"clinic {clinic!r} is not an HSA-id (SE + 10 digits - unit)")
    if webhook_url is not None and not re.match(r"^https?://[^\s/]+", webhook_url):
        raise ApiKeyError(f"webhook URL {webhook_url!r}: an http:// or https:// URL")


def create(
    conn: sa.Connection,
    *,
    key_id: str,
    name: str,
    clinics: Sequence[str],
    webhook_url: str | None = None,
    rate_per_second: int | None = None,
) -> NewKey:
    """Make a key for an integration.

    Raises
    ------
    ApiKeyError
        A malformed key id, clinic or webhook URL, no clinic, or a key id in use.
    """
    _check(key_id, clinics, webhook_url)
    if conn.execute(sa.select(api_keys.c.key_id).where(api_keys.c.key_id == key_id)).first():
        raise ApiKeyError(f"key id {key_id!r} is in use (revoked keys keep their id)")
    token = f"{key_id}.{secrets.token_urlsafe(32)}"
    signing_key = secrets.token_hex(32)
    conn.execute(
        api_keys.insert().values(
            key_id=key_id,
            name=name[:200] or key_id,
            token_sha256=token_digest(token),
            signing_key=signing_key,
            clinics=json.dumps(sorted(set(clinics))),
            webhook_url=webhook_url,
            rate_per_second=rate_per_second,
            created_at=utcnow(),
        )
    )
    return NewKey(get(conn, key_id), token, signing_key)


def get(conn: sa.Connection, key_id: str) -> ApiKey:
    """One key.

    Raises
    ------
    ApiKeyError
        No key has that id.
    """
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise ApiKeyError(f"no key {key_id!r}")
    return _key(row)


def list_all(conn: sa.Connection) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return [_key(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))]


def revoke(conn: sa.Connection, key_id: str) -> ApiKey:
    """Revoke a key for good: its token and signing key stop working at once.

    Raises
    ------
    ApiKeyError
        No key has that id.
    """
    get(conn, key_id)
    conn.execute(
        api_keys.update()
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return get(conn, key_id)


def authenticate(conn: sa.Connection, token: str) -> ApiKey | None:
    """The active key whose bearer token is ``token``, or None."""
    key_id = token.split(".", 1)[0]
    if not KEY_ID.match(key_id):
        return None
    row = conn.execute(
        sa.select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.token_sha256, token_digest(token)):
        return None
    return _key(row)


def signing_key(conn: sa.Connection, key_id: str) -> str | None:
    """The signing key of an active key (webhooks are signed with it)."""
    row = conn.execute(
        sa.select(api_keys.c.signing_key).where(
            api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else str(row[0])


def intake_credentials(conn: sa.Connection) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the intake bridge checks signatures with: signing key and clinics of every active
    key, by key id."""
    rows = conn.execute(
        sa.select(api_keys.c.key_id, api_keys.c.signing_key, api_keys.c.clinics).where(
            api_keys.c.revoked_at.is_(None)
        )
    )
    keys: dict[str, str] = {}
    clinics: dict[str, list[str]] = {}
    for key_id, signing, clinic_list in rows:
        keys[key_id] = signing
        clinics[key_id] = list(json.loads(clinic_list))
    return keys, clinics
