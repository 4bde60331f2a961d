"""Stage 4, notification dispatch: deliver to the inbox, then tell the resident it is there.

Consumes ``AttachmentsCleared``; records ``NotificationDispatched`` (delivered, notified) or
rejects the case. The notification text is fixed per deployment and carries no health
information.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.registry import Parsed
from workers.adapters.account_directory import Account
from workers.adapters.inbox import InboxMessage, InboxRefused
from workers.adapters.notifiers import NotificationRefused
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.reasons import Reason
from workers.stage import Advance, Decision, Reject, settle
from workers.store import notifications
from workers.store.cases import Transition, utcnow

STAGE = "notification-dispatch"
EMAIL_SUBJECT = "Nytt meddelande på 1177"

log = get_logger(__name__)


def notify(ctx: Context, item: AttachmentsClearedV1, account: Account | None) -> list[str]:
    """Notify one case on each of its channels once; return the channels notified."""
    done: list[str] = []
    with ctx.engine.connect() as conn:
        already = notifications.sent_channels(conn, [item.case_id])
    for channel in item.channels:
        if (item.case_id, channel) in already:
            done.append(channel)
            continue
        key = f"{item.case_id}:{channel}"
        to = (account.phone if channel == "sms" else account.email) if account else None
        if not to:
            with ctx.engine.begin() as conn:
                notifications.mark(
                    conn, item.case_id, channel, notifications.REFUSED, reason="no-address"
                )
            continue
        try:
            if channel == "sms":
                ref = ctx.sms.send(to=to, text=ctx.settings.notification_text, idempotency_key=key)
            else:
                ref = ctx.email.send(
                    to=to,
                    subject=EMAIL_SUBJECT,
                    text=ctx.settings.notification_text,
                    idempotency_key=key,
                )
        except NotificationRefused as exc:
            with ctx.engine.begin() as conn:
                notifications.mark(
                    conn, item.case_id, channel, notifications.REFUSED, reason=str(exc)[:64]
                )
            continue
        with ctx.engine.begin() as conn:
            notifications.mark(conn, item.case_id, channel, notifications.SENT, provider_ref=ref)
        done.append(channel)
    return done


def handle(ctx: Context, items: Sequence[AttachmentsClearedV1]) -> list[Decision]:
    """Deliver and notify each case of the chunk."""
    accounts = ctx.directory.lookup_many(sorted({item.personnummer for item in items}))
    decisions: list[Decision] = []
    for item in items:
        message = InboxMessage(
            case_id=item.case_id,
            personnummer=item.personnummer,
            subject=item.subject,
            body=item.body,
            signature=item.signature,
            sent_on=item.sent_on,
            answerable=item.answerable,
            attachment_sha256=tuple(a.sha256 for a in item.attachments),
        )
        try:
            inbox_id = ctx.inbox.deliver(message)
        except InboxRefused as exc:
            decisions.append(Reject(item.case_id, Reason.INBOX_REFUSED, str(exc)))
            continue
        delivered = Transition(
            item.case_id,
            CaseState.DELIVERED,
            {"inbox_message_id": inbox_id, "delivered_at": utcnow()},
        )
        channels = notify(ctx, item, accounts.get(item.personnummer))
        transitions = [delivered]
        if channels:
            transitions.append(
                Transition(
                    item.case_id,
                    CaseState.NOTIFIED,
                    {"notified_at": utcnow(), "channels": ",".join(channels)},
                )
            )
        decisions.append(Advance(item.case_id, tuple(transitions)))
    return decisions


def process(parsed: Parsed, ctx: Context) -> None:
    """Deliver and notify the chunk, record it."""
    items = [item for item in parsed.items if isinstance(item, AttachmentsClearedV1)]
    settle(
        ctx,
        stage=STAGE,
        decisions=handle(ctx, items),
        correlation_id=parsed.envelope.correlation_id,
    )
    log.info("chunk dispatched", cases=len(items))
