"""No single message stops the intake: the five crashers of issue 10, and bodies as brokers
give them (text or bytes, any content encoding, compression), on RabbitMQ and on Redis.

Each hostile message is published with a plain client (pika, raw Redis commands), followed by a
valid case. The bridge must take the valid case, refuse each hostile one with its reason
(on the rejects queue and in ``rejected_messages``), and acknowledge everything.
"""

from __future__ import annotations

import bz2
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pika
import pytest
import redis
import sqlalchemy as sa

from workers.broker import build_broker
from workers.intake_bridge import IntakeBridge
from workers.intake_sources import open_source
from workers.settings import Settings
from workers.store.engine import make_engine, upgrade
from workers.store.schema import rejected_messages

pytestmark = pytest.mark.integration

SECRET = "journal-a-secret"
RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "19121212-1212",
}


def sig(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Case:
    """One message: body, headers, AMQP properties, and the reason it must get (None: taken)."""

    name: str
    body: bytes
    headers: dict[str, object]
    reason: str | None
    content_encoding: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def record(key: str, **changes: object) -> bytes:
    return json.dumps({**RECORD, "idempotency_key": key, **changes}).encode()


def signed(body: bytes, version: object = "1", **more: object) -> dict[str, object]:
    return {
        "omvant-key-id": "journal-a",
        "omvant-signature": sig(body),
        "omvant-contract-version": version,
        **more,
    }


def cases(run: str) -> list[Case]:
    plain = record(f"{run}plain")
    utf8 = record(f"{run}utf8", free_text="Hej Åsa, välkommen!")
    latin = record(f"{run}latin", free_text="Hej Åsa").decode().encode("latin-1")
    gz = zlib.compress(record(f"{run}gzip"))
    bz = bz2.compress(record(f"{run}bz2"))
    bomb = zlib.compress(b"[" + b" " * (40 * 1024 * 1024) + b"]")
    nul = record(f"{run}nul\x00key")
    nul_pnr = record(f"{run}nulpnr", personnummer="19121212\x00-1212")
    return [
        Case("empty body", b"", signed(b""), "malformed-message"),
        Case("content_encoding utf-8", utf8, signed(utf8), None, content_encoding="utf-8"),
        Case("content_encoding latin-1", latin, signed(latin), None, content_encoding="latin-1"),
        Case(
            "unknown content encoding",
            plain,
            signed(plain),
            "unsupported-content-encoding",
            content_encoding="x-klingon",
        ),
        Case(
            "unknown compression",
            gz,
            signed(gz, compression="application/x-bogus"),
            "unsupported-compression",
        ),
        Case("gzip compression", gz, signed(gz, compression="application/x-gzip"), None),
        Case("bzip2 compression", bz, signed(bz, compression="bzip2"), None),
        Case(
            "corrupt gzip", b"not gzip", signed(b"not gzip", compression="gzip"), "body-undecodable"
        ),
        Case("gzip bomb", bomb, signed(bomb, compression="gzip"), "message-too-large"),
        Case("version superscript two", plain, signed(plain, "²"), "unknown-contract-version"),
        Case(
            "version of 5000 digits", plain, signed(plain, "1" * 5000), "unknown-contract-version"
        ),
        Case("NUL in idempotency key", nul, signed(nul), "invalid-payload"),
        Case("NUL in personnummer", nul_pnr, signed(nul_pnr), "invalid-payload"),
        Case("unsigned", plain, {"omvant-contract-version": "1"}, "signature-missing"),
        Case(
            "signature not hex",
            plain,
            {**signed(plain), "omvant-signature": "zz\x00"},
            "signature-invalid",
        ),
    ]


def amqp_cases(run: str) -> list[Case]:
    """AMQP properties that are not UTF-8 (py-amqp raised on them while reading the frame, so
    the message came back first after every reconnect and stopped the door)."""
    body = record(f"{run}badprops")
    return [
        Case(
            "message_id not UTF-8",
            body,
            signed(body),
            "header-undecodable",
            extra={"message_id": b"ref-\xff\xfe-19121212-1212"},
        ),
        Case(
            "content_type not UTF-8, unsigned",
            body,
            {"omvant-contract-version": "1"},
            "header-undecodable",
            extra={"content_type": b"application/\xc3(json"},
        ),
        Case(
            "app_id and correlation_id not UTF-8",
            body,
            signed(body),
            "header-undecodable",
            extra={"app_id": b"\x80", "correlation_id": b"\xed\xa0\x80"},
        ),
        Case(
            "the producer's message id is kept as its reference",
            body,
            {**signed(body), "omvant-contract-version": "9"},
            "unknown-contract-version",
            extra={"message_id": "journal-msg-42"},
        ),
        Case(
            "unsigned, a message id of free text is redacted",
            body,
            {"omvant-contract-version": "1"},
            "signature-missing",
            extra={"message_id": "Anna has the flu"},
        ),
    ]


@pytest.fixture
def settings(postgres_url: str, queue_prefix: str) -> Settings:
    upgrade(postgres_url)
    return Settings(
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        intake_keys={"journal-a": SECRET},
        intake_max_body_bytes=1024 * 1024,
    )


def run_bridge(settings: Settings, url: str, expected: int) -> IntakeBridge:
    source = open_source(url, prefix=settings.queue_prefix)
    pipeline = build_broker(url)
    engine = make_engine(settings.database_url)
    bridge = IntakeBridge(source, settings=settings, broker=pipeline, engine=engine)
    try:
        deadline = time.monotonic() + 60
        handled = 0
        while handled < expected and time.monotonic() < deadline:
            handled += bridge.run_once(timeout=0.2)  # must never raise
        assert handled == expected
    finally:
        source.close()
        pipeline.close()
        engine.dispose()
    return bridge


def recorded(settings: Settings) -> list[str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(rejected_messages.c.reason).where(
                rejected_messages.c.queue == f"{settings.queue_prefix}omvant.intake"
            )
        ).scalars()
        reasons = sorted(rows)
    engine.dispose()
    return reasons


def check(bridge: IntakeBridge, rejects: list[dict[str, object]], run: list[Case]) -> None:
    wanted = sorted(c.reason for c in run if c.reason)
    assert sorted(str(r["reason"]) for r in rejects) == wanted
    assert bridge.counts.accepted == sum(1 for c in run if c.reason is None)
    for reject in rejects:  # nothing of a hostile body breaks the record's JSON
        assert "\x00" not in json.dumps(reject, ensure_ascii=False)


@pytest.fixture
def amqp(rabbitmq_url: str, queue_prefix: str) -> Iterator[pika.adapters.BlockingConnection]:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    yield connection
    channel = connection.channel()
    for name in ("omvant.intake", "omvant.intake.rejects"):
        channel.queue_delete(f"{queue_prefix}{name}")
    channel.exchange_delete(f"{queue_prefix}omvant.intake")
    connection.close()


def test_no_message_stops_the_amqp_intake(
    rabbitmq_url: str, queue_prefix: str, settings: Settings, amqp: pika.BlockingConnection
) -> None:
    open_source(rabbitmq_url, prefix=queue_prefix).close()
    channel = amqp.channel()
    channel.confirm_delivery()
    run = cases(queue_prefix)
    odd = amqp_cases(queue_prefix)
    run = [*run[:3], *odd, *run[3:]]  # valid cases behind the odd ones must still be taken
    for case in run:
        properties: dict[str, object] = {
            "content_type": "application/json",
            "content_encoding": case.content_encoding,
            "headers": case.headers,
            "delivery_mode": 2,
            **case.extra,
        }
        channel.basic_publish(
            exchange=f"{queue_prefix}omvant.intake",
            routing_key="journal-a.send-case",
            body=case.body,
            properties=pika.BasicProperties(**properties),  # type: ignore[arg-type]
        )
    bridge = run_bridge(settings, rabbitmq_url, len(run))
    rejects = []
    while True:
        _m, _p, body = channel.basic_get(f"{queue_prefix}omvant.intake.rejects", True)
        if body is None:
            break
        rejects.append(json.loads(body))
    check(bridge, rejects, run)
    assert recorded(settings) == sorted(c.reason for c in run if c.reason)
    frame = channel.queue_declare(f"{queue_prefix}omvant.intake", durable=True, passive=True)
    assert frame.method.message_count == 0  # everything acknowledged
    references = {r["reference"] for r in rejects}
    assert {"journal-msg-42", "Xxxx xxx xxx xxx"} <= references
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(rejected_messages.c.reference)).scalars())
    engine.dispose()
    assert {"journal-msg-42", "Xxxx xxx xxx xxx"} <= stored
    odd_rejects = [r for r in rejects if r["reason"] == "header-undecodable"]
    fields = sorted(str(r["error"]["field"]) for r in odd_rejects)  # type: ignore[index]
    assert fields == ["amqp-content-type", "amqp-correlation-id", "amqp-message-id"]
    by_field = {r["error"]["field"]: r for r in odd_rejects}  # type: ignore[index]
    signed_headers = by_field["amqp-message-id"]["headers"]
    assert "\\xff\\xfe" in signed_headers["amqp-message-id"]  # kept, escaped
    assert "19121212-1212" not in json.dumps(signed_headers)  # ... and masked
    unsigned = by_field["amqp-content-type"]
    assert unsigned["authenticated"] is False
    assert unsigned["headers"]["amqp-content-type"].startswith("<")  # by length only
    assert unsigned["headers"]["content-type"] == "b'application/\\xc3(json'"  # a read header


def test_no_message_stops_the_redis_intake(
    redis_url: str, queue_prefix: str, settings: Settings
) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = f"{queue_prefix}omvant.intake"
    try:
        open_source(redis_url, prefix=queue_prefix).close()
        run = cases(queue_prefix)
        for case in run:
            fields: dict[str, object] = {"body": case.body}
            fields.update(case.headers)
            if case.content_encoding:
                fields["content-encoding"] = case.content_encoding
            client.xadd(stream, fields)  # type: ignore[arg-type]
        bridge = run_bridge(settings, redis_url, len(run))
        entries = client.xrange(f"{stream}.rejects")
        check(bridge, [json.loads(f[b"body"]) for _i, f in entries], run)
        assert client.xlen(stream) == 0
        assert recorded(settings) == sorted(c.reason for c in run if c.reason)
    finally:
        client.delete(stream, f"{stream}.rejects")
        client.close()
