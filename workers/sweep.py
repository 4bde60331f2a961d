"""The sweep: a periodic job (``omvant sweep``) so that nothing waits forever.

Each run finds what has not moved for longer than its limit (``OMVANT_SWEEP_LIMITS``, seconds
per state) and re-drives it from its last recorded step, idempotently (a second sweep, or a
worker doing the same at the same time, changes nothing twice):

- notifications (the ledger is the outbox, every row holds what to send): rows queued or
  retry and due for longer than the ``notification`` limit, and rows pending (in doubt) for
  longer than the in-flight limit, are sent or settled through the one send protocol
  (``notification_sending.send_notifications``), and their cases recorded notified;
- delivered cases with a notification sent but no ``notified`` recorded (a crash between the
  two) are recorded notified, and a notified case's channels get those sent since: those of
  the notifications it re-drove, and any sent before the ``notification`` limit that the
  case's record does not name (``channels-recorded``: the mark committed, the message that
  would have recorded the channel lost);
- cases stalled at ``cleared`` (their message to inbox delivery lost) are sent to inbox
  delivery again, their ``AttachmentsCleared`` built from the record (``workers.redrive``);
- cases stalled earlier (received, validated, composed) are sent their stage message again,
  built from the record: the request each case keeps sealed (``case_bodies``), the row and
  the sealed content (``workers.redrive_early``); a case made before the request was kept is
  counted (``no-request-<state>``), not sent;
- the unread follow-ups that are due are carried out (``workers.unread_follow_up``).

``findings`` counts without changing anything (for the on-call metrics); ``run`` acts and
returns the counts of what it found and did.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from workers.adapters.notifiers import NotifierUnavailable
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.notification_sending import STAGE as SENDING
from workers.notification_sending import notified_decisions, send_notifications
from workers.redrive import redrive_cleared
from workers.redrive_early import redrive_early
from workers.stage import settle
from workers.store import cases as cases_store
from workers.store import notifications
from workers.store.cases import utcnow
from workers.store.schema import batches, cases, notification_ledger, sweep_runs
from workers.store.sql import aware_utc
from workers.unread_follow_up import run_follow_ups

log = get_logger(__name__)

BEFORE_DELIVERY = (
    CaseState.RECEIVED,
    CaseState.VALIDATED,
    CaseState.COMPOSED,
    CaseState.CLEARED,
)

DEFAULT_LIMITS: dict[str, float] = {
    "received": 900.0,
    "validated": 900.0,
    "composed": 900.0,
    "cleared": 900.0,
    "delivered": 300.0,
    "notification": 300.0,
}
"""Seconds a case may stay in a state (a notification queued and due) before the sweep acts."""


@dataclass(frozen=True)
class Limits:
    """How long each state may last before the sweep looks at it."""

    seconds: dict[str, float]

    def cutoff(self, now: dt.datetime, state: str) -> dt.datetime:
        """Things last changed before this have stalled in ``state``."""
        limit = self.seconds.get(state, DEFAULT_LIMITS.get(state, 900.0))
        return now - dt.timedelta(seconds=limit)


def limits_for(ctx: Context) -> Limits:
    """The limits of this deployment (defaults, overridden by ``OMVANT_SWEEP_LIMITS``)."""
    return Limits({**DEFAULT_LIMITS, **ctx.settings.sweep_limits})


def stalled_cases(
    conn: sa.Connection, now: dt.datetime, limits: Limits, *, limit: int = 1000
) -> dict[str, list[str]]:
    """The cases per state that have not moved for longer than the state's limit. A paused
    dispatch's cases wait on purpose, and so do those of a dispatch still moving (another of
    its cases changed within the limit): a 100,000-case dispatch keeps cases queued for longer
    than any limit, and they are not lost. A lost message's cases are found once their
    dispatch has stopped moving."""
    found: dict[str, list[str]] = {}
    paused = sa.select(batches.c.id).where(batches.c.status == "paused")
    for state in (*BEFORE_DELIVERY, CaseState.DELIVERED):
        cutoff = limits.cutoff(now, state)
        rows = conn.execute(
            sa.select(cases.c.id)
            .where(
                cases.c.state == state.value,
                cases.c.updated_at < cutoff,
                ~waits_for_quiet_hours(now) if state == CaseState.DELIVERED else sa.true(),
                sa.or_(
                    cases.c.batch_id.is_(None),
                    sa.and_(
                        cases.c.batch_id.not_in(paused),
                        cases.c.batch_id.not_in(moving_batches(cutoff)),
                    ),
                ),
            )
            .order_by(cases.c.updated_at)
            .limit(limit)
        )
        ids = [row.id for row in rows]
        if ids:
            found[state.value] = ids
    return found


def waits_for_quiet_hours(now: dt.datetime) -> sa.Exists:
    """A delivered case with a notification due later (an SMS kept for the end of quiet hours)
    waits on purpose: not stalled, however long the night."""
    return sa.exists().where(
        notification_ledger.c.case_id == cases.c.id,
        notification_ledger.c.status.in_(sorted(notifications.SENDABLE)),
        notification_ledger.c.due_at > now,
    )


def moving_batches(since: dt.datetime) -> sa.Select[tuple[str]]:
    """The dispatches one of whose cases changed at or after ``since`` (still moving)."""
    recent = cases.alias("recent")
    return (
        sa.select(recent.c.batch_id)
        .where(recent.c.updated_at >= since, recent.c.batch_id.is_not(None))
        .distinct()
    )


def stalled_notifications(
    conn: sa.Connection, now: dt.datetime, limits: Limits, in_flight_seconds: float, limit: int
) -> list[notifications.Entry]:
    """Notifications queued or retry and due for longer than the limit (not those of a
    dispatch still moving: they wait their turn on a deep queue), and in-doubt ones."""
    quiet_before = limits.cutoff(now, "notification")
    return notifications.stalled(
        conn,
        quiet_before=quiet_before,
        moving=moving_batches(quiet_before),
        in_flight_before=now - dt.timedelta(seconds=in_flight_seconds),
        limit=limit,
    )


def findings(ctx: Context) -> dict[str, int]:
    """What a sweep would find now, counted, changing nothing (for metrics and ``status``):
    ``stalled-<state>`` per case state and ``stalled-notifications``."""
    now, limits = ctx.now(), limits_for(ctx)
    with ctx.engine.connect() as conn:
        stalled = stalled_cases(conn, now, limits, limit=1_000_000)
        rows = stalled_notifications(
            conn, now, limits, ctx.settings.notification_in_flight_seconds, 1_000_000
        )
    counts = {f"stalled-{state}": len(ids) for state, ids in stalled.items()}
    counts["stalled-notifications"] = len(rows)
    return counts


def run(ctx: Context, *, limit: int = 1000) -> Counter[str]:
    """One sweep: re-drive what has stalled, run the due unread follow-ups; return the counts
    of what it found and did (also logged)."""
    now, limits = ctx.now(), limits_for(ctx)
    counts: Counter[str] = Counter()
    with ctx.engine.connect() as conn:
        rows = stalled_notifications(
            conn, now, limits, ctx.settings.notification_in_flight_seconds, limit
        )
    counts["stalled-notifications"] = len(rows)
    case_ids = sorted({row.case_id for row in rows})
    if rows:
        outcome = send_notifications(ctx, [row.key for row in rows])
        counts.update({f"notifications-{k}": v for k, v in outcome.counts.items()})
        if outcome.failure is not None:
            counts["notifications-provider-unavailable"] += 1
    with ctx.engine.connect() as conn:
        stalled = stalled_cases(conn, now, limits, limit=limit)
    for state, ids in stalled.items():
        counts[f"stalled-{state}"] = len(ids)
    counts.update(redrive_early(ctx, stalled))
    counts.update(redrive_cleared(ctx, stalled.get(CaseState.CLEARED.value, [])))
    delivered = stalled.get(CaseState.DELIVERED.value, [])
    counts["notified-recorded"] = _record_notified(ctx, sorted({*case_ids, *delivered}))
    counts["channels-recorded"] = _record_channels(ctx, now, limits, limit=limit)
    try:
        follow_ups = run_follow_ups(ctx, limit=limit)
    except NotifierUnavailable:
        follow_ups = Counter({"retry-next-run": 1})
    counts.update({f"follow-up-{k}": v for k, v in follow_ups.items()})
    log.info("sweep", **{k.replace("-", "_"): v for k, v in sorted(counts.items()) if v})
    record_run(ctx, counts)
    return counts


KEEP_RUNS = dt.timedelta(days=7)


def record_run(ctx: Context, counts: Mapping[str, int]) -> None:
    """Keep what this run found and did (``last_run`` reads it); drop runs older than a week."""
    now = utcnow()
    with ctx.engine.begin() as conn:
        conn.execute(
            sweep_runs.insert().values(at=now, counts=json.dumps(dict(sorted(counts.items()))))
        )
        conn.execute(sweep_runs.delete().where(sweep_runs.c.at < now - KEEP_RUNS))


def last_run(conn: sa.Connection) -> dict[str, Any] | None:
    """The last sweep: ``{"at": ISO time, "counts": {...}}``, or None if none ran."""
    row = conn.execute(
        sa.select(sweep_runs.c.at, sweep_runs.c.counts).order_by(sweep_runs.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    at = aware_utc(row.at)
    return {"at": at.isoformat(), "counts": json.loads(row.counts)}


def unrecorded_channels(
    conn: sa.Connection, before: dt.datetime, *, limit: int
) -> dict[str, list[str]]:
    """Notified (or read) cases with a notification sent before ``before`` on a channel their
    record does not name (the mark committed, the process that would have recorded the channel
    ended first), and those channels."""
    recorded = sa.literal(",") + sa.func.coalesce(cases.c.channels, "") + sa.literal(",")
    rows = conn.execute(
        sa.select(notification_ledger.c.case_id, notification_ledger.c.channel)
        .join(cases, cases.c.id == notification_ledger.c.case_id)
        .where(
            notification_ledger.c.status == notifications.SENT,
            notification_ledger.c.updated_at < before,
            cases.c.state.in_([CaseState.NOTIFIED.value, CaseState.READ.value]),
            ~recorded.contains(sa.literal(",") + notification_ledger.c.channel + sa.literal(",")),
        )
        .limit(limit)
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.case_id, []).append(row.channel)
    return found


def _record_channels(ctx: Context, now: dt.datetime, limits: Limits, *, limit: int) -> int:
    """Add to notified cases' records the channels sent that they do not name; return how
    many cases were put right."""
    with ctx.engine.begin() as conn:
        missing = unrecorded_channels(conn, limits.cutoff(now, "notification"), limit=limit)
        cases_store.add_channels(conn, missing)
    if missing:
        log.warning("notified cases' channels put right", cases=len(missing))
    return len(missing)


def _record_notified(ctx: Context, case_ids: list[str]) -> int:
    """Record ``notified`` for cases with a notification sent; return how many moved now."""
    if not case_ids:
        return 0
    with ctx.engine.connect() as conn:
        sent = notifications.sent_channels(conn, case_ids)
        before = {
            row.id
            for row in conn.execute(
                sa.select(cases.c.id).where(
                    cases.c.id.in_(case_ids), cases.c.state == CaseState.DELIVERED.value
                )
            )
        }
    decisions = [d for d in notified_decisions(sent, ctx.now(), case_ids) if d.case_id in before]
    settle(
        ctx,
        stage=SENDING,
        decisions=decisions,
        correlation_id="sweep",
        # a case notified before on one channel keeps its record true of the others sent since
        within=lambda conn, _holding: cases_store.add_channels(conn, sent),
    )
    return len(decisions)
