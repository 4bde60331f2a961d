"""A dispatch's chunks through the publish window on the real brokers: every chunk arrives once
and whole, the batch counts what the broker holds; on RabbitMQ a queue that refuses publishes
in the middle of a dispatch (a length limit that rejects) leaves the count at what it took."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from dramatiq.errors import ConnectionClosed

from contracts.registry import parse
from producers.client import OmvantClient, Recipient
from workers.actors import declare_actors
from workers.adapters import population
from workers.broker import build_broker, queue_depth
from workers.queues import Queues, lane_queue, queue_name
from workers.settings import Settings
from workers.store import batches
from workers.store.engine import upgrade

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"


def dispatch(client: OmvantClient, batch_id: str, count: int, **options: Any) -> Any:
    return client.dispatch(
        [Recipient(n, {"namn": "Test"}) for n in population.draw_residents(count, seed=5)],
        template_id="kallelse-screening",
        clinic_hsa_id=CLINIC,
        sender_hsa_id=SENDER,
        total=count,
        batch_id=batch_id,
        chunk_size=100,
        **options,
    )


def bulk_queue(prefix: str, lane: int) -> str:
    return queue_name(lane_queue(Queues.RECIPIENT_VALIDATION, f"bulk-{lane}"), prefix)


def drain(broker: Any, name: str) -> list[dict[str, Any]]:
    """Every message body on queue ``name``, taken off it."""
    envelopes = []
    consumer = broker.consume(name, prefetch=50, timeout=500)
    idle = 0
    for proxy in consumer:
        if proxy is None:
            idle += 1
            if idle > 4:
                break
            continue
        idle = 0
        envelopes.append(proxy.args[0])
        consumer.ack(proxy)
    consumer.close()
    return envelopes


@pytest.mark.parametrize("broker_fixture", ["rabbitmq_url", "redis_url"])
def test_every_chunk_arrives_once_and_whole_and_the_batch_counts_them(
    broker_fixture: str, request: pytest.FixtureRequest, queue_prefix: str, tmp_path: Path
) -> None:
    url = request.getfixturevalue(broker_fixture)
    database = f"sqlite:///{tmp_path / 'omvant.db'}"
    upgrade(database)
    settings = Settings(broker_url=url, database_url=database, queue_prefix=queue_prefix)
    heard: list[int] = []
    with OmvantClient(settings) as client:
        batch = dispatch(client, "window-whole", 3_050, progress=heard.append)
        broker = build_broker(url)
        declare_actors(broker, lambda: None, prefix=queue_prefix)  # type: ignore[arg-type, return-value]
        envelopes = drain(broker, bulk_queue(queue_prefix, batch.lane))
        broker.close()
    assert batch.enqueued == batch.total == 3_050 == sum(heard)
    assert len(envelopes) == 31
    keys = [item.idempotency_key for e in envelopes for item in parse(e).items]
    assert sorted(keys) == sorted(f"window-whole:{i}" for i in range(3_050))
    for envelope in envelopes:
        parsed = parse(envelope)
        assert parsed.envelope.case_ids == [item.resolved_case_id() for item in parsed.items]


@pytest.fixture
def rabbitmqctl() -> str:
    found = shutil.which("rabbitmqctl")
    if found is None:
        pytest.skip("rabbitmqctl is not installed")
    return found


def test_a_rabbitmq_queue_refusing_publishes_midway_leaves_the_count_at_what_it_took(
    rabbitmq_url: str, rabbitmqctl: str, queue_prefix: str, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'omvant.db'}"
    upgrade(database)
    settings = Settings(broker_url=rabbitmq_url, database_url=database, queue_prefix=queue_prefix)
    policy = f"omvant-test-{uuid.uuid4().hex[:8]}"
    pattern = "^" + queue_prefix.replace(".", r"\.") + r"recipient-validation\.bulk-"
    subprocess.run(
        [
            rabbitmqctl,
            "set_policy",
            policy,
            pattern,
            '{"max-length": 3, "overflow": "reject-publish"}',
            "--apply-to",
            "queues",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        with OmvantClient(settings) as client:
            with pytest.raises(ConnectionClosed):  # dramatiq's retries of the nacked publish
                dispatch(client, "window-refused", 1_000)
            with client.engine.connect() as conn:
                batch = batches.get(conn, "window-refused")
                finished = batches.progress(conn, batch)["finished"]
            held = queue_depth(client.broker, bulk_queue(queue_prefix, batch.lane))
            clear_policy(rabbitmqctl, policy)
            # the same client again: nothing of the failed dispatch counts for this one
            after = dispatch(client, "window-after", 450)
            with client.engine.connect() as conn:
                first = batches.get(conn, "window-refused")
    finally:
        clear_policy(rabbitmqctl, policy)
    assert held == 3
    assert batch.enqueued == 300  # what the broker took, not a case more or less
    assert not finished
    assert after.enqueued == after.total == 450
    assert first.enqueued == 300


def clear_policy(rabbitmqctl: str, policy: str) -> None:
    subprocess.run(
        [rabbitmqctl, "clear_policy", policy], check=False, capture_output=True, timeout=60
    )
