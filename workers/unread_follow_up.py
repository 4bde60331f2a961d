"""The unread follow-up job: "if unread after N hours, notify again" or "flag to staff".

A template may carry ``unread_followup`` (``after_hours``, ``action``); dispatch sets the due
time when the case is delivered. This job (``omvant cases follow-up``, run periodically, e.g. by
cron every 15 minutes) takes the due follow-ups of cases still unread: "flag" marks the case
for staff (it shows under ``omvant cases list --status overdue`` in any case), "notify-again"
sends a second notification once per channel (round 2, its own idempotency key, the same
ledger rules as the first). SMS in quiet hours wait for the next run after them.
"""

from __future__ import annotations

from collections import Counter

import dramatiq

from workers.adapters.notifiers import NotifierUnavailable
from workers.bootstrap import Context
from workers.log import get_logger
from workers.notification_dispatch import address_of, notify_once
from workers.quiet_hours import QuietHours
from workers.store import follow_ups

NOTIFY_AGAIN = "notify-again"
FLAG = "flag"
log = get_logger(__name__)


def run_follow_ups(ctx: Context, *, limit: int = 1000) -> Counter[str]:
    """Carry out the due follow-ups; return how many came to each outcome."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        due = follow_ups.due(conn, now, limit=limit)
    quiet = QuietHours.parse(ctx.settings.sms_quiet_hours, ctx.settings.timezone)
    in_quiet = quiet is not None and quiet.ends_at(now) is not None
    accounts = ctx.directory.lookup_many(sorted({d.personnummer for d in due}))
    outcomes: Counter[str] = Counter()
    for item in due:
        if item.action != NOTIFY_AGAIN:
            with ctx.engine.begin() as conn:
                follow_ups.mark_done(conn, item.case_id, "flagged")
            outcomes["flagged"] += 1
            continue
        account = accounts.get(item.personnummer)
        channels = sorted(account.channels) if account else []
        if in_quiet and "sms" in channels:
            outcomes["waiting-for-morning"] += 1
            continue
        try:
            sent = [
                channel
                for channel in channels
                if notify_once(
                    ctx,
                    case_id=item.case_id,
                    channel=channel,
                    address=address_of(account, channel),
                    round_=2,
                )
            ]
        except (NotifierUnavailable, dramatiq.Retry):
            outcomes["retry-next-run"] += 1
            continue
        with ctx.engine.begin() as conn:
            follow_ups.mark_done(
                conn, item.case_id, "notified-again:" + ",".join(sent) if sent else "not-notified"
            )
        outcomes["notified-again"] += 1
    log.info("unread follow-ups run", **{k.replace("-", "_"): v for k, v in outcomes.items()})
    return outcomes
