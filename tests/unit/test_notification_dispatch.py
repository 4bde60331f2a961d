"""Dispatch: deliver, then notify once per channel; in-doubt sends, refusals, quiet hours."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from pydantic import ValidationError

from contracts.registry import envelope_for, parse
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from workers import notification_dispatch
from workers.actors import declare_actors
from workers.adapters.notifiers import (
    NotifierUnavailable,
    SimulatedEmailSender,
    SimulatedSmsGateway,
)
from workers.bootstrap import Context, build_context
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import upgrade
from workers.store.schema import cases, unread_follow_ups
from workers.templates.library import InMemoryTemplateLibrary
from workers.templates.model import Template, UnreadFollowup
from workers.unread_follow_up import run_follow_ups

STOCKHOLM_AFTERNOON = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)  # 15:00 local
STOCKHOLM_NIGHT = dt.datetime(2026, 11, 25, 22, 30, tzinfo=dt.UTC)  # 23:30 local


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    upgrade(sqlite_url)
    settings = Settings(database_url=sqlite_url, blob_dir=tmp_path / "blobs")
    broker = StubBroker()
    context = build_context(settings, broker)
    context.sms = SimulatedSmsGateway()
    context.email = SimulatedEmailSender()
    context.now = lambda: STOCKHOLM_AFTERNOON
    declare_actors(broker, lambda: context)
    yield context
    broker.close()
    context.engine.dispose()


def run(ctx: Context, items: list) -> None:  # type: ignore[type-arg]
    notification_dispatch.process(parse(envelope_for(items).model_dump(mode="json")), ctx)


def ledger(ctx: Context, case_id: str) -> dict[str, notifications.Entry]:
    with ctx.engine.connect() as conn:
        return notifications.entries_for(conn, [case_id])


def state(ctx: Context, case_id: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(sa.select(cases.c.state).where(cases.c.id == case_id)).scalar())


def test_a_case_is_delivered_and_notified_on_each_channel_once_even_when_redelivered(
    ctx: Context,
) -> None:
    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms", "email"}))
    items = [cleared_item(f"case-{i}", p) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    run(ctx, items)
    run(ctx, items)  # the broker redelivers the same message
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert ctx.sms.sends == {f"case-{i}:sms": 1 for i in range(3)}
    assert [r["key"] for r in ctx.email.recorder.records] == [f"case-{i}:email" for i in range(3)]
    assert all(state(ctx, f"case-{i}") == "notified" for i in range(3))
    text = ctx.settings.notification_text
    assert {r["text"] for r in ctx.email.recorder.records} == {text}
    assert "Testmottagningen" not in text and "test" not in text.lower()


def test_an_sms_in_doubt_is_settled_by_asking_the_gateway_never_by_sending_again(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item("doubt-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    # a worker claimed the send and the gateway took it, then the worker died
    with ctx.engine.begin() as conn:
        notifications.claim(conn, "doubt-1:sms", "doubt-1", "sms", 1)
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    ctx.sms.send(to="+46701740605", text="x", idempotency_key="doubt-1:sms")
    run(ctx, [item])
    assert ctx.sms.sends["doubt-1:sms"] == 1
    assert ledger(ctx, "doubt-1")["doubt-1:sms"].status == notifications.SENT
    assert state(ctx, "doubt-1") == "notified"


def test_an_sms_in_doubt_the_gateway_never_took_is_sent(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item("doubt-2", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
        notifications.claim(conn, "doubt-2:sms", "doubt-2", "sms", 1)
    run(ctx, [item])
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {"doubt-2:sms": 1}
    assert ledger(ctx, "doubt-2")["doubt-2:sms"].attempts == 2


def test_an_email_in_doubt_is_not_sent_again_and_says_why(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"email"}))
    item = cleared_item("doubt-3", resident, channels=["email"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
        notifications.claim(conn, "doubt-3:email", "doubt-3", "email", 1)
    run(ctx, [item])
    run(ctx, [item])
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert ctx.email.recorder.records == []
    entry = ledger(ctx, "doubt-3")["doubt-3:email"]
    assert (entry.status, entry.reason) == (notifications.UNCONFIRMED, "notification-in-doubt")
    assert state(ctx, "doubt-3") == "delivered"


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
    with pytest.raises(NotifierUnavailable):
        run(ctx, [item])
    assert ledger(ctx, "flaky-1")["flaky-1:sms"].status == notifications.RETRY
    run(ctx, [item])
    assert gateway.sends == {"flaky-1:sms": 1}
    assert state(ctx, "flaky-1") == "notified"


def test_a_429_asks_dramatiq_to_retry_after_the_gateways_retry_after(ctx: Context) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    ctx.sms = FlakyGateway(failures=1, retry_after=7)
    item = cleared_item("throttled-1", resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    with pytest.raises(dramatiq.Retry) as raised:
        run(ctx, [item])
    assert raised.value.delay == 7000


def test_sms_in_quiet_hours_are_deferred_to_the_morning_not_dropped(ctx: Context) -> None:
    assert isinstance(ctx.broker, StubBroker)
    residents = reachable_residents(ctx.settings.seed, 1, frozenset({"sms", "email"}))
    item = cleared_item("night-1", residents[0])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
    ctx.settings = ctx.settings.model_copy(update={"sms_quiet_hours": "21:00-08:00"})
    ctx.now = lambda: STOCKHOLM_NIGHT
    run(ctx, [item])
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}
    assert ledger(ctx, "night-1")["night-1:email"].status == "sent"
    delayed = ctx.broker.queues["notification-dispatch.DQ"]
    assert delayed.qsize() == 1
    message = dramatiq.Message.decode(delayed.get())
    delay = dt.timedelta(milliseconds=message.options["eta"] - time.time() * 1000)
    # from 23:30 to 08:00 Stockholm time: eight and a half hours
    assert abs(delay - dt.timedelta(hours=8, minutes=30)) < dt.timedelta(minutes=1)
    ctx.now = lambda: dt.datetime(2026, 11, 26, 7, 0, 1, tzinfo=dt.UTC)
    notification_dispatch.process(parse(message.args[0]), ctx)
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


def test_what_an_earlier_attempt_means_for_the_next() -> None:
    step = notification_dispatch.resume_step
    Resume = notification_dispatch.Resume  # noqa: N806
    assert step("sent", "sms") == step("sent", "email") == Resume.SENT
    assert step("refused", "sms") == step("unconfirmed", "email") == Resume.NEVER
    assert step("pending", "sms") == Resume.ASK_PROVIDER
    assert step("pending", "email") == Resume.GIVE_UP_IN_DOUBT
    assert step("retry", "email") == step("retry", "sms") == Resume.SEND


def test_a_ledger_group_holds_at_most_one_email_and_calls_it_first() -> None:
    from workers.notification_dispatch import Wanted, ledger_groups

    wanted = [Wanted(f"c{i}", ch, "x") for i in range(5) for ch in ("sms", "email")]
    groups = ledger_groups(wanted, 4)
    assert sorted((w.case_id, w.channel) for g in groups for w in g) == sorted(
        (w.case_id, w.channel) for w in wanted
    )
    for group in groups:
        assert 1 <= len(group) <= 4
        emails = [i for i, w in enumerate(group) if w.channel == "email"]
        assert emails in ([], [0])
    assert len(groups) == 5  # five e-mails, the five SMS fit behind them


def test_a_chunk_redelivered_to_a_restarted_worker_is_not_delivered_to_the_inbox_again(
    ctx: Context,
) -> None:
    from workers.adapters.inbox import SimulatedInbox

    residents = reachable_residents(ctx.settings.seed, 3, frozenset({"sms"}))
    items = [cleared_item(f"again-{i}", p, channels=["sms"]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    first = SimulatedInbox()
    ctx.inbox = first
    run(ctx, items)
    restarted = SimulatedInbox()  # a new process: the simulated inbox remembers nothing
    ctx.inbox = restarted
    run(ctx, items)
    assert len(first.delivered_case_ids()) == 3
    assert restarted.delivered_case_ids() == []
    assert all(state(ctx, f"again-{i}") == "notified" for i in range(3))
