"""The bridges outlive an outage and any inbox event: they wait, reconnect and lose nothing.

The database is made unreachable by pointing the bridge at a port nothing listens on, then put
back; the bridge must keep running (never raise out of ``run``), and every message must be
handled once the database is back.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa

from workers.actors import declare_actors
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.inbox_events_bridge import InboxEventsBridge, exchange_name
from workers.intake_bridge import IntakeBridge, sign
from workers.intake_sources import open_source
from workers.settings import Settings
from workers.store.engine import make_engine, upgrade
from workers.store.schema import rejected_messages

pytestmark = pytest.mark.integration

DEAD_DATABASE = "postgresql://postgres@127.0.0.1:1/nothing"


def wait_until(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def ctx(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> Iterator[Context]:
    upgrade(postgres_url)
    settings = Settings(
        broker_url=rabbitmq_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        intake_keys={"journal-a": "s3cret"},
    )
    broker = build_broker(rabbitmq_url)
    context = build_context(settings, broker)
    declare_actors(broker, lambda: context, prefix=queue_prefix)
    yield context
    with kombu.Connection(rabbitmq_url) as conn:
        channel = conn.default_channel
        for name in ("inbox-events", "omvant.intake", "omvant.intake.rejects"):
            channel.queue_delete(f"{queue_prefix}{name}")
        channel.exchange_delete(exchange_name(settings))
        channel.exchange_delete(f"{queue_prefix}omvant.intake")
    broker.close()
    context.engine.dispose()


def reasons(engine: sa.Engine, queue: str) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(rejected_messages.c.reason).where(rejected_messages.c.queue == queue)
        ).scalars()
        return Counter(rows)


def hostile_events() -> list[tuple[bytes, dict[str, object], str | None]]:
    """(body, properties, reason) of inbox events no bridge may stop on."""
    event = json.dumps(
        {
            "version": 1,
            "event": "opened",
            "case_id": f"c-{uuid.uuid4().hex[:8]}",
            "occurred_at": "2026-11-25T08:00:00Z",
        }
    ).encode()
    return [
        (b"", {}, "malformed-message"),
        (b"\xff\xfe not text", {}, "malformed-message"),
        (b"[" * 100_000, {}, "malformed-message"),
        (event.replace(b'"opened"', b'"op\\u0000ened"'), {}, "invalid-payload"),
        (event, {"content_encoding": "x-klingon"}, "unsupported-content-encoding"),
        (event, {"headers": {"compression": "application/x-bogus"}}, "unsupported-compression"),
        (
            zlib.compress(b" " * (8 * 1024 * 1024)),
            {"headers": {"compression": "gzip"}},
            "message-too-large",
        ),
        (
            zlib.compress(event),
            {"headers": {"compression": "gzip"}, "content_encoding": "utf-8"},
            "unknown-case",
        ),  # readable: an event for a case Omvänt does not know
        (event, {"content_encoding": "utf-8"}, "unknown-case"),
    ]


def test_the_inbox_events_bridge_waits_out_a_database_outage_and_reads_every_event(
    ctx: Context, rabbitmq_url: str
) -> None:
    good_engine = ctx.engine
    ctx.engine = make_engine(DEAD_DATABASE)
    bridge = InboxEventsBridge(ctx, rabbitmq_url, chunk_size=50, linger=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert bridge.ready.wait(15)
        events = hostile_events()
        with kombu.Connection(rabbitmq_url) as conn:
            producer = conn.Producer()
            for body, props, _reason in events:
                producer.publish(
                    body,
                    exchange=exchange_name(ctx.settings),
                    routing_key="inbox.opened",
                    headers=props.get("headers") or {},
                    content_type="application/json",
                    content_encoding=props.get("content_encoding") or "binary",
                    serializer=None,
                )
        assert wait_until(lambda: bridge.outages >= 2), "the database outage was never met"
        assert thread.is_alive()
        ctx.engine = good_engine  # the database is back
        wanted = Counter(r for _b, _p, r in events if r and r != "unknown-case")
        queue = f"{ctx.settings.queue_prefix}inbox-events"
        assert wait_until(lambda: reasons(good_engine, queue) == wanted, timeout=60), reasons(
            good_engine, queue
        )
        assert wait_until(lambda: bridge.forwarded.receipts >= 2)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=20)


def test_the_intake_bridge_waits_out_a_database_outage_and_loses_nothing(
    ctx: Context, rabbitmq_url: str
) -> None:
    settings = ctx.settings
    source = open_source(rabbitmq_url, prefix=settings.queue_prefix)
    dead = make_engine(DEAD_DATABASE)
    bridge = IntakeBridge(source, settings=settings, broker=ctx.broker, engine=dead)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    try:
        record = {
            "clinic_hsa_id": "SE2321000016-VC01",
            "sender_hsa_id": "SE2321000016-S101",
            "template_id": "meddelande-till-invanare",
            "personnummer": "19121212-1212",
            "idempotency_key": f"{settings.queue_prefix}outage",
        }
        good = json.dumps(record).encode()
        bad = b"{not json"
        with kombu.Connection(rabbitmq_url) as conn:
            producer = conn.Producer()
            for body in (good, bad):
                producer.publish(
                    body,
                    exchange=f"{settings.queue_prefix}omvant.intake",
                    routing_key="journal-a.send-case",
                    headers={
                        "omvant-key-id": "journal-a",
                        "omvant-signature": sign(body, "s3cret"),
                        "omvant-contract-version": "1",
                    },
                    serializer=None,
                    content_type="application/json",
                )
        assert wait_until(lambda: bridge.counts.outages >= 2), "the outage was never met"
        assert thread.is_alive()
        bridge.engine = ctx.engine  # the database is back
        assert wait_until(lambda: bridge.counts.accepted == 1 and bridge.counts.rejected == 1)
        assert reasons(ctx.engine, f"{settings.queue_prefix}omvant.intake") == Counter(
            {"malformed-message": 1}
        )
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=40)
        source.close()
        dead.dispose()
