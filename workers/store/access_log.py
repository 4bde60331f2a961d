"""The access log: every read of case data, as the Patient Data Act (patientdatalagen) asks.

Who read (the user's HSA-id), for which unit, when, which cases and which residents. The
personnummer are stored as the system of record stores them (12 digits, in the database only);
they are never written to the process log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import access_log


@dataclass(frozen=True)
class Access:
    """One logged read."""

    at: dt.datetime
    user_hsa_id: str
    unit_hsa_id: str
    action: str
    case_ids: list[str]
    personnummer: list[str]
    unmasked: bool


def record(
    conn: sa.Connection,
    *,
    user_hsa_id: str,
    unit_hsa_id: str,
    action: str,
    case_ids: Sequence[str],
    personnummer: Sequence[str],
    unmasked: bool = False,
) -> None:
    """Log one read of case data (a read of nothing is logged too: a search is an access)."""
    conn.execute(
        access_log.insert().values(
            at=utcnow(),
            user_hsa_id=user_hsa_id,
            unit_hsa_id=unit_hsa_id,
            action=action,
            case_count=len(case_ids),
            case_ids=json.dumps(list(case_ids)),
            personnummer=json.dumps(sorted(set(personnummer))),
            unmasked=unmasked,
        )
    )


def entries(conn: sa.Connection, unit_hsa_id: str) -> list[Access]:
    """The unit's logged reads, oldest first."""
    rows = conn.execute(
        sa.select(access_log)
        .where(access_log.c.unit_hsa_id == unit_hsa_id)
        .order_by(access_log.c.id)
    )
    return [
        Access(
            at=r.at,
            user_hsa_id=r.user_hsa_id,
            unit_hsa_id=r.unit_hsa_id,
            action=r.action,
            case_ids=json.loads(r.case_ids),
            personnummer=json.loads(r.personnummer),
            unmasked=bool(r.unmasked),
        )
        for r in rows
    ]
