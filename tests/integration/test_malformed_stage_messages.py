"""Messages dramatiq itself cannot run leave a row in rejected_messages, never a silent *.XQ.

Published raw onto a stage queue of the real broker (pika; Redis HSET + RPUSH, as any
client could), next to a valid case: each hostile one must be recorded with its reason and
acknowledged, nothing may reach the dead-letter queue, no actor may run for another queue's
message, and the valid case must settle.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pika
import pika.exceptions
import pytest
import redis
import sqlalchemy as sa

from contracts.registry import envelope_for
from contracts.send_case import SendCaseV2
from producers.demo import start_pipeline, wait_for
from workers.broker import dead_letter_count
from workers.message_guard import UNREADABLE_ACTOR
from workers.queues import all_queues, queue_name
from workers.settings import Settings
from workers.store.schema import cases, rejected_messages

pytestmark = pytest.mark.integration


def request_for(prefix: str) -> SendCaseV2:
    return SendCaseV2(
        clinic_hsa_id="SE2321000016-VC01",
        sender_hsa_id="SE2321000016-S101",
        template_id="meddelande-till-invanare",
        personnummer="19121212-1212",
        idempotency_key=f"{prefix}stage-guard-valid",
    )


def message(queue: str, actor: str, args: list[object], **more: object) -> dict[str, object]:
    return {
        "queue_name": queue,
        "actor_name": actor,
        "args": args,
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
        **more,
    }


def hostile(prefix: str) -> list[tuple[bytes, str]]:
    """(raw message, the reason it must be recorded with) for the intake stage's queue."""
    q = queue_name("recipient-validation", prefix)
    envelope = envelope_for([request_for(prefix)]).model_dump(mode="json")
    composed = {**envelope, "contract": "RecipientValidated"}
    full = message(q, "validate_recipients", [envelope])
    missing = {k: v for k, v in full.items() if k != "args"}

    def raw(value: object) -> bytes:
        return json.dumps(value).encode()

    return [
        (b"not json at all", "malformed-message"),
        (b"[1, 2, 3]", "malformed-message"),
        (b"\xff\xfe\x00{", "malformed-message"),
        (b"[" * 200_000, "malformed-message"),
        (raw(missing), "malformed-message"),
        (raw({**full, "surprise": 1}), "malformed-message"),
        (raw(message(q, "drop_all_tables", [envelope])), "unknown-actor"),
        (raw(message(q, "compose_messages", [composed])), "wrong-queue"),
        (
            raw(
                message(
                    queue_name("message-composition", prefix), "validate_recipients", [envelope]
                )
            ),
            "wrong-queue",
        ),
        (raw(message(q, UNREADABLE_ACTOR, [1, 2])), "malformed-message"),
        (
            raw(
                message(
                    q,
                    "validate_recipients",
                    ["not an envelope"],
                    options={"max_retries": 10**9, "pipe_target": {"actor_name": "x"}},
                )
            ),
            "malformed-message",
        ),
    ]


def publish_rabbitmq(url: str, queue: str, bodies: list[bytes]) -> None:
    # dramatiq declares its queues when its consumers start: a message published before that
    # would be dropped by the default exchange
    deadline = time.monotonic() + 60
    while True:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            connection.channel().queue_declare(queue, passive=True)
            break
        except pika.exceptions.ChannelClosedByBroker:
            connection.close()
            assert time.monotonic() < deadline, f"{queue} was never declared"
            time.sleep(0.2)
    channel = connection.channel()
    for body in bodies:
        channel.basic_publish("", queue, body)
    connection.close()


def publish_redis(url: str, queue: str, bodies: list[bytes]) -> None:
    client = redis.Redis.from_url(url)
    for body in bodies:
        entry = str(uuid.uuid4())
        client.hset(f"dramatiq:{queue}.msgs", entry, body)
        client.rpush(f"dramatiq:{queue}", entry)
    client.close()


PUBLISH: dict[str, Callable[[str, str, list[bytes]], None]] = {
    "rabbitmq": publish_rabbitmq,
    "redis": publish_redis,
}


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, str(request.getfixturevalue(f"{request.param}_url"))


def test_every_unrunnable_message_leaves_a_row_and_none_reaches_the_dead_letter_queue(
    broker: tuple[str, str], postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    kind, url = broker
    settings = Settings(
        broker_url=url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        max_retries=1,
    )
    pipeline = start_pipeline(settings, threads=2)
    try:
        intake = queue_name("recipient-validation", queue_prefix)
        request = request_for(queue_prefix)
        run = hostile(queue_prefix)
        valid = json.dumps(
            message(
                intake, "validate_recipients", [envelope_for([request]).model_dump(mode="json")]
            )
        ).encode()
        PUBLISH[kind](url, intake, [b for b, _r in run] + [valid])

        def recorded() -> Counter[str]:
            with pipeline.ctx.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(rejected_messages.c.reason).where(rejected_messages.c.queue == intake)
                ).scalars()
                return Counter(rows)

        wanted = Counter(r for _b, r in run)
        wait_for(lambda: sum(recorded().values()), sum(wanted.values()), timeout=60)
        assert recorded() == wanted

        def settled() -> int:
            with pipeline.ctx.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            cases.c.id == request.resolved_case_id(),
                            cases.c.state.in_(["notified", "rejected", "delivered", "read"]),
                        )
                    ).scalar_one()
                )

        assert wait_for(settled, 1, timeout=60) == 1
        queues = [queue_name(q, queue_prefix) for q in all_queues()]
        assert dead_letter_count(pipeline.ctx.broker, queues) == 0
        if kind == "redis":  # every entry acknowledged: none runs again after a restart
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 30
            while (left := client.hlen(f"dramatiq:{intake}.msgs")) and time.monotonic() < deadline:
                time.sleep(0.2)
            client.close()
            assert left == 0
    finally:
        pipeline.stop()
