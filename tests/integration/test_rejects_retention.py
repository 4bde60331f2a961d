"""Rejects are kept for the retention and then purged: rows, the rejects queue and stream."""

from __future__ import annotations

import datetime as dt
import json

import pika
import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from workers import rejections
from workers.intake_sources import open_source
from workers.store.engine import make_engine
from workers.store.schema import rejected_messages

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)
OLD = NOW - dt.timedelta(days=40)


def reject(at: dt.datetime) -> bytes:
    return json.dumps({"reason": "signature-missing", "rejected_at": at.isoformat()}).encode()


def seed_rows(url: str, queue: str) -> None:
    engine = migrated_engine(url)
    with engine.begin() as conn:
        for at in (OLD, OLD, NOW):
            rejections.record(
                conn, queue=queue, reason="malformed-message", detail="x", kept=None, at=at
            )
    engine.dispose()


def rows_left(url: str, queue: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(rejected_messages.c.queue == queue)
        ).scalar_one()
    engine.dispose()
    return int(count)


def purge(broker: str, database: str, prefix: str) -> dict[str, int]:
    result = CliRunner().invoke(
        app,
        ["rejects", "purge", "--broker", broker, "--database", database, "--json"],
        env={"OMVANT_QUEUE_PREFIX": prefix, "OMVANT_REJECT_RETENTION_DAYS": "30"},
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_purge_drops_old_rejects_from_the_rabbitmq_queue_and_the_table(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str
) -> None:
    queue = f"{queue_prefix}omvant.intake"
    seed_rows(postgres_url, queue)
    open_source(rabbitmq_url, prefix=queue_prefix).close()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    rejects = f"{queue_prefix}omvant.intake.rejects"
    try:
        for at in (OLD, OLD, OLD, NOW, OLD):  # the last old one is behind a young one: stays
            channel.basic_publish("", rejects, reject(at))
        counts = purge(rabbitmq_url, postgres_url, queue_prefix)
        assert counts["rows"] >= 2 and counts["queued"] == 3
        assert rows_left(postgres_url, queue) == 1
        left = channel.queue_declare(rejects, durable=True, passive=True).method.message_count
        assert left == 2
    finally:
        for name in ("omvant.intake", "omvant.intake.rejects"):
            channel.queue_delete(f"{queue_prefix}{name}")
        channel.exchange_delete(f"{queue_prefix}omvant.intake")
        connection.close()


def test_purge_trims_old_entries_from_the_redis_rejects_stream(
    redis_url: str, postgres_url: str, queue_prefix: str
) -> None:
    queue = f"{queue_prefix}omvant.intake"
    seed_rows(postgres_url, queue)
    client = redis.Redis.from_url(redis_url)
    stream = f"{queue_prefix}omvant.intake.rejects"
    try:
        old_ms = int(OLD.timestamp() * 1000)
        for n in range(3):
            client.xadd(stream, {"body": reject(OLD)}, id=f"{old_ms}-{n}")
        client.xadd(stream, {"body": reject(NOW)})
        counts = purge(redis_url, postgres_url, queue_prefix)
        assert counts["queued"] == 3
        assert client.xlen(stream) == 1
        assert rows_left(postgres_url, queue) == 1
    finally:
        client.delete(stream, f"{queue_prefix}omvant.intake")
        client.close()
