"""A message whose worker process dies under it again and again is set aside, not looped.

The poison is made real: the test holds a lock on ``cases`` so that the stage hangs on the
message, and SIGKILLs the worker process group (as an OOM kill or a supervisor would) while it
hangs; the broker hands the message out again to the next worker (RabbitMQ when the connection
drops; Redis once the killed worker's heartbeat is older than ``OMVANT_REDIS_HEARTBEAT_TIMEOUT_MS``,
here 5 s, and a broker command runs its maintenance, here every one). After
``OMVANT_POISON_DELIVERIES`` kills the next worker must record it as ``poison-message`` and
acknowledge it without starting it, and a valid case sent afterwards must settle.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from contracts.registry import envelope_for
from contracts.send_case import SendCaseV2
from tests.databases import migrated_engine
from tests.e2e.harness import WorkerProcess, wait_until, worker_env_in
from workers.broker import build_broker, dead_letter_count
from workers.enqueue import enqueue
from workers.queues import Queues, all_queues, queue_name
from workers.store.schema import cases, message_deliveries, rejected_messages

pytestmark = pytest.mark.e2e

KILLS = 2


def request(key: str) -> SendCaseV2:
    return SendCaseV2(
        clinic_hsa_id="SE2321000016-VC01",
        sender_hsa_id="SE2321000016-S101",
        template_id="meddelande-till-invanare",
        personnummer="19121212-1212",
        idempotency_key=key,
    )


REDIS_DEAD_WORKER = {
    "OMVANT_REDIS_HEARTBEAT_TIMEOUT_MS": "5000",
    "OMVANT_REDIS_MAINTENANCE_CHANCE": "1000000",
}


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_message_that_kills_its_worker_twice_is_set_aside_and_work_goes_on(
    broker_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    engine = migrated_engine(postgres_url)
    env = worker_env_in(
        tmp_path,
        broker_url,
        postgres_url,
        queue_prefix,
        OMVANT_POISON_DELIVERIES=str(KILLS),
        **(REDIS_DEAD_WORKER if broker_url.startswith("redis") else {}),
    )
    broker = build_broker(broker_url)
    poison = request(f"{queue_prefix}poison")
    envelope = envelope_for([poison]).model_dump(mode="json")
    queue = queue_name(Queues.RECIPIENT_VALIDATION, queue_prefix)

    def starts() -> int:
        with engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(message_deliveries.c.deliveries)).where(
                    message_deliveries.c.queue == queue  # the only message on it
                )
            ).scalar()
        return int(value or 0)

    def set_aside() -> list[str]:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(rejected_messages.c.reason).where(rejected_messages.c.queue == queue)
                ).scalars()
            )

    hold = psycopg.connect(postgres_url)
    hold.execute("LOCK TABLE cases IN ACCESS EXCLUSIVE MODE")  # the stage hangs on the insert
    workers: list[WorkerProcess] = []
    try:
        enqueue(
            broker,
            Queues.RECIPIENT_VALIDATION,
            "validate_recipients",
            envelope,
            prefix=queue_prefix,
        )
        for kill in range(1, KILLS + 1):
            worker = WorkerProcess(env, [], tmp_path / f"worker-{kill}.log", threads=1)
            workers.append(worker)
            assert wait_until(lambda k=kill: starts() == k, timeout=90), worker.output()[-3000:]
            worker.kill()
        worker = WorkerProcess(env, [], tmp_path / "worker-last.log", threads=1)
        workers.append(worker)
        assert wait_until(lambda: set_aside() == ["poison-message"], timeout=90), worker.output()[
            -3000:
        ]
        assert starts() == 0  # forgotten once set aside
        hold.rollback()  # the lock goes: the worker runs the next message normally
        valid = request(f"{queue_prefix}valid")
        enqueue(
            broker,
            Queues.RECIPIENT_VALIDATION,
            "validate_recipients",
            envelope_for([valid]).model_dump(mode="json"),
            prefix=queue_prefix,
        )

        def state_of(case_id: str) -> str | None:
            with engine.connect() as conn:
                return conn.execute(sa.select(cases.c.state).where(cases.c.id == case_id)).scalar()

        assert wait_until(
            lambda: state_of(valid.resolved_case_id()) in {"notified", "rejected", "delivered"},
            timeout=90,
        ), worker.output()[-3000:]
        assert state_of(poison.resolved_case_id()) is None  # it never ran to its insert
        assert worker.alive()
        queues = [queue_name(q, queue_prefix) for q in all_queues()]
        assert dead_letter_count(broker, queues) == 0
        with engine.connect() as conn:
            detail = conn.execute(
                sa.select(rejected_messages.c.detail, rejected_messages.c.body).where(
                    rejected_messages.c.queue == queue
                )
            ).one()
        assert f"started {KILLS} times" in detail.detail
        assert poison.idempotency_key in detail.body  # kept, so on-call can look and replay
    finally:
        hold.close()
        for worker in workers:
            worker.stop(timeout=15)
        broker.close()
        engine.dispose()
