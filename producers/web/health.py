"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can reach its servers)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producers.web.deps import Context

router = APIRouter(tags=["probes"])

PROBE_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    """The process is alive."""

    status: str


class Check(BaseModel):
    """One dependency of the process and whether it answered."""

    ok: bool
    ms: float
    error: str | None = None


class Readiness(BaseModel):
    """Whether the process can serve: every check must hold."""

    status: str
    checks: dict[str, Check]


def check_database(engine: sa.Engine) -> None:
    """Raises unless the database answers a query."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def check_broker(url: str) -> None:
    """Raises unless the broker accepts a connection (the in-process broker always does)."""
    if url.startswith("memory"):
        return
    from kombu import Connection

    with Connection(url, connect_timeout=PROBE_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)


def _timed(probe: Any, *args: Any) -> Check:
    start = time.perf_counter()
    try:
        probe(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is "not ready"
        return Check(ok=False, ms=_ms(start), error=" ".join(str(exc).split())[:200])
    return Check(ok=True, ms=_ms(start))


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers. It checks nothing else, so a database outage does not
    make an orchestrator restart every replica."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(context: Context) -> JSONResponse:
    """Readiness: the database answers a query and the broker accepts a connection; 503 when
    either does not."""
    checks = {
        "database": _timed(check_database, context.engine),
        "broker": _timed(check_broker, context.settings.broker_url),
    }
    ready = all(c.ok for c in checks.values())
    body = Readiness(status="ready" if ready else "not-ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
