"""The access log: every attempt to read case data, as the Patient Data Act asks
(patientdatalagen 4 kap. 3 §: access to records is logged and checked).

Who tried (the user's HSA-id), for which unit, when, what (``action``), which cases were asked
for or shown, which residents were shown, and the outcome: ``allowed``, ``refused`` (a case the
unit has not: another unit's, or none) or ``usage-error`` (the request itself was wrong: an
unknown status, an HSA-id that is not one). A refused or wrong attempt is logged as given, so an
auditor sees what was tried: values are kept with control characters escaped and cut to fit.
The personnummer are stored as the system of record stores them (12 digits, in the database
only); they are never written to the process log. The CLI, the web console and the HTTP API
all write through here (``workers.case_access`` does it for them).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import access_log
from workers.store.sql import aware_utc

ALLOWED = "allowed"
REFUSED = "refused"
USAGE_ERROR = "usage-error"
OUTCOMES = (ALLOWED, REFUSED, USAGE_ERROR)

_ID_LENGTH = 48
_ASKED_LENGTH = 200


@dataclass(frozen=True)
class Access:
    """One logged attempt."""

    at: dt.datetime
    user_hsa_id: str
    unit_hsa_id: str
    action: str
    case_ids: list[str]
    personnummer: list[str]
    unmasked: bool
    outcome: str = ALLOWED
    detail: str | None = None


def as_given(value: object, limit: int = _ID_LENGTH) -> str:
    """``value`` fit to store as the attempt gave it: control and other invisible characters
    escaped (``\\n``, ``\\x00``), cut to ``limit`` characters."""
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text[:limit]
    return text.encode("unicode_escape").decode("ascii")[:limit]


def record(
    conn: sa.Connection,
    *,
    user_hsa_id: str | None,
    unit_hsa_id: str | None,
    action: str,
    case_ids: Sequence[str],
    personnummer: Sequence[str],
    unmasked: bool = False,
    outcome: str = ALLOWED,
    detail: str | None = None,
) -> None:
    """Log one attempt (a read of nothing is logged too: a search is an access).

    ``case_ids`` are the cases asked for (``show``) or shown (``list``); ``personnummer`` the
    residents shown.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome is one of {OUTCOMES}")
    asked = [as_given(c, _ASKED_LENGTH) for c in case_ids]
    conn.execute(
        access_log.insert().values(
            at=utcnow(),
            user_hsa_id=as_given(user_hsa_id),
            unit_hsa_id=as_given(unit_hsa_id),
            action=as_given(action, 32),
            case_count=len(asked),
            case_ids=json.dumps(asked),
            personnummer=json.dumps(sorted(set(personnummer))),
            unmasked=unmasked,
            outcome=outcome,
            detail=None if detail is None else as_given(detail, 300),
        )
    )


def record_alone(engine: sa.Engine, **attempt: object) -> None:
    """Log an attempt in a transaction of its own: a refusal is logged even though nothing
    else the request did is kept (its own transaction rolls back)."""
    with engine.begin() as conn:
        record(conn, **attempt)  # type: ignore[arg-type]


def _access(r: sa.Row[tuple[object, ...]]) -> Access:
    m = r._mapping
    at = m["at"]
    return Access(
        at=aware_utc(at),
        user_hsa_id=m["user_hsa_id"],
        unit_hsa_id=m["unit_hsa_id"],
        action=m["action"],
        case_ids=json.loads(m["case_ids"]),
        personnummer=json.loads(m["personnummer"]),
        unmasked=bool(m["unmasked"]),
        outcome=m["outcome"],
        detail=m["detail"],
    )


def entries(conn: sa.Connection, unit_hsa_id: str) -> list[Access]:
    """The unit's logged attempts, oldest first."""
    rows = conn.execute(
        sa.select(access_log)
        .where(access_log.c.unit_hsa_id == unit_hsa_id)
        .order_by(access_log.c.id)
    )
    return [_access(r) for r in rows]


def search(
    conn: sa.Connection,
    *,
    unit_hsa_id: str | None = None,
    user_hsa_id: str | None = None,
    case_id: str | None = None,
    outcome: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 1000,
) -> list[Access]:
    """What an auditor asks: the attempts of a unit, a user, on a case, with an outcome, in a
    period; newest first, at most ``limit``. ``case_id`` finds the attempts that asked for or
    were shown that case."""
    query = sa.select(access_log)
    if unit_hsa_id is not None:
        query = query.where(access_log.c.unit_hsa_id == unit_hsa_id)
    if user_hsa_id is not None:
        query = query.where(access_log.c.user_hsa_id == user_hsa_id)
    if outcome is not None:
        query = query.where(access_log.c.outcome == outcome)
    if since is not None:
        query = query.where(access_log.c.at >= since)
    if until is not None:
        query = query.where(access_log.c.at < until)
    if case_id is not None:
        query = query.where(access_log.c.case_ids.contains(json.dumps(case_id), autoescape=True))
    rows = conn.execute(query.order_by(access_log.c.id.desc()).limit(limit))
    return [_access(r) for r in rows]
