"""``OMVANT_RABBITMQ_QUORUM=true``: the pipeline runs on RabbitMQ quorum queues.

The queues' type is checked through the protocol itself: re-declaring a quorum queue as a
classic queue is refused by RabbitMQ (PRECONDITION_FAILED), and declaring it again with the
quorum arguments is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pika
import pika.exceptions
import pytest
import sqlalchemy as sa

from producers.scenario import build_dispatch, store_sample_files
from tests.e2e.harness import push_file, running_workers, wait_until, worker_env
from workers.adapters.blobs import FilesystemBlobStore
from workers.broker import DEFAULT_DELIVERY_LIMIT, BrokerUrlError, quorum_from_environment
from workers.queues import Queues, all_queues, queue_name
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases

CASES = 60


def queue_type_is_quorum(url: str, name: str) -> bool:
    """Whether RabbitMQ refuses to see queue ``name`` as a classic queue."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"})
        except pika.exceptions.ChannelClosedByBroker as refused:
            return refused.reply_code == 406
        return False
    finally:
        if connection.is_open:
            connection.close()


@pytest.mark.e2e
def test_the_pipeline_runs_on_quorum_queues(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    upgrade(postgres_url)
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    batch = f"quorum-{queue_prefix.rstrip('.')}"
    owners = make_engine(postgres_url)
    files = store_sample_files(blobs, owners)
    owners.dispose()
    requests = build_dispatch(CASES, seed=77, batch_id=batch, files=files)
    intake = tmp_path / "cases.jsonl"
    intake.write_text(
        "".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in requests), encoding="utf-8"
    )
    env = worker_env(
        broker_url=rabbitmq_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        outbox=tmp_path / "outbox",
        extra={"OMVANT_SEED": "77", "OMVANT_RABBITMQ_QUORUM": "true"},
    )
    engine = make_engine(postgres_url)

    def settled() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        cases.c.batch_id == batch,
                        cases.c.state.in_(["notified", "rejected", "failed", "read"]),
                    )
                ).scalar_one()
            )

    with running_workers(env, tmp_path / "logs", threads=4) as worker:
        push_file(env, intake)
        assert wait_until(lambda: settled() == CASES, timeout=180), (
            f"{settled()} of {CASES} settled\n{worker.output()[-3000:]}"
        )
        assert worker.alive()
        with engine.connect() as conn:
            notified = conn.execute(
                sa.select(sa.func.count()).where(
                    cases.c.batch_id == batch, cases.c.state == "notified"
                )
            ).scalar_one()
        assert notified > 0
    engine.dispose()
    intake_queue = queue_name(Queues.RECIPIENT_VALIDATION, queue_prefix)
    assert queue_type_is_quorum(rabbitmq_url, intake_queue)
    assert queue_type_is_quorum(rabbitmq_url, f"{intake_queue}.XQ")
    last = queue_name(all_queues()[-1], queue_prefix)
    assert queue_type_is_quorum(rabbitmq_url, last)


def test_quorum_setting_is_read_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMVANT_RABBITMQ_QUORUM", raising=False)
    monkeypatch.delenv("OMVANT_RABBITMQ_DELIVERY_LIMIT", raising=False)
    assert quorum_from_environment() == (False, DEFAULT_DELIVERY_LIMIT)
    monkeypatch.setenv("OMVANT_RABBITMQ_QUORUM", "True")
    monkeypatch.setenv("OMVANT_RABBITMQ_DELIVERY_LIMIT", "7")
    assert quorum_from_environment() == (True, 7)
    for bad in ("maybe", "２"):
        monkeypatch.setenv("OMVANT_RABBITMQ_QUORUM", bad)
        with pytest.raises(BrokerUrlError):
            quorum_from_environment()
    monkeypatch.setenv("OMVANT_RABBITMQ_QUORUM", "true")
    for bad in ("0", "-1", "²", "9" * 50):
        monkeypatch.setenv("OMVANT_RABBITMQ_DELIVERY_LIMIT", bad)
        with pytest.raises(BrokerUrlError):
            quorum_from_environment()
