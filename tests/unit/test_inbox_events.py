"""Inbox events through the kombu bridge (memory:// transport) into the read-receipt stage."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dramatiq
import kombu
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker

from contracts.inbox_event import InboxEventError, InboxEventV1, parse_inbox_event
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from workers.actors import declare_actors
from workers.adapters.inbox import KombuInboxEventPublisher
from workers.bootstrap import Context, build_context
from workers.case_states import CaseState
from workers.inbox_events_bridge import InboxEventsBridge, exchange_name
from workers.settings import Settings
from workers.store import cases
from workers.store.cases import Transition
from workers.store.engine import upgrade
from workers.store.schema import cases as cases_table
from workers.store.schema import rejected_messages

T1 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=2)


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        blob_dir=tmp_path / "blobs",
        queue_prefix=f"t{uuid.uuid4().hex[:8]}.",
        chunk_size=2,
    )
    broker = StubBroker()
    broker.emit_after("process_boot")
    context = build_context(settings, broker)
    declare_actors(broker, lambda: context, prefix=settings.queue_prefix)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    yield context
    worker.stop()
    broker.close()
    context.engine.dispose()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def publish_raw(url: str, ctx: Context, bodies: Sequence[bytes], *, routing_key: str) -> None:
    """Put ``bodies`` on the inbox-events exchange as they are, read or not: what a faulty
    inbox service could send."""
    with kombu.Connection(url) as conn:
        producer = conn.Producer()
        for raw in bodies:
            producer.publish(
                raw,
                exchange=exchange_name(ctx.settings),
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
            )


@pytest.fixture(params=["memory", "rabbitmq"])
def events_url(request: pytest.FixtureRequest, ctx: Context) -> Iterator[str]:
    """kombu's in-process transport, and RabbitMQ as the inbox would publish to."""
    if request.param == "memory":
        yield "memory://"
        return
    url = str(request.getfixturevalue("rabbitmq_url"))
    yield url
    with kombu.Connection(url) as conn:
        channel = conn.default_channel
        channel.queue_delete(f"{ctx.settings.queue_prefix}inbox-events")
        channel.exchange_delete(exchange_name(ctx.settings))


def test_opened_and_answered_events_read_the_case_once_whatever_the_order(
    ctx: Context, events_url: str
) -> None:
    [first, second] = reachable_residents(ctx.settings.seed, 2, frozenset({"sms"}))
    question = "bifoga-bild-till-varden"  # a question template: its cases can be answered
    items = [cleared_item("q-1", first, template_id=question), cleared_item("q-2", second)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
        cases.apply(conn, [Transition(i.case_id, CaseState.DELIVERED) for i in items], stage="test")
    bridge = InboxEventsBridge(ctx, events_url, chunk_size=2, linger=0.05)
    thread, stop = bridge.start()
    try:
        publisher = KombuInboxEventPublisher(events_url, exchange_name(ctx.settings))
        publisher.publish(
            [
                InboxEventV1(case_id="q-1", event="opened", occurred_at=T2),
                InboxEventV1(case_id="q-1", event="opened", occurred_at=T2),  # duplicate
                InboxEventV1(
                    case_id="q-1", event="answered", answer_kind="partial-answer", occurred_at=T2
                ),
                InboxEventV1(case_id="q-1", event="opened", occurred_at=T1),  # came late
                InboxEventV1(case_id="nobody-knows", event="opened", occurred_at=T1),
            ]
        )
        unreadable = [b"not json", json.dumps({"version": 9, "event": "opened"}).encode()]
        publish_raw(events_url, ctx, unreadable, routing_key="inbox.opened")

        def rejected() -> list[str]:
            with ctx.engine.connect() as conn:
                return sorted(conn.execute(sa.select(rejected_messages.c.reason)).scalars())

        def read_at() -> dt.datetime | None:
            with ctx.engine.connect() as conn:
                return conn.execute(
                    sa.select(cases_table.c.read_at).where(cases_table.c.id == "q-1")
                ).scalar()

        wait_until(lambda: len(rejected()) == 3 and bridge.forwarded.receipts == 5)
        assert isinstance(ctx.broker, StubBroker)
        ctx.broker.join(f"{ctx.settings.queue_prefix}read-receipts", timeout=10_000)
        wait_until(lambda: read_at() is not None)
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(cases_table).where(cases_table.c.id == "q-1")).one()
            other = conn.execute(
                sa.select(cases_table.c.state).where(cases_table.c.id == "q-2")
            ).scalar()
        assert row.state == "read"
        assert row.read_at.replace(tzinfo=dt.UTC) == T1
        assert row.answer_kind == "partial-answer"
        assert other == "delivered"
        assert rejected() == ["malformed-message", "unknown-case", "unknown-contract-version"]
    finally:
        stop.set()
        thread.join(timeout=10)


def test_inbox_events_are_versioned_and_checked() -> None:
    event = parse_inbox_event(
        '{"version": 1, "event": "answered", "case_id": "c1", "answer_kind": "answer",'
        ' "occurred_at": "2026-11-25T09:00:00Z"}'
    )
    assert event.answer is not None  # version 1 is read as version 2: the kind, no text
    assert (event.event, event.answer.kind, event.routing_key) == (
        "answered",
        "answer",
        "inbox.answered",
    )
    for raw, reason in (
        ("[]", "malformed-message"),
        ("[" * 100_000, "malformed-message"),
        ('{"a":' * 50_000, "malformed-message"),
        ('{"version": 9}', "unknown-contract-version"),
        (
            (
                '{"version": 1, "event": "answered", "case_id": "c1",'
                ' "occurred_at": "2026-11-25T09:00:00Z"}'
            ),
            "invalid-payload",
        ),
    ):
        with pytest.raises(InboxEventError) as raised:
            parse_inbox_event(raw)
        assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("occurred_at", "answer", "reason"),
    [
        ("12345", '{"kind": "answer", "text": "x"}', "invalid-payload"),  # seconds since 1970
        ('"12345"', '{"kind": "answer", "text": "x"}', "invalid-payload"),
        ('"2026-11-25"', '{"kind": "answer", "text": "x"}', "invalid-payload"),
        ('"2026-11-25T09:00:00"', '{"kind": "answer", "text": "x"}', "invalid-payload"),
        ('"2026-11-25T09:00:00Z"', '{"kind": "answer", "text": "A", "text": "B"}',
         "duplicate-json-key"),
    ],
)  # fmt: skip
def test_an_event_time_is_iso_text_with_an_offset_and_no_key_comes_twice(
    occurred_at: str, answer: str, reason: str
) -> None:
    raw = (
        '{"version": 2, "event": "answered", "case_id": "c1",'
        f' "occurred_at": {occurred_at}, "answer": {answer}}}'
    )
    with pytest.raises(InboxEventError) as raised:
        parse_inbox_event(raw)
    assert raised.value.reason == reason
    assert "B" not in raised.value.detail or reason != "duplicate-json-key"


def test_an_event_time_with_an_offset_is_read_from_text_or_from_a_datetime() -> None:
    text = '"2026-11-25T09:00:00+01:00"'
    event = parse_inbox_event(
        '{"version": 2, "event": "answered", "case_id": "c1",'
        f' "occurred_at": {text}, "answer": {{"kind": "answer", "text": "x"}}}}'
    )
    assert event.occurred_at.isoformat() == "2026-11-25T09:00:00+01:00"
    again = parse_inbox_event(event.model_dump())  # built in code: a datetime passes
    assert again.occurred_at == event.occurred_at
