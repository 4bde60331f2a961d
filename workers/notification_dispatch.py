"""Stage 4, notification dispatch: deliver to the inbox, then tell the resident it is there.

Consumes ``AttachmentsCleared``; records ``delivered`` and ``notified`` (or rejects the case when
the inbox refuses it). The notification text is one fixed text per deployment
(``Settings.notification_text``, refused at start-up if it has placeholders): no health
information, no clinic name.

Exactly one notification per case, channel and round, under redelivery and crashes: each has an
idempotency key, and the ledger (``workers.store.notifications``) records it *pending* before the
provider call and *sent* after. A pending row found by a later attempt is "in doubt":

- SMS: the gateway is asked by key (``lookup``); found, it is recorded as sent; not found, it
  is sent (with the same key, which the gateway also deduplicates on).
- E-mail: SMTP cannot be asked. Policy: at most once. The send is recorded ``unconfirmed``
  (``notification-in-doubt``) and not sent again: a second identical e-mail is a worse failure
  than a missing one, because the message is in the inbox all the same and the template's
  unread follow-up reminds the resident. The window is small: pending is written only just
  before the SMTP session, and failures SMTP reports (4xx, refused connections) are recorded as
  safe to retry.

Transient failures (timeouts, 5xx, 429) raise: the chunk is split into single cases and dramatiq
retries each with backoff, honouring ``Retry-After``. Permanent ones are recorded with a reason
code. Sends wait for the channel's rate limit (shared through Redis when configured). SMS in
quiet hours are deferred: the case comes back to this queue when the quiet period ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dramatiq

from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.registry import Parsed, envelope_for
from workers.adapters.account_directory import Account
from workers.adapters.inbox import InboxMessage, InboxRefused
from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.queues import queue_name
from workers.quiet_hours import QuietHours
from workers.rate_limit import RateLimitExceeded
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, Reject, settle
from workers.store import cases, follow_ups, notifications
from workers.store.cases import Transition

STAGE = "notification-dispatch"
EMAIL_SUBJECT = "Nytt meddelande på 1177"
"""The subject of every e-mail notification: like the text, fixed and content-free."""

log = get_logger(__name__)


class Resume(StrEnum):
    """What a notification's earlier attempt means for this one."""

    SENT = "sent"
    """Sent before: nothing to do."""
    NEVER = "never"
    """Refused for good, or settled as in doubt: never to be sent."""
    ASK_PROVIDER = "ask-provider"
    """In doubt, and the provider can be asked by key."""
    GIVE_UP_IN_DOUBT = "give-up-in-doubt"
    """In doubt, and the provider cannot be asked (SMTP): at most once, so not sent again."""
    SEND = "send"
    """The provider certainly did not take it: send."""


LOOKUP_CHANNELS = frozenset({"sms"})
"""Channels whose provider can be asked about an idempotency key."""


def resume_step(status: str, channel: str) -> Resume:
    """The policy for a notification found in the ledger with ``status`` (pure)."""
    if status == notifications.SENT:
        return Resume.SENT
    if status in {notifications.REFUSED, notifications.UNCONFIRMED}:
        return Resume.NEVER
    if status == notifications.PENDING:
        return Resume.ASK_PROVIDER if channel in LOOKUP_CHANNELS else Resume.GIVE_UP_IN_DOUBT
    return Resume.SEND


def notify_once(
    ctx: Context, *, case_id: str, channel: str, address: str | None, round_: int = 1
) -> bool:
    """Send one notification at most once (see the module docstring); True if it is sent.

    Raises
    ------
    dramatiq.Retry, NotifierUnavailable
        A transient failure: the message is retried later.
    """
    key = notifications.key_for(case_id, channel, round_)
    with ctx.engine.begin() as conn:
        found = notifications.claim(conn, key, case_id, channel, round_)
    if found is not None:
        resumed = _resume(ctx, found, channel)
        if resumed is not None:
            return resumed
    if not address:
        with ctx.engine.begin() as conn:
            notifications.mark_refused(
                conn, key, Reason.NOTIFICATION_ADDRESS_MISSING, f"no {channel} address"
            )
        return False
    try:
        ctx.rate_limits.acquire(channel)
    except RateLimitExceeded as exc:
        with ctx.engine.begin() as conn:
            notifications.mark_retry(conn, key, str(exc))
        raise NotifierUnavailable(str(exc)) from exc
    try:
        if channel == "sms":
            ref = ctx.sms.send(to=address, text=ctx.settings.notification_text, idempotency_key=key)
        else:
            ref = ctx.email.send(
                to=address,
                subject=EMAIL_SUBJECT,
                text=ctx.settings.notification_text,
                idempotency_key=key,
            )
    except NotificationRefused as exc:
        with ctx.engine.begin() as conn:
            notifications.mark_refused(conn, key, exc.reason, str(exc))
        log.info("notification refused", case_id=case_id, channel=channel, reason=exc.reason)
        return False
    except NotifierUnavailable as exc:
        if not exc.maybe_accepted:
            with ctx.engine.begin() as conn:
                notifications.mark_retry(conn, key, str(exc))
        log.warning("notifier unavailable", case_id=case_id, channel=channel, error=str(exc))
        if exc.retry_after is not None:
            raise dramatiq.Retry(str(exc), delay=int(exc.retry_after * 1000)) from exc
        raise
    with ctx.engine.begin() as conn:
        notifications.mark_sent(conn, key, ref)
    return True


def _resume(ctx: Context, found: notifications.Entry, channel: str) -> bool | None:
    """Carry out ``resume_step``: True sent, False never to be sent, None send now."""
    step = resume_step(found.status, channel)
    if step in {Resume.SENT, Resume.NEVER}:
        return step == Resume.SENT
    if step == Resume.GIVE_UP_IN_DOUBT:
        with ctx.engine.begin() as conn:
            notifications.mark_unconfirmed(
                conn,
                found.key,
                Reason.NOTIFICATION_IN_DOUBT,
                "smtp cannot be asked; not sent again",
            )
        log.warning("in-doubt e-mail not sent again", case_id=found.case_id)
        return False
    if step == Resume.ASK_PROVIDER:
        ref = ctx.sms.lookup(found.key)
        if ref is not None:
            with ctx.engine.begin() as conn:
                notifications.mark_sent(conn, found.key, ref)
            log.info("in-doubt sms found at the gateway", case_id=found.case_id)
            return True
    with ctx.engine.begin() as conn:
        notifications.mark_pending_again(conn, found.key)
    return None


@dataclass(frozen=True)
class Wanted:
    """One notification a chunk asks for."""

    case_id: str
    channel: str
    address: str | None

    @property
    def key(self) -> str:
        """Its idempotency key (first round)."""
        return notifications.key_for(self.case_id, self.channel)


def notify_chunk(ctx: Context, wanted: Sequence[Wanted]) -> dict[str, list[str]]:
    """Send a chunk's notifications, each at most once; return the channels sent per case.

    The same protocol as ``notify_once``, with the ledger written per group (``ledger_groups``):
    one commit writes the previous group's marks and claims (pending) the next group, then the
    group's provider calls are made. A crash leaves one group pending, in doubt. Its SMS are
    settled by asking the gateway, so a group may hold many; an e-mail cannot be asked about
    (at most once: in doubt, it is never sent again), so a group holds at most one e-mail and
    calls it first: an e-mail left in doubt was always being sent, exactly as with one commit
    per notification.
    """
    sent: dict[str, list[str]] = {}
    marks = notifications.LedgerMarks(ctx.engine)
    try:
        for group in ledger_groups(wanted, ctx.settings.ledger_group):
            with ctx.engine.begin() as conn:
                marks.write(conn)
                found = notifications.claim_many(
                    conn, [(w.key, w.case_id, w.channel, 1) for w in group]
                )
            for w in group:
                entry = found.get(w.key)
                if entry is not None:
                    resumed = _resume(ctx, entry, w.channel)
                    if resumed is not None:
                        if resumed:
                            sent.setdefault(w.case_id, []).append(w.channel)
                        continue
                if _send_claimed(ctx, w, marks):
                    sent.setdefault(w.case_id, []).append(w.channel)
    finally:
        marks.flush()
    return sent


def ledger_groups(wanted: Sequence[Wanted], size: int) -> list[list[Wanted]]:
    """Split a chunk's notifications into ledger groups of at most ``size``: each e-mail opens
    a group of its own (first), SMS fill the groups up (pure)."""
    size = max(1, size)
    sms = [w for w in wanted if w.channel in LOOKUP_CHANNELS]
    others = [w for w in wanted if w.channel not in LOOKUP_CHANNELS]
    groups: list[list[Wanted]] = []
    for first in others:
        take, sms = sms[: size - 1], sms[size - 1 :]
        groups.append([first, *take])
    groups.extend(sms[start : start + size] for start in range(0, len(sms), size))
    return groups


def _send_claimed(ctx: Context, w: Wanted, marks: notifications.LedgerMarks) -> bool:
    """Call the provider for a claimed notification; record what happened in ``marks``."""
    if not w.address:
        marks.refused(w.key, Reason.NOTIFICATION_ADDRESS_MISSING, f"no {w.channel} address")
        return False
    try:
        ctx.rate_limits.acquire(w.channel)
    except RateLimitExceeded as exc:
        marks.retry(w.key, str(exc))
        raise NotifierUnavailable(str(exc)) from exc
    text = ctx.settings.notification_text
    try:
        if w.channel == "sms":
            ref = ctx.sms.send(to=w.address, text=text, idempotency_key=w.key)
        else:
            ref = ctx.email.send(
                to=w.address, subject=EMAIL_SUBJECT, text=text, idempotency_key=w.key
            )
    except NotificationRefused as exc:
        marks.refused(w.key, exc.reason, str(exc))
        log.info("notification refused", case_id=w.case_id, channel=w.channel, reason=exc.reason)
        return False
    except NotifierUnavailable as exc:
        if not exc.maybe_accepted:
            marks.retry(w.key, str(exc))
        log.warning("notifier unavailable", case_id=w.case_id, channel=w.channel, error=str(exc))
        if exc.retry_after is not None:
            raise dramatiq.Retry(str(exc), delay=int(exc.retry_after * 1000)) from exc
        raise
    marks.sent(w.key, ref)
    return True


def address_of(account: Account | None, channel: str) -> str | None:
    """The resident's number or address for ``channel``."""
    if account is None:
        return None
    return account.phone if channel == "sms" else account.email


def handle(
    ctx: Context, items: Sequence[AttachmentsClearedV1]
) -> tuple[list[Decision], dict[str, dt.datetime]]:
    """Deliver and notify each case of the chunk.

    Returns
    -------
    tuple
        One decision per case, and the cases whose SMS wait for the end of quiet hours.
    """
    accounts = ctx.directory.lookup_many(sorted({item.personnummer for item in items}))
    quiet = QuietHours.parse(ctx.settings.sms_quiet_hours, ctx.settings.timezone)
    quiet_until = quiet.ends_at(ctx.now()) if quiet is not None else None
    deferred: dict[str, dt.datetime] = {}
    delivered: dict[str, tuple[str, dt.datetime]] = {}
    refused: dict[str, Reject] = {}
    wanted: list[Wanted] = []
    with ctx.engine.connect() as conn:
        known = cases.delivered_before(conn, [item.case_id for item in items])
    for item in items:
        if item.case_id in known:  # a redelivered chunk: the message is in the inbox already
            delivered[item.case_id] = (known[item.case_id], ctx.now())
            continue
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
            refused[item.case_id] = Reject(item.case_id, Reason.INBOX_REFUSED, str(exc))
            continue
        delivered[item.case_id] = (inbox_id, ctx.now())
    with ctx.engine.begin() as conn:
        cases.record_inbox_ids(
            conn, {c: inbox_id for c, (inbox_id, _) in delivered.items() if c not in known}
        )
    for item in items:
        if item.case_id not in delivered:
            continue
        account = accounts.get(item.personnummer)
        for channel in item.channels:
            if channel == "sms" and quiet_until is not None:
                deferred[item.case_id] = quiet_until
                continue
            wanted.append(Wanted(item.case_id, channel, address_of(account, channel)))
    sent = notify_chunk(ctx, wanted)
    decisions: list[Decision] = []
    for item in items:
        if item.case_id in refused:
            decisions.append(refused[item.case_id])
            continue
        inbox_id, at = delivered[item.case_id]
        transitions = [
            Transition(
                item.case_id,
                CaseState.DELIVERED,
                {"inbox_message_id": inbox_id, "delivered_at": at},
            )
        ]
        done = sent.get(item.case_id, [])
        channels = [c for c in item.channels if c in done]  # the case's own order
        if channels:
            transitions.append(
                Transition(
                    item.case_id,
                    CaseState.NOTIFIED,
                    {"notified_at": at, "channels": ",".join(channels)},
                )
            )
        decisions.append(Advance(item.case_id, tuple(transitions)))
    return decisions, deferred


def follow_ups_for(
    ctx: Context, items: Sequence[AttachmentsClearedV1]
) -> list[follow_ups.FollowUp]:
    """The unread follow-ups the cases' templates ask for (``Template.unread_followup``)."""
    planned: list[follow_ups.FollowUp] = []
    now = ctx.now()
    for item in items:
        template = ctx.templates.get(item.template_id, item.template_version)
        rule = template.unread_followup if template is not None else None
        if rule is None:
            continue
        planned.append(
            follow_ups.FollowUp(
                item.case_id,
                item.clinic_hsa_id,
                str(rule.action),
                now + dt.timedelta(hours=int(rule.after_hours)),
            )
        )
    return planned


def defer(
    ctx: Context,
    items: Sequence[AttachmentsClearedV1],
    until: dict[str, dt.datetime],
    correlation_id: str,
) -> None:
    """Put cases whose SMS wait for the morning back on this queue, due when quiet hours end."""
    route = ROUTES["AttachmentsCleared"]
    for item in items:
        when = until.get(item.case_id)
        if when is None:
            continue
        delay_ms = max(0, int((when - ctx.now()).total_seconds() * 1000))
        envelope = envelope_for([item], correlation_id=correlation_id)
        ctx.broker.enqueue(
            dramatiq.Message(
                queue_name=queue_name(route.queue, ctx.settings.queue_prefix),
                actor_name=route.actor_name,
                args=(envelope.model_dump(mode="json"),),
                kwargs={},
                options={},
            ),
            delay=delay_ms,
        )
    if until:
        log.info("sms deferred to the end of quiet hours", cases=len(until))


def process(parsed: Parsed, ctx: Context) -> None:
    """Deliver and notify the chunk, record it; defer night-time SMS."""
    items = [item for item in parsed.items if isinstance(item, AttachmentsClearedV1)]
    decisions, deferred = handle(ctx, items)
    delivered = {d.case_id for d in decisions if isinstance(d, Advance)}
    planned = [f for f in follow_ups_for(ctx, items) if f.case_id in delivered]
    if planned:
        with ctx.engine.begin() as conn:
            follow_ups.schedule(conn, planned)
    settle(ctx, stage=STAGE, decisions=decisions, correlation_id=parsed.envelope.correlation_id)
    defer(ctx, items, deferred, parsed.envelope.correlation_id)
    log.info("chunk dispatched", cases=len(items), deferred=len(deferred))
