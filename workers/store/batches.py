"""Dispatches as batches: their status (running, paused, cancelled), lane and live counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from workers.case_states import CaseState
from workers.queues import BULK_LANES
from workers.reasons import Reason
from workers.store.arrays import among
from workers.store.cases import count_reasons, count_states, utcnow
from workers.store.notifications import count_settled
from workers.store.schema import batches


class BatchStatus(StrEnum):
    """What the workers do with a batch's cases: carry on, hold them, or reject them."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class BatchNotFound(LookupError):
    """No batch has that id."""


class BatchExists(ValueError):
    """A new dispatch named an id a batch has already: a dispatch never joins another (and
    never another clinic's: ``reason`` is ``batch-not-owned`` then, else ``batch-exists``)."""

    def __init__(self, batch_id: str, *, other_clinic: bool) -> None:
        self.reason = Reason.BATCH_NOT_OWNED if other_clinic else Reason.BATCH_EXISTS
        whose = "another clinic's dispatch" if other_clinic else "an earlier dispatch"
        # the message leaves the code out: whoever reports it names ``reason`` once
        super().__init__(f"batch {batch_id} is {whose}; choose a new id")


class BatchTransitionRefused(ValueError):
    """A cancelled batch cannot be paused or resumed."""


@dataclass(frozen=True)
class Batch:
    """One dispatch: a template sent by a clinic to a list of residents."""

    id: str
    name: str
    clinic_hsa_id: str
    sender_hsa_id: str
    template_id: str
    status: BatchStatus
    lane: int
    total: int
    enqueued: int
    created_at: Any
    updated_at: Any


def _batch(row: Any) -> Batch:
    return Batch(
        id=row.id,
        name=row.name,
        clinic_hsa_id=row.clinic_hsa_id,
        sender_hsa_id=row.sender_hsa_id,
        template_id=row.template_id,
        status=BatchStatus(row.status),
        lane=int(row.lane),
        total=int(row.total),
        enqueued=int(row.enqueued),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    conn: sa.Connection,
    *,
    batch_id: str,
    name: str,
    clinic_hsa_id: str,
    sender_hsa_id: str,
    template_id: str,
    total: int,
) -> Batch:
    """Record a new running batch on the next bulk lane after the newest batch's: dispatches
    started one after another take turns, so two running side by side never share a lane.

    Raises
    ------
    BatchExists
        A batch has that id already (the clinic's own, or another clinic's).
    """
    taken = clinics_of(conn, [batch_id])
    if batch_id in taken:
        raise BatchExists(batch_id, other_clinic=taken[batch_id] != clinic_hsa_id)
    newest = conn.execute(
        sa.select(batches.c.lane).order_by(batches.c.created_at.desc()).limit(1)
    ).scalar()
    lane = 1 if newest is None else int(newest) % BULK_LANES + 1
    now = utcnow()
    conn.execute(
        batches.insert().values(
            id=batch_id,
            name=name[:200],
            clinic_hsa_id=clinic_hsa_id,
            sender_hsa_id=sender_hsa_id,
            template_id=template_id,
            status=BatchStatus.RUNNING.value,
            lane=lane,
            total=total,
            enqueued=0,
            created_at=now,
            updated_at=now,
        )
    )
    return get(conn, batch_id)


def get(conn: sa.Connection, batch_id: str) -> Batch:
    """One batch.

    Raises
    ------
    BatchNotFound
        No batch has that id.
    """
    row = conn.execute(sa.select(batches).where(batches.c.id == batch_id)).first()
    if row is None:
        raise BatchNotFound(batch_id)
    return _batch(row)


def list_all(conn: sa.Connection, *, limit: int = 50) -> list[Batch]:
    """The newest batches first."""
    rows = conn.execute(sa.select(batches).order_by(batches.c.created_at.desc()).limit(limit))
    return [_batch(row) for row in rows]


def statuses(conn: sa.Connection, batch_ids: Iterable[str]) -> dict[str, tuple[BatchStatus, int]]:
    """Status and lane of each known batch among ``batch_ids``: one query."""
    ids = list(dict.fromkeys(batch_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(batches.c.id, batches.c.status, batches.c.lane).where(
            among(conn, batches.c.id, ids)
        )
    )
    return {row.id: (BatchStatus(row.status), int(row.lane)) for row in rows}


def clinics_of(conn: sa.Connection, batch_ids: Iterable[str]) -> dict[str, str]:
    """The clinic of each known batch among ``batch_ids``: a case may join only its own
    clinic's dispatch (``batch-not-owned``)."""
    ids = list(dict.fromkeys(batch_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(batches.c.id, batches.c.clinic_hsa_id).where(among(conn, batches.c.id, ids))
    )
    return {row.id: row.clinic_hsa_id for row in rows}


def set_status(conn: sa.Connection, batch_id: str, status: BatchStatus) -> Batch:
    """Pause, resume or cancel a batch; cancelling is for good.

    Raises
    ------
    BatchNotFound
        No batch has that id.
    BatchTransitionRefused
        The batch is cancelled and ``status`` is not; or it has finished (every case settled):
        nothing is left to hold, resume or cancel, and the batch must not read "cancelled"
        once every case was sent.
    """
    batch = get(conn, batch_id)
    if batch.status == BatchStatus.CANCELLED and status != BatchStatus.CANCELLED:
        raise BatchTransitionRefused(f"batch {batch_id} is cancelled")
    if batch.status != BatchStatus.CANCELLED and progress(conn, batch)["finished"]:
        verb = {BatchStatus.PAUSED: "pause", BatchStatus.RUNNING: "resume"}.get(status, "cancel")
        raise BatchTransitionRefused(
            f"batch {batch_id} has finished: every case is settled, nothing to {verb}"
        )
    conn.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(status=status.value, updated_at=utcnow())
    )
    return get(conn, batch_id)


def add_enqueued(conn: sa.Connection, batch_id: str, count: int) -> None:
    """Count cases the producer has put on the broker."""
    conn.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(enqueued=batches.c.enqueued + count, updated_at=utcnow())
    )


def set_total(conn: sa.Connection, batch_id: str, total: int) -> None:
    """Correct a batch's size once the producer knows how many cases it really sent."""
    conn.execute(
        batches.update().where(batches.c.id == batch_id).values(total=total, updated_at=utcnow())
    )


STATUSES = ("running", "paused", "cancelled", "finished")
"""A batch's status, the one word the table and JSON both show."""


def shown_status(batch: Batch, *, finished: bool) -> str:
    """``finished`` once every case of a running or paused batch has settled, else what the
    operator set (running, paused, cancelled)."""
    if finished and batch.status != BatchStatus.CANCELLED:
        return "finished"
    return batch.status.value


def progress(conn: sa.Connection, batch: Batch) -> dict[str, Any]:
    """The batch's live figures: cases per state, rejections per reason, what is in flight."""
    # settled first: states only move forward, so the states read after it are never behind it
    settled = count_settled(conn, batch_id=batch.id)
    states = count_states(conn, batch_id=batch.id)
    reasons = count_reasons(conn, batch_id=batch.id)
    finished = batch.enqueued >= batch.total and settled >= batch.total
    reached = {
        "validated": sum(
            states.get(s.value, 0)
            for s in CaseState
            if s not in (CaseState.RECEIVED, CaseState.REJECTED, CaseState.FAILED)
        ),
        "delivered": sum(
            states.get(s, 0) for s in (CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ)
        ),
        "notified": sum(states.get(s, 0) for s in (CaseState.NOTIFIED, CaseState.READ)),
        "read": states.get(CaseState.READ, 0),
    }
    return {
        "id": batch.id,
        "name": batch.name,
        "clinic": batch.clinic_hsa_id,
        "template": batch.template_id,
        "status": shown_status(batch, finished=finished),
        "control": batch.status.value,
        "lane": batch.lane,
        "total": batch.total,
        "enqueued": batch.enqueued,
        "received": sum(states.values()),
        "states": {s.value: states.get(s.value, 0) for s in CaseState},
        "reached": reached,
        "rejected": dict(sorted(reasons.items())),
        "failed": states.get(CaseState.FAILED, 0),
        "settled": settled,
        "in_flight": batch.total - settled,
        "finished": finished,
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
    }
