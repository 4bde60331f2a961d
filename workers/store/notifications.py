"""The notification ledger: the transactional outbox of notifications.

One row per notification (case, channel, round). The inbox-delivery stage writes the rows
*queued* in the transaction that records the case delivered (``write_queued``); the
notification-sending stage claims due rows (*pending*, just before the provider call, only as
many as are in flight at once), and marks each one the moment the provider answered (*sent*,
*refused*, *retry*), in a transaction of its own: no mark is held in memory across provider
calls. A pending row that a later attempt finds, older than the in-flight limit, is "in
doubt": the provider may have taken it before the worker died; ``resolution`` records how it
was settled.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workers.case_states import SETTLED as SETTLED_CASE_STATES
from workers.case_states import CaseState
from workers.store.arrays import among, literal
from workers.store.cases import bulk_insert, utcnow
from workers.store.schema import batches, cases, notification_ledger
from workers.store.sql import aware_utc

QUEUED = "queued"
"""Written with the delivery: never tried, safe to send when due."""
PENDING = "pending"
"""Claimed just before the provider call; found later, it means "in doubt"."""
SENT = "sent"
REFUSED = "refused"
RETRY = "retry"
"""The provider certainly did not take it (5xx, 429, refused connection): safe to send again."""
UNCONFIRMED = "unconfirmed"
"""An in-doubt notification settled by policy without sending again (perhaps sent)."""

SETTLED = frozenset({SENT, REFUSED, UNCONFIRMED})
"""Statuses no later attempt changes."""
SENDABLE = frozenset({QUEUED, RETRY})
"""Statuses a sender may claim (when due)."""


class Resolution:
    """How an in-doubt notification was settled (the ``resolution`` column)."""

    FOUND_AT_PROVIDER = "found-at-provider"
    """The provider, asked by key, had it: recorded as sent, not sent again."""
    NOT_AT_PROVIDER = "not-at-provider"
    """The provider, asked by key, did not have it: sent (with the same key)."""
    RESENT_SAME_MESSAGE_ID = "resent-same-message-id"
    """The provider cannot be asked: sent once more after a delay with the same Message-ID
    (a duplicate is recognisable; the resident is never left with none)."""
    NOT_SENT_AGAIN = "not-sent-again"
    """The provider cannot be asked and the policy is at most once: perhaps sent."""
    NOTIFIED_OTHERWISE = "notified-otherwise"
    """The provider cannot be asked, and another channel of the same round was sent: the
    resident has a notice; perhaps sent, not sent again."""


def key_for(case_id: str, channel: str, round_: int = 1) -> str:
    """The idempotency key of one notification, the same on every attempt: ``case:channel`` for
    the first notification, ``case:channel:N`` for the Nth (an unread follow-up's)."""
    return f"{case_id}:{channel}" if round_ == 1 else f"{case_id}:{channel}:{round_}"


@dataclass(frozen=True)
class Queued:
    """A notification to write with a delivery: where it goes and when it may go."""

    case_id: str
    channel: str
    address: str | None
    round: int = 1
    due_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        """Its idempotency key."""
        return key_for(self.case_id, self.channel, self.round)


@dataclass(frozen=True)
class Entry:
    """One notification's row."""

    key: str
    case_id: str
    channel: str
    round: int
    status: str
    provider_ref: str | None
    reason: str | None
    attempts: int
    sent_at: dt.datetime | None
    updated_at: dt.datetime
    address: str | None = None
    due_at: dt.datetime | None = None
    resolution: str | None = None


def _entry(row: sa.Row[tuple[object, ...]]) -> Entry:
    m = row._mapping
    return Entry(
        key=m["idempotency_key"],
        case_id=m["case_id"],
        channel=m["channel"],
        round=m["round"],
        status=m["status"],
        provider_ref=m["provider_ref"],
        reason=m["reason"],
        attempts=m["attempts"],
        sent_at=aware_utc(m["sent_at"]),
        updated_at=aware_utc(m["updated_at"]) or utcnow(),
        address=m["address"],
        due_at=aware_utc(m["due_at"]),
        resolution=m["resolution"],
    )


def write_queued(conn: sa.Connection, rows: Sequence[Queued], *, refused: str) -> None:
    """Write notifications as queued (with the caller's transaction: the delivery's); a row
    that exists already is left as it is (a redelivered chunk changes nothing). A row without
    an address is written refused with the reason code ``refused``: it can never be sent."""
    if not rows:
        return
    now = utcnow()
    bulk_insert(
        conn,
        notification_ledger,
        [
            {
                "idempotency_key": r.key,
                "case_id": r.case_id,
                "channel": r.channel,
                "round": r.round,
                "status": QUEUED if r.address else REFUSED,
                "reason": None if r.address else refused,
                "detail": None if r.address else f"no {r.channel} address",
                "address": r.address,
                "due_at": r.due_at,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for r in rows
        ],
        on_conflict_do_nothing=True,
    )


def entries(conn: sa.Connection, keys: Iterable[str]) -> dict[str, Entry]:
    """The rows of these notification keys, by key."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(notification_ledger).where(
            among(conn, notification_ledger.c.idempotency_key, wanted)
        )
    ).all()  # all at once: psycopg's fetchone per row costs more
    return {entry.key: entry for entry in map(_entry, rows)}


def entries_for(conn: sa.Connection, case_ids: Iterable[str]) -> dict[str, Entry]:
    """Every ledger row of these cases, by idempotency key."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(notification_ledger).where(among(conn, notification_ledger.c.case_id, ids))
    ).all()
    return {entry.key: entry for entry in map(_entry, rows)}


_CLAIM = (
    "UPDATE notification_ledger SET status = '{pending}', attempts = attempts + 1, "
    "updated_at = :now{resolution} "
    "WHERE idempotency_key = ANY(CAST(:keys AS VARCHAR[])) "
    "AND status = ANY(CAST(:sendable AS VARCHAR[])) AND (due_at IS NULL OR due_at <= :now) "
    "RETURNING idempotency_key"
)
_CLAIM_PG = sa.text(_CLAIM.format(pending=PENDING, resolution=""))
_CLAIM_RESOLVED_PG = sa.text(
    _CLAIM.format(pending=PENDING, resolution=", resolution = :resolution")
)
"""PostgreSQL: ``claim`` as fixed SQL (it runs once per group of sends: building and compiling
the statement each time cost more than running it)."""


def claim(
    conn: sa.Connection, keys: Sequence[str], now: dt.datetime, *, resolution: str | None = None
) -> set[str]:
    """Claim (pending) those of ``keys`` that are queued or retry and due; return them. Rows
    another sender claimed or settled meanwhile are not returned: a claim is a conditional
    update, so two senders never both call the provider for a row."""
    if not keys:
        return set()
    if conn.dialect.name == "postgresql":
        statement = _CLAIM_PG if resolution is None else _CLAIM_RESOLVED_PG
        params = {"keys": literal(keys), "sendable": literal(sorted(SENDABLE)), "now": now}
        if resolution is not None:
            params["resolution"] = resolution
        return set(conn.execute(statement, params).scalars().all())  # not fetched row by row
    due = sa.or_(notification_ledger.c.due_at.is_(None), notification_ledger.c.due_at <= now)
    values: dict[str, object] = {
        "status": PENDING,
        "attempts": notification_ledger.c.attempts + 1,
        "updated_at": now,
    }
    if resolution is not None:
        values["resolution"] = resolution
    result = conn.execute(
        sa.update(notification_ledger)
        .where(
            among(conn, notification_ledger.c.idempotency_key, keys),
            notification_ledger.c.status.in_(sorted(SENDABLE)),
            due,
        )
        .values(**values)
        .returning(notification_ledger.c.idempotency_key)
    )
    return set(result.scalars().all())


def reclaim_in_doubt(
    conn: sa.Connection, key: str, older_than: dt.datetime, *, resolution: str
) -> bool:
    """Take over an in-doubt row (pending since before ``older_than``) to send it again now;
    False if another sender took it or it moved meanwhile."""
    result = conn.execute(
        sa.update(notification_ledger)
        .where(
            notification_ledger.c.idempotency_key == key,
            notification_ledger.c.status == PENDING,
            notification_ledger.c.updated_at < older_than,
        )
        .values(
            attempts=notification_ledger.c.attempts + 1,
            resolution=resolution,
            updated_at=utcnow(),
        )
        .returning(notification_ledger.c.idempotency_key)
    )
    return result.first() is not None


def requeue_in_doubt(
    conn: sa.Connection, key: str, older_than: dt.datetime, *, due_at: dt.datetime
) -> bool:
    """An in-doubt row the provider cannot be asked about, to be sent once more at ``due_at``
    with the same key (so the same Message-ID); False if it moved meanwhile."""
    result = conn.execute(
        sa.update(notification_ledger)
        .where(
            notification_ledger.c.idempotency_key == key,
            notification_ledger.c.status == PENDING,
            notification_ledger.c.updated_at < older_than,
        )
        .values(
            status=RETRY,
            due_at=due_at,
            resolution=Resolution.RESENT_SAME_MESSAGE_ID,
            updated_at=utcnow(),
        )
        .returning(notification_ledger.c.idempotency_key)
    )
    return result.first() is not None


def _update(conn: sa.Connection, key: str, only_from: str | None, **values: object) -> bool:
    statement = sa.update(notification_ledger).where(notification_ledger.c.idempotency_key == key)
    if only_from is not None:
        statement = statement.where(notification_ledger.c.status == only_from)
    result = conn.execute(statement.values(updated_at=utcnow(), **values))
    return bool(result.rowcount)


def mark_sent(
    conn: sa.Connection, key: str, provider_ref: str, *, resolution: str | None = None
) -> None:
    """The provider took it."""
    extra = {"resolution": resolution} if resolution else {}
    _update(
        conn,
        key,
        None,
        status=SENT,
        provider_ref=provider_ref,
        sent_at=utcnow(),
        reason=None,
        **extra,
    )


_MARK_SENT_MANY = (
    "UPDATE notification_ledger SET status = :sent, provider_ref = i.ref, sent_at = :sent_now, "
    "reason = NULL, updated_at = :sent_now "
    "FROM unnest(CAST(:sent_keys AS VARCHAR[]), CAST(:refs AS VARCHAR[])) AS i(key, ref) "
    "WHERE notification_ledger.idempotency_key = i.key"
)
_MARK_SENT_MANY_PG = sa.text(_MARK_SENT_MANY)
_MARK_SENT_AND_CLAIM_PG = sa.text(
    f"WITH sent AS ({_MARK_SENT_MANY}) {_CLAIM.format(pending=PENDING, resolution='')}"
)
"""PostgreSQL: ``mark_sent_many`` and ``claim`` of other rows in one statement (the answers of
a group and the claim of the next group share a transaction: one round trip, not two)."""
_MARK_SENT_MANY_EACH = (
    sa.update(notification_ledger)
    .where(notification_ledger.c.idempotency_key == sa.bindparam("b_key"))
    .values(
        status=SENT,
        provider_ref=sa.bindparam("b_ref"),
        sent_at=sa.bindparam("b_now"),
        reason=None,
        updated_at=sa.bindparam("b_now"),
    )
)


def mark_sent_many(conn: sa.Connection, taken: Sequence[tuple[str, str]]) -> None:
    """The provider took each ``(key, provider_ref)``: ``mark_sent`` for many rows in one
    statement (the answers that came in together, recorded in one transaction)."""
    if not taken:
        return
    now = utcnow()
    if conn.dialect.name == "postgresql":
        conn.execute(_MARK_SENT_MANY_PG, _sent_params(taken, now))
        return
    conn.execute(_MARK_SENT_MANY_EACH, [{"b_key": k, "b_ref": r, "b_now": now} for k, r in taken])


def _sent_params(taken: Sequence[tuple[str, str]], now: dt.datetime) -> dict[str, object]:
    keys, refs = [k for k, _ in taken], [r for _, r in taken]
    return {"sent": SENT, "sent_now": now, "sent_keys": literal(keys), "refs": literal(refs)}


def mark_sent_and_claim(
    conn: sa.Connection, taken: Sequence[tuple[str, str]], keys: Sequence[str], now: dt.datetime
) -> set[str]:
    """``mark_sent_many(taken)`` then ``claim(keys, now)``, in one statement on PostgreSQL:
    the claimed keys. ``taken`` and ``keys`` are different rows (those answered, those to send
    next), so the claim is the same whether it sees the marks or not."""
    if not taken or not keys or conn.dialect.name != "postgresql":
        mark_sent_many(conn, taken)
        return claim(conn, keys, now)
    params = {"keys": literal(keys), "sendable": literal(sorted(SENDABLE)), "now": now}
    result = conn.execute(_MARK_SENT_AND_CLAIM_PG, {**params, **_sent_params(taken, utcnow())})
    return set(result.scalars().all())


def mark_refused(conn: sa.Connection, key: str, reason: str, detail: str) -> None:
    """Permanent failure, with a reason code; never tried again."""
    _update(conn, key, PENDING, status=REFUSED, reason=reason, detail=detail[:300])


def mark_retry(
    conn: sa.Connection, key: str, detail: str, *, due_at: dt.datetime | None = None
) -> None:
    """A transient failure the provider certainly did not take: the next attempt sends."""
    _update(conn, key, PENDING, status=RETRY, detail=detail[:300], due_at=due_at)


def mark_retry_many(conn: sa.Connection, retried: Sequence[tuple[str, str]]) -> None:
    """``mark_retry`` for many ``(key, detail)`` rows: one statement per distinct detail (a
    batch the provider could not take fails every recipient with the same one)."""
    by_detail: dict[str, list[str]] = {}
    for key, detail in retried:
        by_detail.setdefault(detail[:300], []).append(key)
    now = utcnow()
    for detail, keys in by_detail.items():
        conn.execute(
            sa.update(notification_ledger)
            .where(
                among(conn, notification_ledger.c.idempotency_key, keys),
                notification_ledger.c.status == PENDING,
            )
            .values(status=RETRY, detail=detail, due_at=None, updated_at=now)
        )


def mark_unconfirmed(
    conn: sa.Connection,
    key: str,
    reason: str,
    detail: str,
    *,
    resolution: str = Resolution.NOT_SENT_AGAIN,
) -> None:
    """An in-doubt send settled by policy: counted as perhaps sent, never sent again."""
    _update(
        conn,
        key,
        PENDING,
        status=UNCONFIRMED,
        reason=reason,
        detail=detail[:300],
        resolution=resolution,
    )


def sent_rounds(conn: sa.Connection, case_ids: Iterable[str]) -> dict[tuple[str, int], set[str]]:
    """The channels sent per (case, round) of these cases."""
    found: dict[tuple[str, int], set[str]] = {}
    for case_id, round_, channel in _sent(conn, case_ids, notification_ledger.c.round):
        found.setdefault((case_id, round_), set()).add(channel)
    return found


def sent_channels(conn: sa.Connection, case_ids: Iterable[str]) -> dict[str, list[str]]:
    """The channels each case was notified on (sent, any round), sorted."""
    found: dict[str, set[str]] = {}
    for case_id, channel in _sent(conn, case_ids):
        found.setdefault(case_id, set()).add(channel)
    return {case_id: sorted(channels) for case_id, channels in found.items()}


def _sent(
    conn: sa.Connection, case_ids: Iterable[str], *columns: sa.ColumnElement[Any]
) -> Sequence[Any]:
    """``(case_id, *columns, channel)`` of the sent rows of these cases: only what is asked,
    not whole entries (a 500-case chunk's are read once per chunk sent)."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return []
    ledger = notification_ledger.c
    query = sa.select(ledger.case_id, *columns, ledger.channel).where(
        among(conn, ledger.case_id, ids), ledger.status == SENT
    )
    return conn.execute(query).all()


OPEN = frozenset({QUEUED, PENDING, RETRY})
"""Statuses of a notification still to be sent (or settled)."""


def count_settled(
    conn: sa.Connection, *, batch_id: str | None = None, case_ids: Sequence[str] | None = None
) -> int:
    """How many cases the pipeline has finished with (of one batch, or of all): notified,
    read, rejected or failed, and delivered with every notification refused or settled
    unsent (a delivered case with a notification still open, or sent but not yet recorded
    notified, is still moving)."""
    still_open = (
        sa.select(notification_ledger.c.idempotency_key)
        .where(
            notification_ledger.c.case_id == cases.c.id,
            notification_ledger.c.status.in_(sorted(OPEN | {SENT})),
        )
        .exists()
    )
    done = [s.value for s in SETTLED_CASE_STATES if s != CaseState.DELIVERED]
    query = sa.select(sa.func.count()).where(
        sa.or_(
            cases.c.state.in_(done),
            sa.and_(cases.c.state == CaseState.DELIVERED.value, ~still_open),
        )
    )
    if batch_id is not None:
        query = query.where(cases.c.batch_id == batch_id)
    if case_ids is None:
        return int(conn.execute(query).scalar_one())
    ids = list(case_ids)
    return sum(  # in slices: a statement takes a bounded number of parameters
        int(conn.execute(query.where(cases.c.id.in_(ids[i : i + 5000]))).scalar_one())
        for i in range(0, len(ids), 5000)
    )


def count_sent(conn: sa.Connection, *, batch_id: str | None = None) -> dict[str, int]:
    """How many notifications were sent per channel (for one batch's cases, or all)."""
    query = (
        sa.select(notification_ledger.c.channel, sa.func.count())
        .where(notification_ledger.c.status == SENT)
        .group_by(notification_ledger.c.channel)
    )
    if batch_id is not None:
        query = query.join(cases, cases.c.id == notification_ledger.c.case_id).where(
            cases.c.batch_id == batch_id
        )
    return {str(row[0]): int(row[1]) for row in conn.execute(query)}


def count_resolutions(conn: sa.Connection) -> Counter[tuple[str, str]]:
    """How many in-doubt notifications were settled which way, per (channel, resolution)."""
    query = (
        sa.select(notification_ledger.c.channel, notification_ledger.c.resolution, sa.func.count())
        .where(notification_ledger.c.resolution.is_not(None))
        .group_by(notification_ledger.c.channel, notification_ledger.c.resolution)
    )
    return Counter({(str(r[0]), str(r[1])): int(r[2]) for r in conn.execute(query)})


def stalled(
    conn: sa.Connection,
    *,
    quiet_before: dt.datetime,
    in_flight_before: dt.datetime,
    limit: int,
    moving: sa.Select[tuple[str]] | None = None,
) -> list[Entry]:
    """Rows a sweep should re-drive, oldest first: queued or retry, unchanged since before
    ``quiet_before`` and due since before it too; or pending (in doubt) since before
    ``in_flight_before``. A paused dispatch's rows wait on purpose (the actor shell holds its
    chunks): never re-driven until it is resumed; queued rows of a dispatch in ``moving`` (one
    still making progress) wait their turn too."""
    due = sa.or_(
        notification_ledger.c.due_at.is_(None), notification_ledger.c.due_at < quiet_before
    )
    paused = sa.select(batches.c.id).where(batches.c.status == "paused")
    held = sa.exists().where(
        cases.c.id == notification_ledger.c.case_id, cases.c.batch_id.in_(paused)
    )
    waiting = (
        sa.exists().where(cases.c.id == notification_ledger.c.case_id, cases.c.batch_id.in_(moving))
        if moving is not None
        else sa.false()
    )
    query = (
        sa.select(notification_ledger)
        .where(
            ~held,
            sa.or_(
                sa.and_(
                    notification_ledger.c.status.in_(sorted(SENDABLE)),
                    notification_ledger.c.updated_at < quiet_before,
                    due,
                    ~waiting,
                ),
                sa.and_(
                    notification_ledger.c.status == PENDING,
                    notification_ledger.c.updated_at < in_flight_before,
                ),
            ),
        )
        .order_by(notification_ledger.c.updated_at)
        .limit(limit)
    )
    return [_entry(row) for row in conn.execute(query)]
