"""Stage 5, notification sending: tell the resident a message is waiting, once per channel.

Consumes ``NotificationQueued`` (ids of rows the inbox-delivery stage wrote to the ledger, the
outbox); records ``notified`` for cases with a notification sent. This is the ONE send
protocol: the first notification of a case, an unread follow-up's second round and a
quiet-hours SMS due in the morning all go through ``send_notifications``.

The protocol, per notification (``workers.store.notifications``):

1. a due row (queued, or retry) is claimed *pending* in a transaction of its own, just before
   the provider call, together with the rest of what is sent at once: a batch (up to
   ``OMVANT_SMS_BATCH_SIZE`` SMS in one gateway request, or ``OMVANT_EMAIL_BATCH_SIZE``
   e-mails in one e-mail API request, within the rate limit's turns taken before the claim),
   or a group of SMTP e-mails sent in parallel (``OMVANT_SEND_CONCURRENCY``); nothing is
   claimed that is not in flight;
2. the provider is called with each notification's idempotency key (a batch carries one per
   recipient and is answered per recipient);
3. the answer is recorded at once, before any other provider call: *sent* (durable as soon as
   the provider took it), *refused* (permanent, with a reason code) or *retry* (it certainly
   did not take it); answers that came in together share one transaction, and a batch's or
   group's last answers share it with the claim of the next one. A timeout after the request
   went out leaves it pending: in doubt (every recipient of a batch).

A pending row found later than ``OMVANT_NOTIFICATION_IN_FLIGHT_SECONDS`` after its claim is in
doubt (a crash between 2 and 3), never just dropped: a provider that can be asked by key
(the SMS gateway, ``lookup``) is asked; found, it is recorded sent; not found, it is sent with
the same key. SMTP cannot be asked: if another channel of the same notification round was
sent, the resident has a notice and the e-mail is recorded ``unconfirmed``
(``notified-otherwise``), not sent again; else by the policy ``OMVANT_EMAIL_IN_DOUBT``
(default ``resend``) it is sent once more after ``OMVANT_EMAIL_RESEND_AFTER_SECONDS`` with the
same Message-ID, so a duplicate is recognisable and the resident is never left with none; a
second doubt about the same e-mail is not sent a third time. ``at-most-once`` records it
``unconfirmed`` instead. Each settlement is recorded in ``resolution``. A crash leaves in doubt
at most the notifications in flight at that moment: one batch or one group of SMTP e-mails
per worker thread. Only providers that can be asked by key are sent batches.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum

import dramatiq
import sqlalchemy as sa

from contracts import notification_queued
from contracts.notification_queued import NotificationQueuedV1
from contracts.registry import Parsed
from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable, Recipient
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.rate_limit import RateLimitExceeded
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, emit, settle
from workers.store import cases, notifications
from workers.store.cases import Transition
from workers.store.engine import reads
from workers.store.notifications import Entry, Resolution

STAGE = ROUTES[notification_queued.NAME].stage
EMAIL_SUBJECT = "Nytt meddelande på 1177"
"""The subject of every e-mail notification: like the text, fixed and content-free."""
CHANNEL_ORDER = {"email": 0, "sms": 1}
RESEND = "resend"

log = get_logger(__name__)


class Step(StrEnum):
    """What to do with one notification found in the ledger."""

    DONE = "done"
    """Sent, refused or settled before: nothing to do."""
    NOT_YET = "not-yet"
    """Not due (quiet hours, a resend's delay), or claimed so recently it may be in flight."""
    SEND = "send"
    """Due and never taken by the provider: claim and send."""
    ASK_PROVIDER = "ask-provider"
    """In doubt, and the provider can be asked by key."""
    RESEND_LATER = "resend-later"
    """In doubt, the provider cannot be asked: send once more, later, with the same key."""
    GIVE_UP = "give-up"
    """In doubt, cannot be asked, and sent once more already (or the policy is at most once)."""
    NOTIFIED_OTHERWISE = "notified-otherwise"
    """In doubt, cannot be asked, and another channel of the same round was sent: the
    resident has a notice, so it is not sent again (no duplicate risked)."""


@dataclass(frozen=True)
class Policy:
    """The settings ``next_step`` decides by."""

    now: dt.datetime
    in_flight_seconds: float
    lookup_channels: frozenset[str]
    email_in_doubt: str = RESEND

    @property
    def in_flight_since(self) -> dt.datetime:
        """A claim newer than this may still be in flight."""
        return self.now - dt.timedelta(seconds=self.in_flight_seconds)


def next_step(entry: Entry, policy: Policy, *, notified_otherwise: bool = False) -> Step:
    """The protocol's decision for one ledger row (pure); ``notified_otherwise``: another
    channel of the same case and round was sent."""
    if entry.status in notifications.SETTLED:
        return Step.DONE
    if entry.status in notifications.SENDABLE:
        due = entry.due_at is None or entry.due_at <= policy.now
        return Step.SEND if due else Step.NOT_YET
    if entry.updated_at >= policy.in_flight_since:
        return Step.NOT_YET
    if entry.channel in policy.lookup_channels:
        return Step.ASK_PROVIDER
    return _cannot_ask(entry, policy, notified_otherwise=notified_otherwise)


def _cannot_ask(entry: Entry, policy: Policy, *, notified_otherwise: bool) -> Step:
    """The decision for an in-doubt row the provider cannot be asked about (pure)."""
    if notified_otherwise:
        return Step.NOTIFIED_OTHERWISE
    if policy.email_in_doubt == RESEND and entry.resolution is None:
        return Step.RESEND_LATER
    return Step.GIVE_UP


@dataclass
class Outcome:
    """What one call of ``send_notifications`` did."""

    sent: dict[str, list[str]] = field(default_factory=dict)
    """Case -> channels sent now or before (for the ``notified`` transition)."""
    waiting: dict[str, dt.datetime] = field(default_factory=dict)
    """Key -> when to look at it again (not due, or perhaps in flight)."""
    counts: dict[str, int] = field(default_factory=dict)
    failure: BaseException | None = None
    """The first transient failure (recorded; the caller retries later), if any."""

    def count(self, what: str) -> None:
        """Count one outcome."""
        self.counts[what] = self.counts.get(what, 0) + 1


def policy_for(ctx: Context) -> Policy:
    """The protocol's settings in this process."""
    channels = {"sms"} | ({"email"} if ctx.email.can_lookup else set())
    return Policy(
        now=ctx.now(),
        in_flight_seconds=ctx.settings.notification_in_flight_seconds,
        lookup_channels=frozenset(channels),
        email_in_doubt=ctx.settings.email_in_doubt,
    )


def send_notifications(ctx: Context, keys: Sequence[str]) -> Outcome:
    """Send the ledger's notifications ``keys``, each at most once unless in doubt (then as the
    module docstring says), recording each answer at once. A transient failure does not stop
    the rest: it is returned in ``Outcome.failure`` (``dramatiq.Retry`` when a provider asked
    us to wait, ``NotifierUnavailable`` otherwise) for the caller to retry later."""
    outcome = Outcome()
    policy = policy_for(ctx)
    with reads(ctx.engine).connect() as conn:
        found = notifications.entries(conn, keys)
    to_send: list[Entry] = []
    cannot_ask: list[Entry] = []
    for key in keys:
        entry = found.get(key)
        if entry is None:
            outcome.count("unknown")
            continue
        step = next_step(entry, policy)
        if step == Step.DONE:
            if entry.status == notifications.SENT:
                outcome.sent.setdefault(entry.case_id, []).append(entry.channel)
            continue
        if step == Step.NOT_YET:
            outcome.waiting[key] = _look_again(entry, policy)
            continue
        if step == Step.SEND:
            to_send.append(entry)
            continue
        if step in _CANNOT_ASK:
            cannot_ask.append(entry)
            continue
        _settle_in_doubt(ctx, entry, step=step, policy=policy, outcome=outcome, to_send=to_send)
    outcome.failure = _send_claimed(ctx, to_send, outcome)
    if cannot_ask:  # after this chunk's sends: another channel of the round may be sent now
        with reads(ctx.engine).connect() as conn:
            sent_rounds = notifications.sent_rounds(conn, [e.case_id for e in cannot_ask])
        for entry in cannot_ask:
            others = sent_rounds.get((entry.case_id, entry.round), set()) - {entry.channel}
            step = next_step(entry, policy, notified_otherwise=bool(others))
            _settle_in_doubt(ctx, entry, step=step, policy=policy, outcome=outcome, to_send=to_send)
    return outcome


_CANNOT_ASK = frozenset({Step.RESEND_LATER, Step.GIVE_UP})
"""In doubt at a provider that cannot be asked: whether another channel was sent matters."""


def _look_again(entry: Entry, policy: Policy) -> dt.datetime:
    if entry.status in notifications.SENDABLE and entry.due_at is not None:
        return entry.due_at
    return entry.updated_at + dt.timedelta(seconds=policy.in_flight_seconds + 1)


def _settle_in_doubt(
    ctx: Context,
    entry: Entry,
    *,
    step: Step,
    policy: Policy,
    outcome: Outcome,
    to_send: list[Entry],
) -> None:
    """Resolve one in-doubt notification; record which way at once."""
    if step == Step.ASK_PROVIDER:
        sender = ctx.sms if entry.channel == "sms" else ctx.email
        ref = sender.lookup(entry.key)
        if ref is not None:
            with ctx.engine.begin() as conn:
                notifications.mark_sent(
                    conn, entry.key, ref, resolution=Resolution.FOUND_AT_PROVIDER
                )
            outcome.sent.setdefault(entry.case_id, []).append(entry.channel)
            outcome.count(Resolution.FOUND_AT_PROVIDER)
            log.info("in-doubt notification found at the provider", case_id=entry.case_id)
            return
        with ctx.engine.begin() as conn:
            taken = notifications.reclaim_in_doubt(
                conn, entry.key, policy.in_flight_since, resolution=Resolution.NOT_AT_PROVIDER
            )
        if taken:
            outcome.count(Resolution.NOT_AT_PROVIDER)
            to_send.append(entry)
        return
    if step == Step.RESEND_LATER:
        delay = dt.timedelta(seconds=ctx.settings.email_resend_after_seconds)
        with ctx.engine.begin() as conn:
            moved = notifications.requeue_in_doubt(
                conn, entry.key, policy.in_flight_since, due_at=policy.now + delay
            )
        if moved:
            outcome.waiting[entry.key] = policy.now + delay
            outcome.count(Resolution.RESENT_SAME_MESSAGE_ID)
            log.warning("in-doubt e-mail will be sent once more", case_id=entry.case_id)
        return
    otherwise = step == Step.NOTIFIED_OTHERWISE
    resolution = Resolution.NOTIFIED_OTHERWISE if otherwise else Resolution.NOT_SENT_AGAIN
    detail = "cannot be asked; notified on another channel" if otherwise else "cannot be asked"
    with ctx.engine.begin() as conn:
        notifications.mark_unconfirmed(
            conn,
            entry.key,
            Reason.NOTIFICATION_IN_DOUBT,
            f"{detail}; not sent again",
            resolution=resolution,
        )
    outcome.count(resolution)
    log.warning("in-doubt e-mail not sent again", case_id=entry.case_id, resolution=resolution)


_local = threading.local()


def _pool(size: int) -> ThreadPoolExecutor:
    """This worker thread's own senders (kept, so SMTP sessions are kept too)."""
    pool: ThreadPoolExecutor | None = getattr(_local, "pool", None)
    if pool is None or getattr(_local, "size", 0) != size:
        pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="omvant-send")
        _local.pool, _local.size = pool, size
    return pool


def _send_claimed(ctx: Context, to_send: list[Entry], outcome: Outcome) -> BaseException | None:
    """Claim and send ``to_send``: SMS, and e-mail through an API with a batch endpoint, in
    batches (one request each, ``batch_sizes``), then the rest in groups; return the first
    transient failure, after the whole chunk has been tried. A batch's answers are recorded
    in the transaction that claims what is sent next (nothing is called in between), or at
    once."""
    sizes = batch_sizes(ctx)
    failure: BaseException | None = None
    unrecorded: list[tuple[Entry, Answer]] = []
    grouped = [e for e in to_send if e.channel not in sizes]
    batched = [c for c in CHANNEL_ORDER if c in sizes and any(e.channel == c for e in to_send)]
    for index, channel in enumerate(batched):
        more = bool(grouped) or index + 1 < len(batched)
        entries = [e for e in to_send if e.channel == channel]
        problem, unrecorded = _send_batches(ctx, channel, entries, outcome, unrecorded, more=more)
        failure = failure or problem
    return _send_in_groups(ctx, grouped, outcome, unrecorded) or failure


def batch_sizes(ctx: Context) -> dict[str, int]:
    """The channels sent in batches in this process, and their batch size: SMS unless
    ``OMVANT_SMS_BATCH_SIZE`` is 1; e-mail when its sender has a batch call (an e-mail API,
    which can be asked by key) unless ``OMVANT_EMAIL_BATCH_SIZE`` is 1."""
    sizes = {"sms": ctx.settings.sms_batch_size}
    if ctx.email.can_batch and ctx.email.can_lookup:
        sizes["email"] = ctx.settings.email_batch_size
    return {channel: size for channel, size in sizes.items() if size > 1}


def _send_batches(
    ctx: Context,
    channel: str,
    to_send: list[Entry],
    outcome: Outcome,
    unrecorded: list[tuple[Entry, Answer]],
    *,
    more: bool,
) -> tuple[BaseException | None, list[tuple[Entry, Answer]]]:
    """Send one channel's notifications a batch at a time: take the batch's turns of the rate
    limit, claim it (with the answers before it, ``unrecorded``, in one transaction), send it
    in one provider request. Returns the first transient failure and the last batch's
    answers when ``more`` is sent after them (to be recorded with the next claim), else
    records them at once."""
    failure: BaseException | None = None
    remaining = to_send
    size = batch_sizes(ctx)[channel]
    while remaining:
        wanted = min(len(remaining), size)
        try:
            granted = ctx.rate_limits.take(channel, wanted, wait=False)
            if not granted:  # waiting: what the provider took is recorded first
                failure = _tally(outcome, unrecorded, _record(ctx, unrecorded)) or failure
                unrecorded = []
                granted = ctx.rate_limits.take(channel, wanted)
        except RateLimitExceeded as exc:  # the rest stay unclaimed (a reclaimed one: retry)
            answered = unrecorded + [(e, exc) for e in remaining]
            problem = _tally(outcome, answered, _record(ctx, answered))
            return failure or problem, []
        batch, remaining = remaining[:granted], remaining[granted:]
        reclaimed = [e for e in batch if e.status == notifications.PENDING]
        keys = [e.key for e in batch if e.status != notifications.PENDING]
        claimed, problems = _claim_recording(ctx, keys, ctx.now(), unrecorded)
        failure = _tally(outcome, unrecorded, problems) or failure
        mine = [e for e in batch if e.key in claimed] + reclaimed
        answers = _send_batch(ctx, channel, mine) if mine else []
        unrecorded = list(zip(mine, answers, strict=True))
        if not remaining and not more:
            failure = _tally(outcome, unrecorded, _record(ctx, unrecorded)) or failure
            unrecorded = []
    return failure, unrecorded


def _send_batch(ctx: Context, channel: str, mine: list[Entry]) -> list[Answer]:
    """One provider request for a claimed batch: each recipient's answer."""
    recipients = [Recipient(e.address or "", e.key) for e in mine]
    text = ctx.settings.notification_text
    if channel == "sms":
        return list(ctx.sms.send_batch(text=text, recipients=recipients))
    return list(ctx.email.send_batch(subject=EMAIL_SUBJECT, text=text, recipients=recipients))


def _send_in_groups(
    ctx: Context,
    to_send: list[Entry],
    outcome: Outcome,
    unrecorded: list[tuple[Entry, Answer]],
) -> BaseException | None:
    """Claim and send ``to_send`` a group at a time (a group is in flight together); return
    the first transient failure, after the whole chunk has been tried. The provider calls of a
    group run in parallel; this thread records each answer the moment it comes, so no mark
    waits for another provider call and the worker thread keeps one database connection. The
    answers before (``unrecorded``) and a group's last answers are recorded in the transaction
    that claims the next group (nothing is called in between): one commit per group when the
    provider answers at once."""
    size = max(1, ctx.settings.send_concurrency)
    failure: BaseException | None = None
    if not to_send:
        return _tally(outcome, unrecorded, _record(ctx, unrecorded))
    for start in range(0, len(to_send), size):
        group = to_send[start : start + size]
        reclaimed = [e for e in group if e.status == notifications.PENDING]
        keys = [e.key for e in group if e.status != notifications.PENDING]
        claimed, problems = _claim_recording(ctx, keys, ctx.now(), unrecorded)
        failure = _tally(outcome, unrecorded, problems) or failure
        unrecorded = []
        mine = [e for e in group if e.key in claimed] + reclaimed
        for answered, more in _answers(ctx, mine, size):
            if more or start + size >= len(to_send):
                failure = _tally(outcome, answered, _record(ctx, answered)) or failure
            else:
                unrecorded = answered  # the group is in: recorded with the next claim
    return failure


def _tally(
    outcome: Outcome, answered: Sequence[tuple[Entry, Answer]], problems: list[BaseException | None]
) -> BaseException | None:
    """Count recorded answers; return the first transient failure among them."""
    failure: BaseException | None = None
    for (entry, _), problem in zip(answered, problems, strict=True):
        if problem is None:
            outcome.sent.setdefault(entry.case_id, []).append(entry.channel)
            outcome.count("sent")
        elif isinstance(problem, NotificationRefused):
            outcome.count("refused")
        else:
            outcome.count("retry")
            failure = failure or problem
    return failure


def _claim_recording(
    ctx: Context, keys: list[str], now: dt.datetime, answered: Sequence[tuple[Entry, Answer]]
) -> tuple[set[str], list[BaseException | None]]:
    """Record the answers of the group before (if any) and claim ``keys``, in one
    transaction; the claimed keys and each answer's problem (as ``_record``)."""
    problems, write = _recording(answered)
    claimed: set[str] = set()
    if write is None:
        with ctx.engine.begin() as conn:
            claimed = notifications.claim(conn, keys, now)
        return claimed, problems
    taken = [(e.key, a) for e, a in answered if isinstance(a, str)]

    def record_and_claim(conn: sa.Connection) -> None:
        claimed.clear()
        if len(taken) == len(answered):  # all sent: one statement (the common case)
            claimed.update(notifications.mark_sent_and_claim(conn, taken, keys, now))
            return
        write(conn)
        claimed.update(notifications.claim(conn, keys, now))

    _durably(ctx, record_and_claim)
    _log_answers(answered, problems)
    return claimed, problems


def _answers(
    ctx: Context, mine: list[Entry], size: int
) -> Iterator[tuple[list[tuple[Entry, Answer]], bool]]:
    """The providers' answers for a claimed group, as they come: each time, every answer that
    has come in (one, or several that came together), and whether any call is still out (then
    they must be recorded before waiting for it)."""
    if len(mine) <= 1 or size == 1:
        for index, entry in enumerate(mine):
            yield [(entry, _call_provider(ctx, entry))], index + 1 < len(mine)
        return
    pending = {_pool(size).submit(_call_provider, ctx, e): e for e in mine}
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        yield [(pending.pop(f), f.result()) for f in done], bool(pending)


Answer = str | NotificationRefused | NotifierUnavailable | RateLimitExceeded
"""A provider's answer: its reference (taken), or why not."""


def _call_provider(ctx: Context, entry: Entry) -> Answer:
    """Wait for the channel's rate limit and call the provider for one claimed notification
    (no database work: that is ``_record``'s)."""
    try:
        ctx.rate_limits.acquire(entry.channel)
    except RateLimitExceeded as exc:
        return exc
    text = ctx.settings.notification_text
    address = entry.address or ""
    try:
        if entry.channel == "sms":
            return ctx.sms.send(to=address, text=text, idempotency_key=entry.key)
        return ctx.email.send(
            to=address, subject=EMAIL_SUBJECT, text=text, idempotency_key=entry.key
        )
    except (NotificationRefused, NotifierUnavailable) as exc:
        return exc


def _durably(ctx: Context, write: Callable[[sa.Connection], None]) -> None:
    """Write one mark in a transaction of its own, trying again while the database is away
    (a restart takes seconds) for up to ``OMVANT_MARK_RETRY_SECONDS``, before any other
    provider call: what a provider took is recorded rather than left in doubt.

    Raises
    ------
    sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError
        The database stayed away: the notification stays pending, in doubt, and is resolved
        by the next attempt.
    """
    deadline = time.monotonic() + ctx.settings.mark_retry_seconds
    wait = 0.2
    while True:
        try:
            with ctx.engine.begin() as conn:
                write(conn)
            return
        except (sa.exc.OperationalError, sa.exc.InterfaceError):
            if time.monotonic() + wait > deadline:
                raise
            log.warning("ledger write failed; trying again", seconds=wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def _record(ctx: Context, answered: Sequence[tuple[Entry, Answer]]) -> list[BaseException | None]:
    """Record provider answers at once, those that came in together in one transaction; per
    answer None when sent, else the problem (refused: for good; other: to retry, or in doubt
    when the provider may have taken it)."""
    problems, write = _recording(answered)
    if write is not None:
        _durably(ctx, write)
    _log_answers(answered, problems)
    return problems


def _recording(
    answered: Sequence[tuple[Entry, Answer]],
) -> tuple[list[BaseException | None], Callable[[sa.Connection], None] | None]:
    """Each answer's problem (None: sent), and the one ledger write that records them all
    (None when there is nothing to write): the sent ones in one statement, the ones to retry
    in one per reason, each refused one with its own reason. A timeout after the request went
    out writes nothing: in doubt."""
    taken: list[tuple[str, str]] = []
    retried: list[tuple[str, str]] = []
    refused: list[tuple[str, str, str]] = []
    problems: list[BaseException | None] = []
    for entry, answer in answered:
        problems.append(_problem(answer))
        if isinstance(answer, str):
            taken.append((entry.key, answer))
        elif isinstance(answer, NotificationRefused):
            refused.append((entry.key, answer.reason, str(answer)))
        elif isinstance(answer, RateLimitExceeded) or not answer.maybe_accepted:
            retried.append((entry.key, str(answer)))
    if not taken and not retried and not refused:
        return problems, None

    def write_all(conn: sa.Connection) -> None:
        notifications.mark_sent_many(conn, taken)
        notifications.mark_retry_many(conn, retried)
        for key, reason, detail in refused:
            notifications.mark_refused(conn, key, reason, detail)

    return problems, write_all


def _log_answers(
    answered: Sequence[tuple[Entry, Answer]], problems: list[BaseException | None]
) -> None:
    logged: set[int] = set()  # a batch's one failure, logged once
    for (entry, answer), problem in zip(answered, problems, strict=True):
        if isinstance(answer, NotificationRefused):
            log.info("notification refused", case_id=entry.case_id, channel=entry.channel)
        elif (
            problem is not None
            and not isinstance(answer, RateLimitExceeded)
            and id(answer) not in logged
        ):
            logged.add(id(answer))
            log.warning("notifier unavailable", case_id=entry.case_id, channel=entry.channel)


def _problem(answer: Answer) -> BaseException | None:
    """What one answer means: None (sent), the refusal (for good), or the transient failure
    to retry the chunk for (``dramatiq.Retry`` when the provider said how long to wait)."""
    if isinstance(answer, str):
        return None
    if isinstance(answer, NotificationRefused):
        return answer
    if isinstance(answer, RateLimitExceeded):
        return NotifierUnavailable(str(answer))
    if answer.retry_after is not None:
        return dramatiq.Retry(str(answer), delay=int(answer.retry_after * 1000))
    return answer


def notified_decisions(
    sent: dict[str, list[str]],
    now: dt.datetime,
    case_ids: Iterable[str],
    order: dict[str, list[str]] | None = None,
) -> list[Advance]:
    """The ``notified`` transition of each case with a notification sent (pure); its channels
    in the case's own order (``order``: as its notifications came), then any other sent."""
    decisions: list[Advance] = []
    for case_id in dict.fromkeys(case_ids):
        done = set(sent.get(case_id, []))
        own = [c for c in dict.fromkeys((order or {}).get(case_id, [])) if c in done]
        rest = sorted(done - set(own), key=lambda c: CHANNEL_ORDER.get(c, 9))
        channels = own + rest
        if channels:
            values = {"notified_at": now, "channels": ",".join(channels)}
            decisions.append(Advance(case_id, (Transition(case_id, CaseState.NOTIFIED, values),)))
    return decisions


def process(parsed: Parsed, ctx: Context) -> None:
    """Send the chunk's notifications; record ``notified``; look again at those not yet due;
    then raise a transient failure, so dramatiq retries the chunk (what was sent is skipped)."""
    items = [item for item in parsed.items if isinstance(item, NotificationQueuedV1)]
    outcome = send_notifications(ctx, [item.key for item in items])
    case_ids = [item.case_id for item in items]
    with reads(ctx.engine).connect() as conn:
        sent = notifications.sent_channels(conn, case_ids)
    order: dict[str, list[str]] = {}
    for item in items:
        order.setdefault(item.case_id, []).append(item.channel)
    decisions = notified_decisions(sent, ctx.now(), case_ids, order)
    correlation_id = parsed.envelope.correlation_id
    settle(
        ctx,
        stage=STAGE,
        decisions=decisions,
        correlation_id=correlation_id,
        within=lambda conn, _holding: cases.add_channels(conn, sent),
    )
    later: dict[int, list[NotificationQueuedV1]] = {}
    for item in items:
        when = outcome.waiting.get(item.key)
        if when is not None:
            delay_ms = max(0, int((when - ctx.now()).total_seconds() * 1000))
            later.setdefault(delay_ms // 1000 * 1000, []).append(item)
    for delay_ms, group in later.items():
        emit(ctx, group, correlation_id=correlation_id, delay_ms=delay_ms)
    log.info("notifications sent", notifications=len(items), **_log_counts(outcome.counts))
    if outcome.failure is not None:
        raise outcome.failure


def _log_counts(counts: dict[str, int]) -> dict[str, int]:
    return {k.replace("-", "_"): v for k, v in counts.items()}
