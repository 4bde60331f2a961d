"""The fuzz suite that stays: a hostile corpus through every entrance of real processes.

``omvant worker``, ``omvant intake`` and ``omvant inbox-events`` run as processes against the
real broker (RabbitMQ, then Redis) and PostgreSQL. The corpus (``tests/e2e/fuzz_corpus.py``,
generated from a seed, valid cases mixed in) is published to the intake door of the broker (the
AMQP exchange, or the Redis stream), onto the stage queues (raw, as any client could), and to
the inbox's exchange. Asserted: no process exits or reports a failure it had to wait out, every
hostile message is recorded in ``rejected_messages`` with the reason its category must get,
every valid case settles, nothing reaches a dead-letter queue.

Small in CI (``FUZZ_MESSAGES``, default 240 per broker); by hand ``FUZZ_MESSAGES=5000``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
import redis
import sqlalchemy as sa

from tests.e2e.fuzz_corpus import CLINICS, KEYS, Item, build
from tests.e2e.harness import OMVANT, WorkerProcess, wait_until, worker_env
from workers.broker import build_broker, dead_letter_count
from workers.queues import all_queues, queue_name
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases, rejected_messages

pytestmark = pytest.mark.e2e

MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "240"))
SETTLED = ("notified", "delivered", "rejected", "read", "failed")


class Process:
    """One ``omvant`` command as a process, its output in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [OMVANT, *argv],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._out.close()


def _redis_value(value: object) -> bytes | str | int | float:
    if isinstance(value, bytes | str | int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value, default=str)


def publish_intake(kind: str, url: str, prefix: str, items: list[Item]) -> None:
    if kind == "rabbitmq":
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for item in items:
            channel.basic_publish(
                f"{prefix}omvant.intake",
                "fuzz.send-case",
                item.body,
                pika.BasicProperties(
                    content_type="application/json",
                    content_encoding=item.content_encoding,
                    headers=item.headers,
                    delivery_mode=2,
                ),
            )
        connection.close()
        return
    client = redis.Redis.from_url(url)
    for item in items:
        fields: dict[str, object] = {"body": item.body}
        fields.update({k: _redis_value(v) for k, v in item.headers.items()})
        if item.content_encoding:
            fields["content-encoding"] = item.content_encoding
        client.xadd(f"{prefix}omvant.intake", fields)  # type: ignore[arg-type]
    client.close()


def publish_stage(kind: str, url: str, prefix: str, items: list[Item]) -> None:
    if kind == "rabbitmq":
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for item in items:
            channel.basic_publish("", f"{prefix}{item.queue}", item.body)
        connection.close()
        return
    client = redis.Redis.from_url(url)
    for n, item in enumerate(items):
        entry = f"fuzz-{n}-{time.monotonic_ns()}"
        client.hset(f"dramatiq:{prefix}{item.queue}.msgs", entry, item.body)
        client.rpush(f"dramatiq:{prefix}{item.queue}", entry)
    client.close()


def publish_inbox(url: str, prefix: str, items: list[Item]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for item in items:
        channel.basic_publish(
            f"{prefix}omvant.inbox-events",
            "inbox.opened",
            item.body,
            pika.BasicProperties(headers=item.headers or None),
        )
    connection.close()


def queue_exists(url: str, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        connection.close()


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def amqp_cleanup(rabbitmq_url: str, queue_prefix: str) -> Iterator[None]:
    yield
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    for name in ("omvant.intake", "omvant.intake.rejects", "inbox-events"):
        channel.queue_delete(f"{queue_prefix}{name}")
    for name in ("omvant.intake", "omvant.inbox-events"):
        channel.exchange_delete(f"{queue_prefix}{name}")
    connection.close()


def test_the_entrances_survive_a_hostile_corpus_and_settle_every_valid_case(
    broker: tuple[str, str],
    rabbitmq_url: str,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
    amqp_cleanup: None,
) -> None:
    kind, url = broker
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    items = build(queue_prefix, queue_prefix, MESSAGES, inbox=True)
    env = worker_env(
        broker_url=url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        extra={
            "OMVANT_INTAKE_KEYS": json.dumps(KEYS),
            "OMVANT_INTAKE_CLINICS": json.dumps(CLINICS),
            "OMVANT_INTAKE_MAX_BODY_BYTES": str(1024 * 1024),
            "OMVANT_INBOX_EVENTS_URL": rabbitmq_url,
            "OMVANT_LOG_LEVEL": "WARNING",
        },
    )
    started = time.monotonic()
    worker = WorkerProcess(env, [], tmp_path / "worker.log", threads=4)
    intake = Process(["intake"], env, tmp_path / "intake.log")
    inbox = Process(["inbox-events"], env, tmp_path / "inbox.log")
    processes = {"worker": worker, "intake": intake, "inbox-events": inbox}
    try:
        # the processes declare their queues: publish once they have
        intake_queue = f"{queue_prefix}omvant.intake"
        ready = {
            "inbox-events": lambda: queue_exists(rabbitmq_url, f"{queue_prefix}inbox-events"),
            "intake": (lambda: queue_exists(url, intake_queue))
            if kind == "rabbitmq"
            else (lambda: bool(redis.Redis.from_url(url).exists(intake_queue))),
        }
        if kind == "rabbitmq":
            stage_queues = {f"{queue_prefix}{i.queue}" for i in items if i.door == "stage"}
            ready["worker"] = lambda: all(queue_exists(url, q) for q in stage_queues)
        else:
            ready["worker"] = lambda: True  # Redis queues are keys: they wait for the worker
        for name, check in ready.items():
            assert wait_until(check, timeout=90), f"{name} did not start"
        by_door: dict[str, list[Item]] = {"intake": [], "stage": [], "inbox": []}
        for item in items:
            by_door[item.door].append(item)
        publish_intake(kind, url, queue_prefix, by_door["intake"])
        publish_stage(kind, url, queue_prefix, by_door["stage"])
        publish_inbox(rabbitmq_url, queue_prefix, by_door["inbox"])

        wanted = Counter(i.reason for i in items if i.reason)
        keys = {k for i in items for k in i.case_keys}

        def recorded() -> Counter[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(rejected_messages.c.reason).where(
                        rejected_messages.c.queue.startswith(queue_prefix)
                    )
                ).scalars()
                return Counter(rows)

        def settled() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            cases.c.idempotency_key.in_(keys), cases.c.state.in_(SETTLED)
                        )
                    ).scalar_one()
                )

        done = wait_until(
            lambda: recorded().total() >= wanted.total() and settled() >= len(keys),
            timeout=240,
        )
        elapsed = time.monotonic() - started
        got = recorded()
        logs = "\n".join(f"--- {n}\n{p.output()[-2000:]}" for n, p in processes.items())
        assert done, (
            f"recorded {got.total()}/{wanted.total()}, settled {settled()}/{len(keys)}; "
            f"missing {wanted - got}, unexpected {got - wanted}\n{logs}"
        )
        assert got == wanted, (got - wanted, wanted - got)
        assert settled() == len(keys)
        with engine.connect() as conn:
            made = conn.execute(
                sa.select(sa.func.count()).where(cases.c.idempotency_key.contains(queue_prefix))
            ).scalar_one()
        assert made == len(keys)  # the replayed message made no second case
        for name, process in processes.items():
            assert process.alive(), f"{name} exited\n{logs}"
        assert "waits after a failure" not in intake.output() + inbox.output(), logs
        queues = [queue_name(q, queue_prefix) for q in all_queues()]
        assert dead_letter_count(build_broker(url), queues) == 0
        categories = Counter(i.category for i in items)
        print(
            json.dumps(
                {
                    "broker": kind,
                    "messages": len(items),
                    "hostile": wanted.total(),
                    "valid_cases": len(keys),
                    "seconds": round(elapsed, 1),
                    "categories": len(categories),
                    "reasons": dict(got),
                }
            )
        )
    finally:
        for process in processes.values():
            process.stop()
        if kind == "redis":
            client = redis.Redis.from_url(url)
            client.delete(f"{queue_prefix}omvant.intake", f"{queue_prefix}omvant.intake.rejects")
            client.close()
        engine.dispose()
