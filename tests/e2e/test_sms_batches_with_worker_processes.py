"""SMS in batches (the gateway's batch endpoint) with real ``omvant worker`` processes on RabbitMQ
and PostgreSQL and the gateway simulator over HTTP: a worker killed (``kill -9``) after the
gateway took a batch and before the worker recorded it leaves that batch in doubt, no more, and
after recovery every resident has exactly one SMS, the in-doubt ones settled by asking by key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.delivery_support import cleared_on, reachable_residents
from tests.e2e.harness import (
    crash_when,
    enqueue_dispatch,
    running_workers,
    wait_until,
    worker_env_in,
)
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.store import notifications
from workers.store.notifications import Resolution

pytestmark = pytest.mark.e2e

CASES = 12
BATCH = 5


@pytest.fixture
def gateway() -> Iterator[SmsGatewaySimulator]:
    sim = SmsGatewaySimulator().start()
    yield sim
    sim.stop()


def test_killing_a_worker_between_a_batch_send_and_its_mark_sends_every_sms_exactly_once(
    rabbitmq_url: str,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
    gateway: SmsGatewaySimulator,
) -> None:
    residents = reachable_residents(1177, CASES, frozenset({"sms"}))
    name = f"{queue_prefix.rstrip('.')}-sms"
    engine, items = cleared_on(postgres_url, name, residents, channels=["sms"])
    case_ids = [i.case_id for i in items]
    env = worker_env_in(
        tmp_path,
        rabbitmq_url,
        postgres_url,
        queue_prefix,
        OMVANT_SMS_GATEWAY_URL=gateway.url,
        OMVANT_SMS_BATCH_SIZE=str(BATCH),
        OMVANT_NOTIFICATION_IN_FLIGHT_SECONDS="3",
    )
    # the gateway takes the batch, then takes its time to answer: the in-doubt window
    gateway.behave(delay_after=3.0)
    enqueue_dispatch(rabbitmq_url, items, queue_prefix)
    stages = ["notification-dispatch", "notification-sending"]
    crash_when(env, stages, tmp_path / "first.log", lambda: len(gateway.sends()) >= 1)

    def rows() -> list[notifications.Entry]:
        with engine.connect() as conn:
            return list(notifications.entries_for(conn, case_ids).values())

    before = Counter(r.status for r in rows())
    # in doubt: the one batch in flight when the worker died; the rest never claimed
    assert before == Counter({notifications.PENDING: BATCH, notifications.QUEUED: CASES - BATCH})
    in_doubt = {r.key for r in rows() if r.status == notifications.PENDING}
    gateway.behave(delay_after=0.0)
    with running_workers(env, tmp_path / "logs", stages, threads=1) as second:

        def settled() -> bool:
            return all(r.status == notifications.SENT for r in rows())

        assert wait_until(settled, timeout=180), (
            f"{Counter(r.status for r in rows())}\n{second.output()[-3000:]}"
        )
    found = rows()
    assert {r.key for r in found if r.resolution == Resolution.FOUND_AT_PROVIDER} == in_doubt
    assert all(r.resolution is None for r in found if r.key not in in_doubt)
    # at the gateway: one SMS per resident, and no key ever sent a second time
    assert Counter(s["key"] for s in gateway.sends()) == Counter({f"{c}:sms": 1 for c in case_ids})
    assert len(gateway.messages()) == CASES
    taken = httpx.get(f"{gateway.url}/messages").json()["batches"]
    assert sum(taken) == CASES and max(taken) <= BATCH and len(taken) >= 3
    engine.dispose()
