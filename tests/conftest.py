"""Shared fixtures: real servers for integration and end-to-end tests, isolated per run.

A server test skips locally when its server is absent, and fails in CI (``CI=true``), where
every server must be up. Each test gets its own queue prefix (and a session its own PostgreSQL
database), so runs on the same servers never see each other's messages or rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from producers.chaos.servers import RedisServer
    from workers.adapters.inbox_server import InboxSimulator
    from workers.adapters.sms_gateway_server import SmsGatewaySimulator
    from workers.adapters.smtp_sink import SmtpSink

_TEST_HOME = tempfile.mkdtemp(prefix="omvant-test-home-")
os.environ["OMVANT_HOME"] = str(Path(_TEST_HOME) / "omvant")
os.environ["XDG_DATA_HOME"] = _TEST_HOME
os.environ.setdefault("OMVANT_ANSWER_KEY", "Ht9nO2y7sJ5cS1o6n0mR8pC4xq3vL2kE9bW7aZ5uT1I=")
"""Tests never write to the real data folder (``~/.local/share/omvant``): the embedded default
lives in a temporary folder, also for subprocesses that drop the ``OMVANT_*`` variables."""

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("OMVANT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OMVANT_TEST_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("OMVANT_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2F")


def server_missing(what: str, error: Exception) -> None:
    """Skip locally; fail in CI, where every server must be up."""
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (its connections may be cut, which the shared one's must not
    be), stopped after the test; skipped (failed in CI) without the ``redis-server`` binary."""
    from producers.chaos.servers import RedisServer, ServerError

    try:
        server = RedisServer(tmp_path / "servers").start()
    except ServerError as exc:
        server_missing("redis-server (the binary, for a Redis of the test's own)", exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import psycopg

    name = f"omvant_t_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        server_missing("PostgreSQL", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def queue_prefix() -> str:
    """A queue-name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def redis_url(queue_prefix: str) -> Iterator[str]:
    """The Redis server; this test's queues are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        server_missing("Redis", exc)
    yield REDIS_URL
    keys = list(client.scan_iter(match=f"dramatiq:{queue_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def rabbitmq_url(queue_prefix: str) -> Iterator[str]:
    """The RabbitMQ server; this test's queues are deleted afterwards."""
    import pika
    import pika.exceptions

    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPError as exc:
        server_missing("RabbitMQ", exc)
    connection.close()
    yield RABBITMQ_URL
    from workers.queues import all_queues

    # a fresh connection: one left idle through a long test is closed by the broker
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    for queue in all_queues():
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(f"{queue_prefix}{queue}{suffix}")
    connection.close()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path}/omvant.db"


@pytest.fixture
def sms_simulator() -> Iterator[SmsGatewaySimulator]:
    """The shipped SMS-gateway simulator over HTTP on a free loopback port, for one test."""
    from workers.adapters.sms_gateway_server import SmsGatewaySimulator

    with SmsGatewaySimulator() as simulator:
        yield simulator


@pytest.fixture
def inbox_simulator() -> Iterator[InboxSimulator]:
    """The shipped inbox simulator over HTTP on a free loopback port, for one test."""
    from workers.adapters.inbox_server import InboxSimulator

    with InboxSimulator() as simulator:
        yield simulator


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives."""
    from workers.adapters.smtp_sink import SmtpSink

    sink = SmtpSink().start()
    yield sink
    sink.stop()
