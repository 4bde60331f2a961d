"""Helpers for the HTTP API tests: an application on a database, keys, SendCase records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from producers.web.app import create_app
from tests.databases import migrated_engine
from workers.settings import Settings
from workers.store import api_keys

CLINIC_A = "SE2321000016-VC01"
CLINIC_B = "SE2321000016-VC02"
SENDER = "SE2321000016-S101"


@dataclass(frozen=True)
class Key:
    """A key made for a test: its id, bearer token and signing key."""

    key_id: str
    token: str
    signing_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_key(
    database_url: str,
    key_id: str,
    clinics: list[str],
    *,
    webhook_url: str | None = None,
    rate: int | None = None,
) -> Key:
    """Make an API key as ``omvant api-keys create`` does."""
    engine = migrated_engine(database_url)
    try:
        with engine.begin() as conn:
            made = api_keys.create(
                conn,
                key_id=key_id,
                name=key_id,
                clinics=clinics,
                webhook_url=webhook_url,
                rate_per_second=rate,
            )
    finally:
        engine.dispose()
    return Key(key_id, made.token, made.signing_key)


def app_for(database_url: str, **settings: Any) -> FastAPI:
    """The application on ``database_url`` and the in-process broker."""
    values = {"database_url": database_url, "broker_url": "memory://", **settings}
    return create_app(Settings(**values), migrate=True)  # the tests' databases are their own


def record(key: str, *, clinic: str = CLINIC_A, **extra: Any) -> dict[str, Any]:
    """A SendCase v2 record with the producer's idempotency key ``key``."""
    return {
        "clinic_hsa_id": clinic,
        "sender_hsa_id": SENDER,
        "template_id": "meddelande-till-invanare",
        "fragments": ["halsning"],
        "personnummer": "19121212-1212",
        "idempotency_key": key,
        **extra,
    }
