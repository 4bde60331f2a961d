"""Producers in any language reach the pipeline through the intake; bad messages land in rejects.

The producer side uses plain pika and raw Redis commands: no Omvänt code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator

import pika
import pytest
import redis
import sqlalchemy as sa

from producers.demo import start_pipeline, wait_for
from workers.broker import build_broker
from workers.intake_bridge import IntakeBridge
from workers.intake_sources import open_source
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases

pytestmark = pytest.mark.integration

SECRET = "journal-a-secret"
GOOD_V1 = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "fragments": ["halsning"],
    "personnummer": "19121212-1212",
    "idempotency_key": "journal-a:4711",
}
GOOD_V2 = [
    {**GOOD_V1, "idempotency_key": "journal-a:4712", "fields": {"namn": "Tolvan"}},
    {**GOOD_V1, "idempotency_key": "journal-a:4713", "priority": "urgent"},
]


def signed(body: bytes, *, key_id: str = "journal-a", secret: str = SECRET) -> dict[str, str]:
    return {
        "omvant-key-id": key_id,
        "omvant-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def messages(run: str = "") -> list[tuple[bytes, dict[str, str], str | None]]:
    """(body, headers, expected reject reason or None); ``run`` keeps keys apart per test."""
    v1 = json.dumps({**GOOD_V1, "idempotency_key": run + GOOD_V1["idempotency_key"]}).encode()
    v2 = json.dumps(
        [{**r, "idempotency_key": run + str(r["idempotency_key"])} for r in GOOD_V2]
    ).encode()
    bad_clinic = json.dumps({**GOOD_V1, "clinic_hsa_id": "not-an-hsa-id"}).encode()
    not_json = b'{"clinic_hsa_id": '
    return [
        (v1, {**signed(v1), "omvant-contract-version": "1"}, None),
        (v2, {**signed(v2), "omvant-contract-version": "2"}, None),
        (v1, {**signed(v1), "omvant-contract-version": "1"}, None),  # the same key again
        (v1, {"omvant-contract-version": "1"}, "signature-missing"),
        (v1, {**signed(v1, secret="guessed"), "omvant-contract-version": "1"}, "signature-invalid"),
        (v1, {**signed(v1, key_id="nobody"), "omvant-contract-version": "1"}, "unknown-key-id"),
        (not_json, {**signed(not_json), "omvant-contract-version": "1"}, "malformed-message"),
        (bad_clinic, {**signed(bad_clinic), "omvant-contract-version": "1"}, "invalid-payload"),
        (v2, signed(v2), "contract-version-missing"),
    ]


@pytest.fixture
def settings_for(postgres_url: str, queue_prefix: str) -> Callable[[str], Settings]:
    def make(broker_url: str) -> Settings:
        return Settings(
            broker_url=broker_url,
            database_url=postgres_url,
            queue_prefix=queue_prefix,
            intake_keys={"journal-a": SECRET},
        )

    return make


def run_bridge_and_pipeline(settings: Settings, published: int) -> tuple[IntakeBridge, int]:
    # the cases of this run: its keys start with the run's queue prefix
    """Run the bridge until every message is handled, then the pipeline to the end."""
    upgrade(settings.database_url)
    pipeline = start_pipeline(settings, threads=4)
    source = open_source(settings.broker_url, prefix=settings.queue_prefix)
    to_pipeline = build_broker(settings.broker_url)
    engine = make_engine(settings.database_url)
    bridge = IntakeBridge(source, settings=settings, broker=to_pipeline, engine=engine)
    try:
        deadline = time.monotonic() + 30
        handled = 0
        while handled < published and time.monotonic() < deadline:
            handled += bridge.run_once(timeout=0.2)
        assert handled == published

        def settled() -> int:  # delivered counts once none of its notices is open
            with engine.connect() as conn:
                ids = conn.execute(
                    sa.select(cases.c.id).where(
                        cases.c.idempotency_key.startswith(f"journal-a/{settings.queue_prefix}")
                    )
                ).scalars()
                return notifications.count_settled(conn, case_ids=list(ids))

        done = wait_for(settled, 3, timeout=30)
        with engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count())
                .select_from(cases)
                .where(cases.c.idempotency_key.startswith(f"journal-a/{settings.queue_prefix}"))
            ).scalar_one()
        assert done == 3
        return bridge, int(total)
    finally:
        source.close()
        to_pipeline.close()
        engine.dispose()
        pipeline.stop()


def check_rejects(rejects: list[dict[str, object]]) -> None:
    expected = {reason for _b, _h, reason in messages() if reason}
    assert len(rejects) == len(expected)
    assert {r["reason"] for r in rejects} == expected
    by_reason = {str(r["reason"]): r for r in rejects}
    invalid = by_reason["invalid-payload"]
    assert invalid["error"] == {
        "field": "clinic_hsa_id",
        "rule": "string_pattern_mismatch",
        "message": "String should match pattern '^SE[0-9]{10}-[A-Za-z0-9]{1,31}$'",
    }
    assert json.loads(str(invalid["body"]))["clinic_hsa_id"] == "not-an-hsa-id"
    assert by_reason["malformed-message"]["body"] == '{"clinic_hsa_id": '
    assert "omvant-signature" not in by_reason["signature-invalid"]["headers"]  # type: ignore[operator]


@pytest.fixture
def amqp_cleanup(rabbitmq_url: str, queue_prefix: str) -> Iterator[None]:
    yield
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    for name in ("omvant.intake", "omvant.intake.rejects"):
        channel.queue_delete(f"{queue_prefix}{name}")
    channel.exchange_delete(f"{queue_prefix}omvant.intake")
    connection.close()


def test_plain_pika_producer_reaches_the_pipeline_and_bad_messages_land_in_rejects(
    rabbitmq_url: str,
    queue_prefix: str,
    settings_for: Callable[[str], Settings],
    amqp_cleanup: None,
) -> None:
    settings = settings_for(rabbitmq_url)
    # the bridge declares the exchange and queues; then a plain pika producer publishes
    open_source(rabbitmq_url, prefix=queue_prefix).close()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.confirm_delivery()
    batch = messages(queue_prefix)
    for body, headers, _reason in batch:
        channel.basic_publish(
            exchange=f"{queue_prefix}omvant.intake",
            routing_key="journal-a.send-case",
            body=body,
            properties=pika.BasicProperties(
                content_type="application/json", headers=headers, delivery_mode=2
            ),
        )
    bridge, total = run_bridge_and_pipeline(settings, len(batch))
    assert total == 3  # the repeated key made no second case
    assert bridge.counts.duplicates == 1
    rejects = []
    for _ in range(len(batch)):
        _method, _props, body = channel.basic_get(f"{queue_prefix}omvant.intake.rejects", True)
        if body is None:
            break
        rejects.append(json.loads(body))
    connection.close()
    check_rejects(rejects)


def test_raw_redis_producer_reaches_the_pipeline_and_bad_messages_land_in_rejects(
    redis_url: str, queue_prefix: str, settings_for: Callable[[str], Settings]
) -> None:
    settings = settings_for(redis_url)
    client = redis.Redis.from_url(redis_url)
    stream = f"{queue_prefix}omvant.intake"
    try:
        open_source(redis_url, prefix=queue_prefix).close()
        batch = messages(queue_prefix)
        for body, headers, _reason in batch:
            fields: list[bytes | str] = []
            for name, value in headers.items():
                fields += [name, value]
            client.execute_command("XADD", stream, "*", "body", body, *fields)
        bridge, total = run_bridge_and_pipeline(settings, len(batch))
        assert total == 3
        assert bridge.counts.duplicates == 1
        entries = client.xrange(f"{queue_prefix}omvant.intake.rejects")
        check_rejects([json.loads(fields[b"body"]) for _id, fields in entries])
        assert client.xlen(stream) == 0
    finally:
        client.delete(stream, f"{queue_prefix}omvant.intake.rejects")
        client.close()
