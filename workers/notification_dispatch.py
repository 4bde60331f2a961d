"""Stage 4, inbox delivery: deliver to the inbox and write the notifications to send.

Consumes ``AttachmentsCleared``; records ``delivered`` (or rejects the case when the inbox
refuses it) and emits ``NotificationQueued`` for the notification-sending stage
(``workers.notification_sending``). The queue keeps its published name,
``notification-dispatch``, so nothing queued under it is stranded.

Exactly one message in the inbox per case, under redelivery and crashes, with the ledger as a
transactional outbox:

1. one transaction per chunk records the intent: each case's stable delivery key
   (``CASE:inbox``);
2. each case is delivered under its key; the inbox is idempotent on it (``Inbox`` says every
   implementation must be), so a crash after the inbox took the message and before step 3 is
   settled by delivering again: the inbox answers with the same message and shows the resident
   nothing new;
3. one transaction records ``delivered`` and writes one *queued* notification row per channel
   (with ``due_at`` at the end of quiet hours for SMS asked for at night) and the unread
   follow-up; then the notification ids are emitted on the case's lane (a quiet-hours SMS
   with a delay, on the same lane).

``plan`` at the top is pure: it decides the messages and the notifications of a chunk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from contracts import attachments_cleared
from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.notification_queued import NotificationQueuedV1
from contracts.registry import Parsed
from workers.adapters.account_directory import Account
from workers.adapters.inbox import InboxMessage, InboxRefused, InboxUnavailable, delivery_key_for
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.quiet_hours import QuietHours
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, Reject, emit, settle
from workers.store import cases, follow_ups, notifications
from workers.store.cases import Transition
from workers.templates.model import UnreadFollowup

STAGE = ROUTES[attachments_cleared.NAME].stage

log = get_logger(__name__)


@dataclass(frozen=True)
class Planned:
    """One case of a chunk: its message, and the notifications to write once delivered."""

    item: AttachmentsClearedV1
    message: InboxMessage
    notifications: tuple[notifications.Queued, ...]


def address_of(account: Account | None, channel: str) -> str | None:
    """The resident's number or address for ``channel``."""
    if account is None:
        return None
    return account.phone if channel == "sms" else account.email


def plan(
    items: Sequence[AttachmentsClearedV1],
    accounts: Mapping[str, Account],
    *,
    sms_due_at: dt.datetime | None,
) -> list[Planned]:
    """The message and the notifications of each case (pure). ``sms_due_at`` is the end of
    the quiet hours we are in, if any: SMS wait for it, e-mail does not."""
    planned: list[Planned] = []
    for item in items:
        account = accounts.get(item.personnummer)
        message = InboxMessage(
            case_id=item.case_id,
            personnummer=item.personnummer,
            subject=item.subject,
            body=item.body,
            signature=item.signature,
            sent_on=item.sent_on,
            answerable=item.answerable,
            attachment_sha256=tuple(a.sha256 for a in item.attachments),
            delivery_key=delivery_key_for(item.case_id),
        )
        rows = tuple(
            notifications.Queued(
                item.case_id,
                channel,
                address_of(account, channel),
                due_at=sms_due_at if channel == "sms" else None,
            )
            for channel in item.channels
        )
        planned.append(Planned(item, message, rows))
    return planned


def follow_up_for(
    item: AttachmentsClearedV1, rule: UnreadFollowup | None, now: dt.datetime
) -> follow_ups.FollowUp | None:
    """The unread follow-up a case's template asks for (pure)."""
    if rule is None:
        return None
    due = now + dt.timedelta(hours=int(rule.after_hours))
    return follow_ups.FollowUp(item.case_id, item.clinic_hsa_id, str(rule.action), due)


def deliver(
    ctx: Context, planned: Sequence[Planned], known: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Reject], InboxUnavailable | None]:
    """Deliver each planned message not known to be delivered, under its key.

    Returns
    -------
    tuple
        The inbox id per case delivered (now or before), the cases the inbox refused, and the
        outage that stopped the chunk part-way (the rest is delivered on the retry).
    """
    delivered = dict(known)
    refused: dict[str, Reject] = {}
    for p in planned:
        case_id = p.item.case_id
        if case_id in delivered:
            continue
        try:
            delivered[case_id] = ctx.inbox.deliver(p.message)
        except InboxRefused as exc:
            refused[case_id] = Reject(case_id, Reason.INBOX_REFUSED, str(exc))
        except InboxUnavailable as exc:
            return delivered, refused, exc
    return delivered, refused, None


def decisions_for(
    planned: Sequence[Planned],
    delivered: Mapping[str, str],
    refused: Mapping[str, Reject],
    now: dt.datetime,
) -> list[Decision]:
    """``delivered`` for each case in the inbox, the rejection of each refused (pure)."""
    decisions: list[Decision] = []
    for p in planned:
        case_id = p.item.case_id
        if case_id in refused:
            decisions.append(refused[case_id])
        elif case_id in delivered:
            values = {"inbox_message_id": delivered[case_id], "delivered_at": now}
            decisions.append(Advance(case_id, (Transition(case_id, CaseState.DELIVERED, values),)))
    return decisions


def record_intent(conn: sa.Connection, planned: Sequence[Planned]) -> dict[str, str]:
    """Step 1: the delivery key of each case; return the cases delivered before (their
    inbox ids), which a redelivered chunk does not deliver again."""
    return cases.record_intent(conn, {p.item.case_id: p.message.key for p in planned})


def queued_records(planned: Sequence[Planned], holding: set[str]) -> list[NotificationQueuedV1]:
    """The ``NotificationQueued`` records of the cases delivered (pure)."""
    return [
        NotificationQueuedV1(
            case_id=p.item.case_id,
            clinic_hsa_id=p.item.clinic_hsa_id,
            priority=p.item.priority,
            batch_id=p.item.batch_id,
            key=row.key,
            channel=row.channel,
            round=row.round,
        )
        for p in planned
        if p.item.case_id in holding
        for row in p.notifications
        if row.address
    ]


def process(parsed: Parsed, ctx: Context) -> None:
    """Record the intent, deliver, record delivered with the notifications; emit their ids."""
    items = [item for item in parsed.items if isinstance(item, AttachmentsClearedV1)]
    now = ctx.now()
    accounts = ctx.directory.lookup_many(sorted({item.personnummer for item in items}))
    quiet = QuietHours.parse(ctx.settings.sms_quiet_hours, ctx.settings.timezone)
    sms_due_at = quiet.ends_at(now) if quiet is not None else None
    planned = plan(items, accounts, sms_due_at=sms_due_at)
    with ctx.engine.begin() as conn:
        known = record_intent(conn, planned)
    delivered, refused, outage = deliver(ctx, planned, known)
    decisions = decisions_for(planned, delivered, refused, now)
    by_case = {p.item.case_id: p for p in planned}
    plans: list[follow_ups.FollowUp] = []
    for p in planned:
        template = ctx.templates.get(p.item.template_id, p.item.template_version)
        follow_up = follow_up_for(p.item, template.unread_followup if template else None, now)
        if follow_up is not None:
            plans.append(follow_up)
    holding: set[str] = set()

    def in_the_same_transaction(conn: sa.Connection, moved: set[str]) -> None:
        holding.update(c for c in moved if c in delivered)
        rows = [row for c in sorted(holding) for row in by_case[c].notifications]
        notifications.write_queued(conn, rows, refused=Reason.NOTIFICATION_ADDRESS_MISSING)
        follow_ups.schedule(conn, [f for f in plans if f.case_id in holding])

    settle(
        ctx,
        stage=STAGE,
        decisions=decisions,
        correlation_id=parsed.envelope.correlation_id,
        within=in_the_same_transaction,
    )
    records = queued_records(planned, holding)
    now_due = [r for r in records if r.channel != "sms" or sms_due_at is None]
    later = [r for r in records if r.channel == "sms" and sms_due_at is not None]
    emit(ctx, now_due, correlation_id=parsed.envelope.correlation_id)
    if later and sms_due_at is not None:
        delay_ms = max(0, int((sms_due_at - ctx.now()).total_seconds() * 1000))
        emit(ctx, later, correlation_id=parsed.envelope.correlation_id, delay_ms=delay_ms)
        log.info("sms wait for the end of quiet hours", notifications=len(later))
    log.info("chunk delivered", cases=len(items), delivered=len(holding), refused=len(refused))
    if outage is not None:
        raise outage
