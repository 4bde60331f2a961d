"""The unread follow-up job: "if unread after N hours, notify again" or "flag to staff".

A template may carry ``unread_followup`` (``after_hours``, ``action``); inbox delivery sets the
due time when the case is delivered. This job (run by ``omvant sweep``, and on its own by
``omvant cases follow-up``) takes the due follow-ups of cases still unread: "flag" marks the
case for staff (it shows under ``omvant cases list --status overdue`` in any case),
"notify-again" writes a second notification per channel to the outbox (round 2, its own
idempotency key) in the transaction that marks the follow-up done, and sends them through the
one send protocol (``notification_sending.send_notifications``). An SMS in quiet hours is
written due at their end and sent by the next sweep after it; one the provider could not take
now is sent by a later sweep.
"""

from __future__ import annotations

from collections import Counter

from workers.bootstrap import Context
from workers.log import get_logger
from workers.notification_dispatch import address_of
from workers.notification_sending import send_notifications
from workers.quiet_hours import QuietHours
from workers.reasons import Reason
from workers.store import follow_ups, notifications

NOTIFY_AGAIN = "notify-again"
ROUND = 2
log = get_logger(__name__)


def run_follow_ups(ctx: Context, *, limit: int = 1000) -> Counter[str]:
    """Carry out the due follow-ups; return how many came to each outcome."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        due = follow_ups.due(conn, now, limit=limit)
    quiet = QuietHours.parse(ctx.settings.sms_quiet_hours, ctx.settings.timezone)
    sms_due_at = quiet.ends_at(now) if quiet is not None else None
    accounts = ctx.directory.lookup_many(sorted({d.personnummer for d in due}))
    outcomes: Counter[str] = Counter()
    keys: list[str] = []
    for item in due:
        if item.action != NOTIFY_AGAIN:
            with ctx.engine.begin() as conn:
                follow_ups.mark_done(conn, item.case_id, "flagged")
            outcomes["flagged"] += 1
            continue
        account = accounts.get(item.personnummer)
        channels = sorted(account.channels) if account else []
        rows = [
            notifications.Queued(
                item.case_id,
                channel,
                address_of(account, channel),
                round=ROUND,
                due_at=sms_due_at if channel == "sms" else None,
            )
            for channel in channels
        ]
        with ctx.engine.begin() as conn:
            notifications.write_queued(conn, rows, refused=Reason.NOTIFICATION_ADDRESS_MISSING)
            follow_ups.mark_done(
                conn,
                item.case_id,
                "notified-again:" + ",".join(channels) if rows else "not-notified",
            )
        keys.extend(row.key for row in rows if row.address)
        waiting = any(row.due_at is not None for row in rows)
        outcomes["waiting-for-morning" if waiting else "notified-again"] += 1
    if keys:
        outcome = send_notifications(ctx, keys)
        if outcome.failure is not None:
            outcomes["retry-next-run"] += 1
    log.info("unread follow-ups run", **{k.replace("-", "_"): v for k, v in outcomes.items()})
    return outcomes
