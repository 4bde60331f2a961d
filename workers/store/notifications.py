"""The notification ledger: one row per case, channel and round, written around the provider call.

``claim`` writes *pending* before the provider is called; ``mark_sent`` / ``mark_refused`` after.
A pending row that a later attempt finds is "in doubt": the provider may have taken it before the
worker died. Dispatch settles it by asking the provider (``SmsGateway.lookup``), or by policy for
e-mail, and never sends blindly again.

Marks are written at once, never batched: a notification's record must survive a crash right
after the provider took it. What a chunk can share is the reading: inside ``chunk_ledger`` (the
actor shell opens one per chunk) the chunk's rows are read with one query, and a notification
already settled (sent, refused, unconfirmed) is answered from that read without a round trip,
which makes a redelivered chunk cheap.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import _insert, utcnow
from workers.store.schema import cases, notification_ledger

PENDING = "pending"
"""Claimed before the provider call; found later, it means "in doubt"."""
SENT = "sent"
REFUSED = "refused"
RETRY = "retry"
"""The provider certainly did not take it (5xx, 429, refused connection): safe to send again."""
UNCONFIRMED = "unconfirmed"
"""An in-doubt e-mail settled by policy: perhaps sent, never sent again."""


def key_for(case_id: str, channel: str, round_: int = 1) -> str:
    """The idempotency key of one notification, the same on every attempt: ``case:channel`` for
    the first notification, ``case:channel:N`` for the Nth (an unread follow-up's)."""
    return f"{case_id}:{channel}" if round_ == 1 else f"{case_id}:{channel}:{round_}"


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


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)  # SQLite gives back naive UTC


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
        sent_at=_aware(m["sent_at"]),
        updated_at=_aware(m["updated_at"]) or utcnow(),
    )


def entries_for(conn: sa.Connection, case_ids: Iterable[str]) -> dict[str, Entry]:
    """Every ledger row of these cases, by idempotency key."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(notification_ledger).where(notification_ledger.c.case_id.in_(ids))
    )
    return {entry.key: entry for entry in map(_entry, rows)}


SETTLED = frozenset({SENT, REFUSED, UNCONFIRMED})
"""Statuses no later attempt changes."""


@dataclass
class _ChunkRead:
    case_ids: set[str]
    settled: dict[str, Entry] | None = None


_chunk: ContextVar[_ChunkRead | None] = ContextVar("omvant_chunk_ledger", default=None)


@contextmanager
def chunk_ledger(engine: sa.Engine, case_ids: Iterable[str]) -> Iterator[None]:
    """Share one read of the ledger among the notifications of one chunk of cases (read, when
    first needed, on the connection of the first ``claim``; ``engine`` is not needed for that)."""
    del engine
    token = _chunk.set(_ChunkRead(set(case_ids)))
    try:
        yield
    finally:
        _chunk.reset(token)


def _settled_in_chunk(conn: sa.Connection, key: str, case_id: str) -> Entry | None:
    chunk = _chunk.get()
    if chunk is None or case_id not in chunk.case_ids:
        return None
    if chunk.settled is None:
        read = entries_for(conn, sorted(chunk.case_ids))
        chunk.settled = {k: e for k, e in read.items() if e.status in SETTLED}
    return chunk.settled.get(key)


def claim(conn: sa.Connection, key: str, case_id: str, channel: str, round_: int) -> Entry | None:
    """Record the notification as pending, unless it has a row already; return that row.

    Returns
    -------
    Entry | None
        None when this call claimed it (call the provider now); else the row found, whose status
        says what to do (sent: nothing; pending: in doubt; retry: send again; refused: nothing).
    """
    settled = _settled_in_chunk(conn, key, case_id)
    if settled is not None:
        return settled
    now = utcnow()
    claimed = conn.execute(
        _insert(conn, notification_ledger)
        .values(
            idempotency_key=key,
            case_id=case_id,
            channel=channel,
            round=round_,
            status=PENDING,
            attempts=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(notification_ledger.c.idempotency_key)
    ).first()
    if claimed is not None:
        return None
    row = conn.execute(
        sa.select(notification_ledger).where(notification_ledger.c.idempotency_key == key)
    ).one()
    return _entry(row)


def claim_many(
    conn: sa.Connection, wanted: Sequence[tuple[str, str, str, int]]
) -> dict[str, Entry | None]:
    """``claim`` for a chunk's notifications ``(key, case_id, channel, round)`` in two
    statements: one INSERT of the pending rows, one read of the rows that were there already.

    Returns
    -------
    dict
        key -> None when this call claimed it, else the row found (see ``claim``).
    """
    if not wanted:
        return {}
    now = utcnow()
    if conn.dialect.name == "postgresql":
        claimed = {
            row[0]
            for row in conn.execute(
                _CLAIM_PG,
                {
                    "keys": [w[0] for w in wanted],
                    "case_ids": [w[1] for w in wanted],
                    "channels": [w[2] for w in wanted],
                    "rounds": [w[3] for w in wanted],
                    "status": PENDING,
                    "now": now,
                },
            )
        }
    else:
        claimed = _claim_generic(conn, wanted, now)
    found: dict[str, Entry | None] = dict.fromkeys(claimed)
    others = [key for key, *_ in wanted if key not in claimed]
    if others:
        rows = conn.execute(
            sa.select(notification_ledger).where(notification_ledger.c.idempotency_key.in_(others))
        )
        found.update({entry.key: entry for entry in map(_entry, rows)})
    return found


_CLAIM_PG = sa.text(
    "INSERT INTO notification_ledger "
    "(idempotency_key, case_id, channel, round, status, attempts, created_at, updated_at) "
    "SELECT k, c, ch, r, :status, 1, :now, :now FROM unnest("
    "CAST(:keys AS VARCHAR[]), CAST(:case_ids AS VARCHAR[]), CAST(:channels AS VARCHAR[]), "
    "CAST(:rounds AS INTEGER[])) AS w(k, c, ch, r) "
    "ON CONFLICT DO NOTHING RETURNING idempotency_key"
)
"""PostgreSQL: a group's claims as one statement with the same text every time."""


def _claim_generic(
    conn: sa.Connection, wanted: Sequence[tuple[str, str, str, int]], now: dt.datetime
) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            _insert(conn, notification_ledger)
            .values(
                [
                    {
                        "idempotency_key": key,
                        "case_id": case_id,
                        "channel": channel,
                        "round": round_,
                        "status": PENDING,
                        "attempts": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for key, case_id, channel, round_ in wanted
                ]
            )
            .on_conflict_do_nothing()
            .returning(notification_ledger.c.idempotency_key)
        )
    }


class LedgerMarks:
    """Marks made after provider calls, written together by ``write`` (in the transaction that
    claims the next group of notifications) or ``flush``, so a chunk costs a commit per group
    instead of two per notification."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._marks: list[tuple[str, dict[str, object]]] = []

    def sent(self, key: str, provider_ref: str) -> None:
        """The provider took it."""
        self._add(key, status=SENT, provider_ref=provider_ref, sent_at=utcnow(), reason=None)

    def refused(self, key: str, reason: str, detail: str) -> None:
        """Permanent failure, with a reason code; never tried again."""
        self._add(key, status=REFUSED, reason=reason, detail=detail[:300])

    def retry(self, key: str, detail: str) -> None:
        """A transient failure the provider certainly did not take: the next attempt sends."""
        self._add(key, status=RETRY, detail=detail[:300])

    def _add(self, key: str, **values: object) -> None:
        self._marks.append((key, values))

    def flush(self) -> None:
        """Write the marks made so far in a transaction of their own."""
        if self._marks:
            with self.engine.begin() as conn:
                self.write(conn)

    def write(self, conn: sa.Connection) -> None:
        """Write the marks made so far on ``conn`` (the caller's transaction)."""
        if not self._marks:
            return
        marks, self._marks = self._marks, []
        if conn.dialect.name == "postgresql":
            sent = [(k, v) for k, v in marks if v.get("status") == SENT]
            if sent:
                conn.execute(
                    _MARK_SENT_PG,
                    {
                        "keys": [k for k, _ in sent],
                        "refs": [v["provider_ref"] for _, v in sent],
                        "now": utcnow(),
                    },
                )
                marks = [(k, v) for k, v in marks if v.get("status") != SENT]
        groups: dict[tuple[str, ...], list[tuple[str, dict[str, object]]]] = {}
        for key, values in marks:
            groups.setdefault(tuple(sorted(values)), []).append((key, values))
        now = utcnow()
        for names, group in groups.items():
            statement = (
                sa.update(notification_ledger)
                .where(notification_ledger.c.idempotency_key == sa.bindparam("b_key"))
                .values(updated_at=now, **{n: sa.bindparam(f"v_{n}") for n in names})
            )
            conn.execute(
                statement,
                [{"b_key": key, **{f"v_{n}": v[n] for n in names}} for key, v in group],
            )


_MARK_SENT_PG = sa.text(
    "UPDATE notification_ledger SET status = 'sent', provider_ref = m.ref, sent_at = :now, "
    "reason = NULL, updated_at = :now "
    "FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:refs AS VARCHAR[])) AS m(k, ref) "
    "WHERE notification_ledger.idempotency_key = m.k"
)
"""PostgreSQL: a group's sent marks as one statement with the same text every time."""


def _update(conn: sa.Connection, key: str, **values: object) -> None:
    conn.execute(
        sa.update(notification_ledger)
        .where(notification_ledger.c.idempotency_key == key)
        .values(updated_at=utcnow(), **values)
    )


def mark_pending_again(conn: sa.Connection, key: str) -> None:
    """A new attempt at a notification that may be sent again (status retry)."""
    _update(conn, key, status=PENDING, attempts=notification_ledger.c.attempts + 1)


def mark_sent(conn: sa.Connection, key: str, provider_ref: str) -> None:
    """The provider took it."""
    _update(conn, key, status=SENT, provider_ref=provider_ref, sent_at=utcnow(), reason=None)


def mark_refused(conn: sa.Connection, key: str, reason: str, detail: str) -> None:
    """Permanent failure, with a reason code; never tried again."""
    _update(conn, key, status=REFUSED, reason=reason, detail=detail[:300])


def mark_retry(conn: sa.Connection, key: str, detail: str) -> None:
    """A transient failure the provider certainly did not take: the next attempt sends."""
    _update(conn, key, status=RETRY, detail=detail[:300])


def mark_unconfirmed(conn: sa.Connection, key: str, reason: str, detail: str) -> None:
    """An in-doubt send settled by policy: counted as perhaps sent, never sent again."""
    _update(conn, key, status=UNCONFIRMED, reason=reason, detail=detail[:300])


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


def count_statuses(conn: sa.Connection) -> Counter[tuple[str, str]]:
    """How many ledger rows there are per (channel, status)."""
    query = sa.select(
        notification_ledger.c.channel, notification_ledger.c.status, sa.func.count()
    ).group_by(notification_ledger.c.channel, notification_ledger.c.status)
    return Counter({(str(r[0]), str(r[1])): int(r[2]) for r in conn.execute(query)})
