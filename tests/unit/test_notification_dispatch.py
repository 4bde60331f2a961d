"""Dispatch in two stages with the ledger as the outbox: inbox delivery (intent, deliver under a
stable key, delivered + queued notifications in one transaction), then notification sending
(one protocol; each mark durable at once; in-doubt sends resolved, never dropped)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from pydantic import ValidationError

from contracts.registry import envelope_for, parse
from tests.delivery_support import (
    cleared_item,
    reachable_residents,
    sending_context,
    store_cleared,
)
from workers import notification_dispatch, notification_sending
from workers.adapters.inbox import InboxMessage, SimulatedInbox
from workers.adapters.inbox_records import MemoryInboxRecords
from workers.adapters.keyed_records import TakenStats
from workers.adapters.notifiers import (
    NotifierUnavailable,
    SimulatedEmailSender,
    SimulatedSmsGateway,
)
from workers.bootstrap import Context
from workers.notification_sending import Policy, Step, next_step
from workers.queues import Queues, lane_queue, lanes_of
from workers.settings import Settings
from workers.store import notifications
from workers.store.notifications import Resolution
from workers.store.schema import cases, notification_ledger, unread_follow_ups
from workers.templates.library import InMemoryTemplateLibrary
from workers.templates.model import Template, UnreadFollowup
from workers.unread_follow_up import run_follow_ups

STOCKHOLM_AFTERNOON = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)  # 15:00 local
STOCKHOLM_NIGHT = dt.datetime(2026, 11, 25, 22, 30, tzinfo=dt.UTC)  # 23:30 local


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    with sending_context(sqlite_url, tmp_path, lambda: STOCKHOLM_AFTERNOON) as context:
        yield context


def sending_messages(ctx: Context, *, delayed: bool = False) -> list[dramatiq.Message[Any]]:
    """Take the messages waiting on the notification-sending lanes (or their delay queues)."""
    assert isinstance(ctx.broker, StubBroker)
    taken = []
    for lane in lanes_of(Queues.NOTIFICATION_SENDING):
        name = lane_queue(Queues.NOTIFICATION_SENDING, lane) + (".DQ" if delayed else "")
        queue = ctx.broker.queues.get(name)
        while queue is not None and not queue.empty():
            taken.append(dramatiq.Message.decode(queue.get()))
    return taken


def send(ctx: Context, messages: list[dramatiq.Message[Any]]) -> None:
    for message in messages:
        notification_sending.process(parse(message.args[0]), ctx)


def deliver(ctx: Context, items: list) -> list[dramatiq.Message[Any]]:  # type: ignore[type-arg]
    """Run the inbox-delivery stage on a chunk; return what it emitted for sending."""
    notification_dispatch.process(parse(envelope_for(items).model_dump(mode="json")), ctx)
    return sending_messages(ctx)


def run(ctx: Context, items: list) -> None:  # type: ignore[type-arg]
    """Both stages, as the workers would run them."""
    send(ctx, deliver(ctx, items))


def ledger(ctx: Context, case_id: str) -> dict[str, notifications.Entry]:
    with ctx.engine.connect() as conn:
        return notifications.entries_for(conn, [case_id])


def state(ctx: Context, case_id: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(sa.select(cases.c.state).where(cases.c.id == case_id)).scalar())


def in_doubt(ctx: Context, key: str, *, seconds_ago: float = 3600) -> None:
    """Make a row look like a send a worker claimed and then died with (pending, long ago)."""
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.update(notification_ledger)
            .where(notification_ledger.c.idempotency_key == key)
            .values(
                status=notifications.PENDING,
                attempts=1,
                updated_at=ctx.now() - dt.timedelta(seconds=seconds_ago),
            )
        )


def test_a_case_is_delivered_and_notified_on_each_channel_once_even_when_redelivered(
    ctx: Context,
) -> None:
    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms", "email"}))
    items = [cleared_item(f"case-{i}", p) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    first = deliver(ctx, items)
    again = deliver(ctx, items)  # the broker redelivers the delivery chunk
    send(ctx, first + again + first)  # and the sending chunks, twice
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert isinstance(ctx.inbox, SimulatedInbox)
    assert ctx.inbox.stats() == TakenStats(attempts=3, distinct=3, duplicates_refused=0)
    assert ctx.sms.sends == {f"case-{i}:sms": 1 for i in range(3)}
    assert sorted(r["key"] for r in ctx.email.recorder.records) == [
        f"case-{i}:email" for i in range(3)
    ]
    assert all(state(ctx, f"case-{i}") == "notified" for i in range(3))
    with ctx.engine.connect() as conn:
        channels = conn.execute(sa.select(cases.c.channels).where(cases.c.id == "case-0")).scalar()
    assert channels == "email,sms"
    text = ctx.settings.notification_text
    assert {r["text"] for r in ctx.email.recorder.records} == {text}
    assert "Testmottagningen" not in text and "test" not in text.lower()


class KilledMidChunk(BaseException):
    """The worker process dies (kill -9): nothing after this point runs in it."""


class InboxThatDiesAfter(SimulatedInbox):
    """A worker whose process is killed right after the inbox took its ``n``-th message."""

    def __init__(self, records: MemoryInboxRecords, n: int) -> None:
        super().__init__(records=records)
        self.left = n

    def deliver(self, message: InboxMessage) -> str:
        inbox_id = super().deliver(message)
        self.left -= 1
        if self.left == 0:
            raise KilledMidChunk
        return inbox_id


def test_a_chunk_redelivered_to_a_restarted_worker_is_not_delivered_to_the_inbox_again(
    ctx: Context,
) -> None:
    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms"}))
    items = [cleared_item(f"again-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    the_inbox = MemoryInboxRecords()  # the real inbox outlives every worker process
    ctx.inbox = InboxThatDiesAfter(the_inbox, 2)
    with pytest.raises(KilledMidChunk):
        deliver(ctx, items)
    # the crash window: the inbox took two messages, nothing recorded them delivered
    assert the_inbox.stats().distinct == 2
    assert {state(ctx, f"again-{i}") for i in range(3)} == {"cleared"}
    ctx.inbox = SimulatedInbox(records=the_inbox)  # the restarted worker, a new client
    send(ctx, deliver(ctx, items))  # the broker redelivers the chunk
    assert the_inbox.stats() == TakenStats(attempts=5, distinct=3, duplicates_refused=2)
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(cases.c.id, cases.c.inbox_message_id, cases.c.delivery_key)
        ).all()
    assert {r.id: r.inbox_message_id for r in rows} == {
        f"again-{i}": the_inbox.find(f"again-{i}:inbox")["id"]  # type: ignore[index]
        for i in range(3)
    }
    assert {r.delivery_key for r in rows} == {f"again-{i}:inbox" for i in range(3)}
    assert all(state(ctx, f"again-{i}") == "notified" for i in range(3))


def test_delivered_and_the_queued_notifications_are_written_in_one_transaction(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms", "email"}))
    item = cleared_item("atomic-1", resident)
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])

    def killed(conn: sa.Connection, rows: object) -> None:
        raise KilledMidChunk  # the last write of the transaction: delivered, rows, follow-ups

    with monkeypatch.context() as patch:
        patch.setattr(notification_dispatch.follow_ups, "schedule", killed)
        with pytest.raises(KilledMidChunk):
            deliver(ctx, [item])
    assert state(ctx, "atomic-1") == "cleared"
    assert ledger(ctx, "atomic-1") == {}  # rolled back with the delivered mark
    messages = deliver(ctx, [item])
    assert {e.status for e in ledger(ctx, "atomic-1").values()} == {notifications.QUEUED}
    assert state(ctx, "atomic-1") == "delivered"
    send(ctx, messages)
    assert state(ctx, "atomic-1") == "notified"


class GatewayThatChecksTheLedger(SimulatedSmsGateway):
    """On every send, the previous notification it took must already be marked sent in the
    database: no mark waits in memory while the next provider call is made."""

    def __init__(self, ctx: Context, fail_on: int | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.taken: list[str] = []
        self.fail_on = fail_on

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        if self.taken:
            with self.ctx.engine.connect() as conn:
                entry = notifications.entries(conn, [self.taken[-1]])[self.taken[-1]]
            assert entry.status == notifications.SENT, entry
        if self.fail_on is not None and len(self.taken) == self.fail_on:
            raise KilledMidChunk
        self.taken.append(idempotency_key)
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_each_sent_mark_is_durable_before_the_next_provider_call(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"send_concurrency": 1, "sms_batch_size": 1})
    residents = reachable_residents(ctx.settings.seed, 4, frozenset({"sms"}))
    items = [cleared_item(f"mark-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    ctx.sms = gateway = GatewayThatChecksTheLedger(ctx, fail_on=3)
    messages = deliver(ctx, items)
    with pytest.raises(KilledMidChunk):
        send(ctx, messages)
    with ctx.engine.connect() as conn:
        statuses = {
            e.key: e.status
            for e in notifications.entries_for(conn, [i.case_id for i in items]).values()
        }
    assert sorted(statuses.values()) == ["pending", "sent", "sent", "sent"]
    assert [statuses[k] for k in gateway.taken] == ["sent"] * 3


class GatewayThatDies(SimulatedSmsGateway):
    """The process is killed during its ``on_call``-th send."""

    def __init__(self, on_call: int) -> None:
        super().__init__()
        self.calls = 0
        self.on_call = on_call

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        with self._lock:
            self.calls += 1
            dies = self.calls == self.on_call
        if dies:
            raise KilledMidChunk
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_a_crash_leaves_in_doubt_at_most_the_notifications_in_flight(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"send_concurrency": 3, "sms_batch_size": 1})
    residents = reachable_residents(ctx.settings.seed, 10, frozenset({"sms"}))
    items = [cleared_item(f"fly-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    messages = deliver(ctx, items)
    ctx.sms = GatewayThatDies(on_call=5)  # dies in the second group of three
    with pytest.raises(KilledMidChunk):
        send(ctx, messages)
    with ctx.engine.connect() as conn:
        statuses = [
            e.status for e in notifications.entries_for(conn, [i.case_id for i in items]).values()
        ]
    assert statuses.count("pending") <= 3  # in doubt: the group in flight, no more
    assert statuses.count("queued") == 4  # never claimed: not in doubt, sent as usual later
    assert statuses.count("sent") >= 3


class GatewayThatCountsUnmarked(SimulatedSmsGateway):
    """On every send, counts the notifications it took before that are not yet marked sent:
    at most the group-mates in flight beside this one may be unmarked."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.taken: list[str] = []
        self.unmarked: list[int] = []

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        with self._lock:
            before = list(self.taken)
        with self.ctx.engine.connect() as conn:
            found = notifications.entries(conn, before)
        with self._lock:
            self.unmarked.append(sum(1 for k in before if found[k].status != notifications.SENT))
            self.taken.append(idempotency_key)
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_a_groups_answers_are_durable_before_the_next_group_is_sent(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"send_concurrency": 3, "sms_batch_size": 1})
    residents = reachable_residents(ctx.settings.seed, 9, frozenset({"sms"}))
    items = [cleared_item(f"grp-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    messages = deliver(ctx, items)
    ctx.sms = gateway = GatewayThatCountsUnmarked(ctx)
    send(ctx, messages)
    assert len(gateway.taken) == 9
    assert max(gateway.unmarked) <= 2  # only the group-mates in flight beside it
    assert all(state(ctx, f"grp-{i}") == "notified" for i in range(9))


def test_each_answer_is_recorded_with_the_next_claim_in_one_commit(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"send_concurrency": 1, "sms_batch_size": 1})
    residents = reachable_residents(ctx.settings.seed, 4, frozenset({"sms"}))
    items = [cleared_item(f"one-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    deliver(ctx, items)
    keys = [f"one-{i}:sms" for i in range(4)]
    commits: list[int] = []

    def counted(_conn: object) -> None:
        commits.append(1)

    sa.event.listen(ctx.engine, "commit", counted)
    try:
        outcome = notification_sending.send_notifications(ctx, keys)
    finally:
        sa.event.remove(ctx.engine, "commit", counted)
    assert sorted(outcome.sent) == [f"one-{i}" for i in range(4)]
    # claim 1; answer 1 + claim 2; answer 2 + claim 3; answer 3 + claim 4; answer 4
    assert len(commits) == 5
    with ctx.engine.connect() as conn:
        found = notifications.entries(conn, keys)
    assert {e.status for e in found.values()} == {notifications.SENT}


def test_an_sms_in_doubt_is_settled_by_asking_the_gateway_never_by_sending_again(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item("doubt-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    # a worker claimed the send and the gateway took it, then the worker died
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    ctx.sms.send(to="+46701740605", text="x", idempotency_key="doubt-1:sms")
    in_doubt(ctx, "doubt-1:sms")
    send(ctx, messages)
    assert ctx.sms.sends["doubt-1:sms"] == 1
    entry = ledger(ctx, "doubt-1")["doubt-1:sms"]
    assert (entry.status, entry.resolution) == (notifications.SENT, Resolution.FOUND_AT_PROVIDER)
    assert state(ctx, "doubt-1") == "notified"


def test_an_sms_in_doubt_the_gateway_never_took_is_sent_with_the_same_key(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item("doubt-2", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    in_doubt(ctx, "doubt-2:sms")
    send(ctx, messages)
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {"doubt-2:sms": 1}
    entry = ledger(ctx, "doubt-2")["doubt-2:sms"]
    assert (entry.status, entry.resolution, entry.attempts) == (
        notifications.SENT,
        Resolution.NOT_AT_PROVIDER,
        2,
    )


def test_a_claim_that_may_still_be_in_flight_is_left_alone_and_looked_at_later(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"email"}))
    item = cleared_item("flight-1", resident, channels=["email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    in_doubt(ctx, "flight-1:email", seconds_ago=5)  # another worker is sending it right now
    send(ctx, messages)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert ctx.email.recorder.records == []
    assert ledger(ctx, "flight-1")["flight-1:email"].status == notifications.PENDING
    [later] = sending_messages(ctx, delayed=True)
    delay = later.options["eta"] / 1000 - time.time()
    assert 50 < delay < 60  # after the in-flight limit (60 s) from the claim


class SlowGatewayThatAsksWhatAnotherSenderWouldDo(SimulatedSmsGateway):
    """Each send takes 40 s of the context's clock (a rate-limited chunk); on every send it
    asks what another sender (the sweep, a redelivery) would decide about this very row."""

    def __init__(self, ctx: Context, clock: list[dt.datetime]) -> None:
        super().__init__()
        self.ctx, self.clock = ctx, clock
        self.seen: list[Step] = []

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        self.clock[0] += dt.timedelta(seconds=40)
        with self.ctx.engine.connect() as conn:
            entry = notifications.entries(conn, [idempotency_key])[idempotency_key]
        self.seen.append(next_step(entry, notification_sending.policy_for(self.ctx)))
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_a_claim_late_in_a_long_chunk_is_stamped_when_claimed_so_never_looks_in_doubt(
    ctx: Context,
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"send_concurrency": 1, "sms_batch_size": 1})
    clock = [STOCKHOLM_AFTERNOON]
    ctx.now = lambda: clock[0]
    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms"}))
    items = [cleared_item(f"slow-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    messages = deliver(ctx, items)
    ctx.sms = gateway = SlowGatewayThatAsksWhatAnotherSenderWouldDo(ctx, clock)
    send(ctx, messages)
    # the third is claimed 80 s into the chunk: in flight, not in doubt (limit 60 s)
    assert gateway.seen == [Step.NOT_YET] * 3


def test_an_email_in_doubt_is_sent_once_more_with_the_same_message_id_after_a_delay(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"email"}))
    item = cleared_item("doubt-3", resident, channels=["email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    in_doubt(ctx, "doubt-3:email")
    send(ctx, messages)
    entry = ledger(ctx, "doubt-3")["doubt-3:email"]
    assert (entry.status, entry.resolution) == (
        notifications.RETRY,
        Resolution.RESENT_SAME_MESSAGE_ID,
    )
    assert entry.due_at == STOCKHOLM_AFTERNOON + dt.timedelta(seconds=60)
    [later] = sending_messages(ctx, delayed=True)
    ctx.now = lambda: STOCKHOLM_AFTERNOON + dt.timedelta(seconds=61)
    send(ctx, [later])
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert [r["key"] for r in ctx.email.recorder.records] == ["doubt-3:email"]  # same Message-ID
    entry = ledger(ctx, "doubt-3")["doubt-3:email"]
    assert (entry.status, entry.resolution) == (
        notifications.SENT,
        Resolution.RESENT_SAME_MESSAGE_ID,
    )
    assert state(ctx, "doubt-3") == "notified"
    # in doubt a second time: never a third e-mail
    in_doubt(ctx, "doubt-3:email")
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.update(notification_ledger)
            .where(notification_ledger.c.idempotency_key == "doubt-3:email")
            .values(updated_at=ctx.now() - dt.timedelta(hours=1))
        )
    send(ctx, [later])
    entry = ledger(ctx, "doubt-3")["doubt-3:email"]
    assert (entry.status, entry.reason) == (notifications.UNCONFIRMED, "notification-in-doubt")
    assert len(ctx.email.recorder.records) == 1


def test_an_email_in_doubt_under_at_most_once_is_not_sent_again_and_says_why(
    ctx: Context,
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"email_in_doubt": "at-most-once"})
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"email"}))
    item = cleared_item("doubt-4", resident, channels=["email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    in_doubt(ctx, "doubt-4:email")
    send(ctx, messages + messages)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert ctx.email.recorder.records == []
    entry = ledger(ctx, "doubt-4")["doubt-4:email"]
    assert (entry.status, entry.reason, entry.resolution) == (
        notifications.UNCONFIRMED,
        "notification-in-doubt",
        Resolution.NOT_SENT_AGAIN,
    )
    assert state(ctx, "doubt-4") == "delivered"


def test_an_email_in_doubt_whose_sms_was_sent_is_not_sent_again(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms", "email"}))
    item = cleared_item("doubt-6", resident, channels=["sms", "email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    in_doubt(ctx, "doubt-6:email")
    send(ctx, messages + messages)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert ctx.email.recorder.records == []  # the resident has the SMS: no duplicate risked
    rows = ledger(ctx, "doubt-6")
    assert rows["doubt-6:sms"].status == notifications.SENT
    email = rows["doubt-6:email"]
    assert (email.status, email.reason, email.resolution) == (
        notifications.UNCONFIRMED,
        "notification-in-doubt",
        Resolution.NOTIFIED_OTHERWISE,
    )
    assert state(ctx, "doubt-6") == "notified"


def test_an_email_in_doubt_is_asked_about_where_the_provider_can_be_asked(ctx: Context) -> None:
    ctx.email = SimulatedEmailSender(can_lookup=True)
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"email"}))
    item = cleared_item("doubt-5", resident, channels=["email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    ctx.email.send(to="x@example.org", subject="s", text="t", idempotency_key="doubt-5:email")
    in_doubt(ctx, "doubt-5:email")
    send(ctx, messages)
    assert len(ctx.email.recorder.records) == 1
    entry = ledger(ctx, "doubt-5")["doubt-5:email"]
    assert (entry.status, entry.resolution) == (notifications.SENT, Resolution.FOUND_AT_PROVIDER)


def test_a_refused_number_is_recorded_with_a_reason_and_the_case_stays_delivered(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    phone = ctx.directory.lookup_many([resident])[resident].phone
    assert phone is not None
    ctx.sms = SimulatedSmsGateway(refuse=frozenset({phone}))
    item = cleared_item("refused-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    run(ctx, [item])
    run(ctx, [item])
    entry = ledger(ctx, "refused-1")["refused-1:sms"]
    assert (entry.status, entry.reason, entry.attempts) == ("refused", "notification-refused", 1)
    assert state(ctx, "refused-1") == "delivered"


class FlakyGateway(SimulatedSmsGateway):
    """Answers like a gateway that is down for the first ``failures`` sends."""

    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.retry_after = retry_after

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise NotifierUnavailable("503", retry_after=self.retry_after)
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_a_transient_failure_raises_for_a_retry_and_the_retry_sends(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    ctx.sms = gateway = FlakyGateway(failures=1)
    item = cleared_item("flaky-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    with pytest.raises(NotifierUnavailable):
        send(ctx, messages)
    assert ledger(ctx, "flaky-1")["flaky-1:sms"].status == notifications.RETRY
    send(ctx, messages)
    assert gateway.sends == {"flaky-1:sms": 1}
    assert state(ctx, "flaky-1") == "notified"


def test_a_429_asks_dramatiq_to_retry_after_the_gateways_retry_after(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    ctx.sms = FlakyGateway(failures=1, retry_after=7)
    item = cleared_item("throttled-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    with pytest.raises(dramatiq.Retry) as raised:
        send(ctx, messages)
    assert raised.value.delay == 7000


def test_sms_in_quiet_hours_wait_for_the_morning_on_their_own_lane(ctx: Context) -> None:
    residents = reachable_residents(ctx.settings.seed, 1, frozenset({"sms", "email"}))
    item = cleared_item("night-1", residents[0]).model_copy(update={"priority": "urgent"})
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    ctx.settings = ctx.settings.model_copy(update={"sms_quiet_hours": "21:00-08:00"})
    ctx.now = lambda: STOCKHOLM_NIGHT
    send(ctx, deliver(ctx, [item]))
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}
    assert ledger(ctx, "night-1")["night-1:email"].status == "sent"
    sms_row = ledger(ctx, "night-1")["night-1:sms"]
    assert (sms_row.status, sms_row.due_at) == (
        "queued",
        dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC),
    )
    assert isinstance(ctx.broker, StubBroker)
    urgent_delayed = ctx.broker.queues["notification-sending.urgent.DQ"]
    assert urgent_delayed.qsize() == 1  # the urgent lane: a night SMS keeps its lane
    message = dramatiq.Message.decode(urgent_delayed.get())
    assert message.actor_name == "send_notifications_urgent"
    delay = dt.timedelta(milliseconds=message.options["eta"] - time.time() * 1000)
    # from 23:30 to 08:00 Stockholm time: eight and a half hours
    assert abs(delay - dt.timedelta(hours=8, minutes=30)) < dt.timedelta(minutes=1)
    send(ctx, [message])  # too early (a broker that delivered early): waits again
    assert ctx.sms.sends == {}
    assert len(sending_messages(ctx, delayed=True)) == 1
    ctx.now = lambda: dt.datetime(2026, 11, 26, 7, 0, 1, tzinfo=dt.UTC)
    send(ctx, [message])
    assert ctx.sms.sends == {"night-1:sms": 1}


def test_a_notification_text_with_personalisation_fields_is_refused_at_start_up() -> None:
    for text in ("Hej {namn}, du har post", "Hej {{ namn }}", "Hej %s", "Från $CLINIC"):
        with pytest.raises(ValidationError, match="notification-text-personalised"):
            Settings(notification_text=text)
    assert Settings(notification_text="Du har ett nytt meddelande på 1177.")


def with_follow_up(template_id: str, after_hours: int, action: str) -> Template:
    base = InMemoryTemplateLibrary().get("meddelande-till-invanare")
    assert base is not None
    rule = UnreadFollowup(after_hours=after_hours, action=action)  # type: ignore[arg-type]
    return base.model_copy(update={"id": template_id, "version": 1, "unread_followup": rule})


def test_unread_follow_ups_notify_again_once_or_flag_when_due(ctx: Context) -> None:
    ctx.templates = InMemoryTemplateLibrary(
        [with_follow_up("paminn", 48, "notify-again"), with_follow_up("flagga", 24, "flag")]
    )
    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms"}))
    items = [
        cleared_item("remind-1", residents[0], channels=["sms"], template_id="paminn"),
        cleared_item("flag-1", residents[1], channels=["sms"], template_id="flagga"),
        cleared_item("plain-1", residents[2], channels=["sms"]),
    ]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    run(ctx, items)
    with ctx.engine.connect() as conn:
        due = {r.case_id for r in conn.execute(sa.select(unread_follow_ups.c.case_id))}
    assert due == {"remind-1", "flag-1"}
    ctx.now = lambda: STOCKHOLM_AFTERNOON + dt.timedelta(hours=30)
    assert run_follow_ups(ctx) == {"flagged": 1}
    ctx.now = lambda: STOCKHOLM_AFTERNOON + dt.timedelta(hours=49)
    assert run_follow_ups(ctx) == {"notified-again": 1}
    assert run_follow_ups(ctx) == {}
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends["remind-1:sms:2"] == 1
    assert "flag-1:sms:2" not in ctx.sms.sends
    entry = ledger(ctx, "remind-1")["remind-1:sms:2"]
    assert (entry.status, entry.round) == (notifications.SENT, 2)  # the same outbox, round 2


def entry(status: str, channel: str, *, age: float = 3600, **extra: Any) -> notifications.Entry:
    now = STOCKHOLM_AFTERNOON
    return notifications.Entry(
        key=f"c:{channel}",
        case_id="c",
        channel=channel,
        round=1,
        status=status,
        provider_ref=None,
        reason=None,
        attempts=1,
        sent_at=None,
        updated_at=now - dt.timedelta(seconds=age),
        **extra,
    )


def test_what_the_send_protocol_does_with_each_row() -> None:
    policy = Policy(STOCKHOLM_AFTERNOON, 60, frozenset({"sms"}))
    later = STOCKHOLM_AFTERNOON + dt.timedelta(hours=1)
    assert next_step(entry("sent", "sms"), policy) == Step.DONE
    assert next_step(entry("refused", "email"), policy) == Step.DONE
    assert next_step(entry("unconfirmed", "email"), policy) == Step.DONE
    assert next_step(entry("queued", "sms"), policy) == Step.SEND
    assert next_step(entry("retry", "email"), policy) == Step.SEND
    assert next_step(entry("queued", "sms", due_at=later), policy) == Step.NOT_YET
    assert next_step(entry("pending", "sms", age=10), policy) == Step.NOT_YET
    assert next_step(entry("pending", "sms"), policy) == Step.ASK_PROVIDER
    assert next_step(entry("pending", "email"), policy) == Step.RESEND_LATER
    pending_email = entry("pending", "email")
    assert next_step(pending_email, policy, notified_otherwise=True) == Step.NOTIFIED_OTHERWISE
    resent = entry("pending", "email", resolution=Resolution.RESENT_SAME_MESSAGE_ID)
    assert next_step(resent, policy) == Step.GIVE_UP
    strict = Policy(STOCKHOLM_AFTERNOON, 60, frozenset({"sms"}), email_in_doubt="at-most-once")
    assert next_step(entry("pending", "email"), strict) == Step.GIVE_UP
    asking = Policy(STOCKHOLM_AFTERNOON, 60, frozenset({"sms", "email"}))
    assert next_step(entry("pending", "email"), asking) == Step.ASK_PROVIDER


def test_a_dispatch_cancelled_after_delivery_still_notifies_the_residents_delivered(
    ctx: Context,
) -> None:
    from workers.actors import run_message
    from workers.store import batches

    residents = reachable_residents(ctx.settings.seed, 2, frozenset({"sms"}))
    delivered, waiting = (
        cleared_item(f"cancel-{n}", p, channels=["sms"], batch_id="cancelled-1")
        for n, p in enumerate(residents)
    )
    with ctx.engine.begin() as conn:
        batches.create(
            conn,
            batch_id="cancelled-1",
            name="n",
            clinic_hsa_id=delivered.clinic_hsa_id,
            sender_hsa_id="SE2321000016-S100",
            template_id=delivered.template_id,
            total=2,
        )
        store_cleared(conn, [delivered, waiting])
    messages = deliver(ctx, [delivered])
    with ctx.engine.begin() as conn:
        batches.set_status(conn, "cancelled-1", batches.BatchStatus.CANCELLED)
    ctx.batches.forget()  # the workers' one-second view of the batch has expired
    for message in messages:
        run_message("NotificationQueued", notification_sending.process, ctx, message.args, {})
    envelope = envelope_for([waiting]).model_dump(mode="json")
    run_message("AttachmentsCleared", notification_dispatch.process, ctx, (envelope,), {})
    assert state(ctx, "cancel-0") == "notified"  # in the inbox already: told
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(cases.c.state, cases.c.reason).where(cases.c.id == "cancel-1")
        ).one()
    assert (row.state, row.reason) == ("rejected", "batch-cancelled")  # stopped before the inbox


def test_a_dispatch_cancelled_after_a_crash_mid_delivery_finishes_the_chunk_it_had_begun(
    ctx: Context,
) -> None:
    """Outside review of issue 11: the inbox took two of a chunk, the worker died, the dispatch
    was cancelled before the redelivery. The chunk's delivery had begun (its keys recorded):
    it is finished, so the two in the inbox are told and the records agree with the inbox; a
    case whose delivery had not begun is stopped."""
    from workers.actors import run_message
    from workers.store import batches

    residents = reachable_residents(ctx.settings.seed, 4, frozenset({"sms"}))
    items = [
        cleared_item(f"cx-{n}", p, channels=["sms"], batch_id="cancelled-2")
        for n, p in enumerate(residents)
    ]
    begun, waiting = items[:3], items[3]
    with ctx.engine.begin() as conn:
        batches.create(
            conn, batch_id="cancelled-2", name="n", clinic_hsa_id=items[0].clinic_hsa_id,
            sender_hsa_id="SE2321000016-S100", template_id=items[0].template_id, total=4,
        )  # fmt: skip
        store_cleared(conn, items)
    the_inbox = MemoryInboxRecords()
    ctx.inbox = InboxThatDiesAfter(the_inbox, 2)  # kill -9 after the inbox took 2 of 3
    with pytest.raises(KilledMidChunk):
        deliver(ctx, begun)
    with ctx.engine.begin() as conn:
        batches.set_status(conn, "cancelled-2", batches.BatchStatus.CANCELLED)
    ctx.batches.forget()
    ctx.inbox = SimulatedInbox(records=the_inbox)
    for chunk in (begun, [waiting]):  # the redelivery, then a chunk not yet begun
        envelope = envelope_for(chunk).model_dump(mode="json")
        run_message("AttachmentsCleared", notification_dispatch.process, ctx, (envelope,), {})
    for item in begun:
        assert state(ctx, item.case_id) == "delivered", item.case_id
        assert the_inbox.find(f"{item.case_id}:inbox")
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(cases.c.state, cases.c.reason).where(cases.c.id == waiting.case_id)
        ).one()
    assert (row.state, row.reason) == ("rejected", "batch-cancelled")
    assert not the_inbox.find(f"{waiting.case_id}:inbox")


def test_a_sent_mark_is_written_when_the_database_comes_back_not_left_in_doubt(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item("db-away-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    messages = deliver(ctx, [item])
    real = notifications.mark_sent
    failures = iter([True, True, False])

    def database_restarting(conn: sa.Connection, key: str, ref: str, **kw: Any) -> None:
        if next(failures):
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection"))
        real(conn, key, ref, **kw)

    monkeypatch.setattr(notifications, "mark_sent", database_restarting)
    send(ctx, messages)
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {"db-away-1:sms": 1}
    assert ledger(ctx, "db-away-1")["db-away-1:sms"].status == notifications.SENT
    assert state(ctx, "db-away-1") == "notified"
