"""The intake bridge holds every request to its own clinic (issue 10), on RabbitMQ and Redis with
PostgreSQL: a signed request carrying another clinic's case id gets a case of its own and leaves
the other case untouched; the idempotency window is per clinic and integration key.

The producer side is plain pika and raw Redis commands, as an integration team would write it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.send_case import SendCaseV2, case_id_for
from producers.cli import app
from producers.client import OmvantClient
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from tests.reachable import reachable_residents
from workers.case_states import CaseState
from workers.intake_bridge import IntakeBridge
from workers.intake_sources import open_source
from workers.log import configure as configure_logging
from workers.queues import Queues, queue_name
from workers.settings import Settings
from workers.store import cases, notifications
from workers.store.cases import Transition
from workers.store.schema import case_events, intake_keys
from workers.store.schema import cases as cases_table

pytestmark = pytest.mark.integration

KEYS = {"journal-a": "secret-a", "booking-b": "secret-b"}
CLINIC_A = "SE2321000016-VC0A"
CLINIC_B = "SE2321000016-VC0B"
RESIDENT = reachable_residents(1, seed=1177)[0]

Publish = Callable[[bytes, dict[str, str]], None]


def record(clinic: str, key: str, **extra: object) -> dict[str, object]:
    return {
        "clinic_hsa_id": clinic,
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "fragments": ["halsning"],
        "personnummer": RESIDENT,
        "idempotency_key": key,
        **extra,
    }


def signed(body: bytes, key_id: str) -> dict[str, str]:
    return {
        "omvant-key-id": key_id,
        "omvant-signature": hmac.new(KEYS[key_id].encode(), body, hashlib.sha256).hexdigest(),
        "omvant-contract-version": "2",
    }


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def publish(broker_url: str, queue_prefix: str) -> Iterator[Publish]:
    open_source(broker_url, prefix=queue_prefix).close()  # the bridge declares its queues
    exchange = f"{queue_prefix}omvant.intake"
    if broker_url.startswith("amqp"):
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        channel = connection.channel()
        channel.confirm_delivery()

        def to_amqp(body: bytes, headers: dict[str, str]) -> None:
            channel.basic_publish(
                exchange=exchange,
                routing_key="x.send-case",
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json", headers=headers, delivery_mode=2
                ),
            )

        yield to_amqp
        for name in ("omvant.intake", "omvant.intake.rejects"):
            channel.queue_delete(f"{queue_prefix}{name}")
        channel.exchange_delete(exchange)
        connection.close()
    else:
        client = redis.Redis.from_url(broker_url)

        def to_redis(body: bytes, headers: dict[str, str]) -> None:
            fields: list[bytes | str] = []
            for name, value in headers.items():
                fields += [name, value]
            client.execute_command("XADD", exchange, "*", "body", body, *fields)

        yield to_redis
        client.delete(exchange, f"{exchange}.rejects")
        client.close()


@pytest.fixture
def pipeline(postgres_url: str, queue_prefix: str, tmp_path: Path) -> Iterator[InProcessPipeline]:
    # the pipeline's threads log as a worker does, to stderr: unconfigured, structlog would
    # print to whatever sys.stdout is, which is the CLI runner's while a command runs below
    configure_logging()
    settings = Settings(
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        sms_quiet_hours="",
        intake_keys=KEYS,
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


def bridge_all(pipeline: InProcessPipeline, broker_url: str, count: int) -> IntakeBridge:
    """Run the bridge (into the in-process pipeline) until ``count`` messages are handled and
    the intake stage has taken them all."""
    settings = pipeline.ctx.settings
    source = open_source(broker_url, prefix=settings.queue_prefix)
    bridge = IntakeBridge(
        source, settings=settings, broker=pipeline.ctx.broker, engine=pipeline.ctx.engine
    )
    try:
        handled, deadline = 0, time.monotonic() + 30
        while handled < count and time.monotonic() < deadline:
            handled += bridge.run_once(timeout=0.2)
        assert handled == count
    finally:
        source.close()
    intake = queue_name(Queues.RECIPIENT_VALIDATION, settings.queue_prefix)
    pipeline.ctx.broker.join(intake, timeout=20_000)
    pipeline.worker.join()
    return bridge


def settled(pipeline: InProcessPipeline, *case_ids: str) -> int:
    with pipeline.ctx.engine.connect() as conn:
        return notifications.count_settled(conn, case_ids=list(case_ids))


def history(pipeline: InProcessPipeline, case_id: str) -> list[tuple[str, str]]:
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(case_events.c.state, case_events.c.stage)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.id)
        )
        return [(r.state, r.stage) for r in rows]


def test_a_signed_request_with_another_clinics_case_id_gets_its_own_case(
    pipeline: InProcessPipeline, broker_url: str, publish: Publish, queue_prefix: str
) -> None:
    client = OmvantClient(pipeline.ctx.settings, broker=pipeline.ctx.broker)
    b_case = client.send(SendCaseV2.model_validate(record(CLINIC_B, f"{queue_prefix}b")))
    client.engine.dispose()
    assert wait_for(lambda: settled(pipeline, b_case), 1, timeout=30) == 1
    with pipeline.ctx.engine.begin() as conn:
        cases.apply(conn, [Transition(b_case, CaseState.READ)], stage="read-receipts")
    before = history(pipeline, b_case)

    key = f"{queue_prefix}a-1"
    body = json.dumps(record(CLINIC_A, key, case_id=b_case)).encode()
    publish(body, signed(body, "journal-a"))
    bridge_all(pipeline, broker_url, 1)

    assert history(pipeline, b_case) == before
    with pipeline.ctx.engine.connect() as conn:
        mapped = conn.execute(
            sa.select(intake_keys.c.case_id).where(
                intake_keys.c.clinic_hsa_id == CLINIC_A,
                intake_keys.c.idempotency_key == f"journal-a/{key}",
            )
        ).scalar_one()
        a_row = conn.execute(sa.select(cases_table).where(cases_table.c.id == mapped)).one()
    assert mapped != b_case
    assert (a_row.clinic_hsa_id, a_row.idempotency_key) == (CLINIC_A, f"journal-a/{key}")
    assert a_row.producer_reference == b_case  # A's own reference, kept as A gave it
    assert wait_for(lambda: settled(pipeline, mapped), 1, timeout=30) == 1
    with pipeline.ctx.engine.connect() as conn:
        b_row = conn.execute(sa.select(cases_table).where(cases_table.c.id == b_case)).one()
    assert (b_row.clinic_hsa_id, b_row.state) == (CLINIC_B, "read")


def test_two_integrations_of_one_clinic_may_use_the_same_key(
    pipeline: InProcessPipeline, broker_url: str, publish: Publish, queue_prefix: str
) -> None:
    key = f"{queue_prefix}1"  # both systems number their requests from 1
    for integration in ("journal-a", "booking-b"):
        body = json.dumps(record(CLINIC_A, key)).encode()
        publish(body, signed(body, integration))
    bridge = bridge_all(pipeline, broker_url, 2)
    assert bridge.counts.duplicates == 0
    ids = [case_id_for(CLINIC_A, f"{who}/{key}") for who in ("journal-a", "booking-b")]
    assert wait_for(lambda: settled(pipeline, *ids), 2, timeout=30) == 2


def test_the_producers_reference_is_kept_and_found_by_the_clinic_and_in_the_rejects(
    pipeline: InProcessPipeline, broker_url: str, publish: Publish, queue_prefix: str
) -> None:
    reference = f"{queue_prefix}journal-77"
    body = json.dumps(record(CLINIC_A, f"{queue_prefix}r", case_id=reference)).encode()
    forged = json.dumps(record(CLINIC_A, f"{queue_prefix}f")).encode()
    publish(body, signed(body, "journal-a"))
    publish(forged, {**signed(body, "journal-a"), "message-id": f"{queue_prefix}msg-9"})
    bridge_all(pipeline, broker_url, 2)
    database = pipeline.ctx.settings.database_url
    runner = CliRunner()
    listed = runner.invoke(
        app,
        [
            "cases", "list", "--clinic", CLINIC_A, "--user", "SE2321000016-S101",
            "--reference", reference, "--json", "--database", database,
        ],
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["reference"] for r in rows] == [reference]
    shown = runner.invoke(
        app,
        [
            "cases", "show", rows[0]["case_id"], "--clinic", CLINIC_A,
            "--user", "SE2321000016-S101", "--database", database,
        ],
    )  # fmt: skip
    assert f"reference {reference}" in shown.output
    other = runner.invoke(
        app,
        [
            "cases", "list", "--clinic", CLINIC_B, "--user", "SE2321000016-S101",
            "--reference", reference, "--json", "--database", database,
        ],
    )  # fmt: skip
    assert json.loads(other.stdout) == []  # another clinic does not find it
    rejects = runner.invoke(
        app, ["rejects", "list", "--reference", f"{queue_prefix}msg-9", "--json", "--database",
              database],
    )  # fmt: skip
    assert rejects.exit_code == 0, rejects.output
    found = json.loads(rejects.stdout)
    assert [(r["reason"], r["reference"]) for r in found] == [
        ("signature-invalid", f"{queue_prefix}msg-9")
    ]
