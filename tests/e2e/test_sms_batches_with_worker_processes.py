"""SMS in batches (the gateway's batch endpoint) with real ``omvant worker`` processes on RabbitMQ
and PostgreSQL and the gateway simulator over HTTP: a worker killed (``kill -9``) after the
gateway took a batch and before the worker recorded it leaves that batch in doubt, no more, and
after recovery every resident has exactly one SMS, the in-doubt ones settled by asking by key."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.e2e.mid_batch import MidBatch, sent
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.store import notifications
from workers.store.notifications import Resolution

pytestmark = pytest.mark.e2e

CASES = 12
BATCH = 5


def test_killing_a_worker_between_a_batch_send_and_its_mark_sends_every_sms_exactly_once(
    mid_batch: MidBatch, sms_simulator: SmsGatewaySimulator
) -> None:
    case_ids = mid_batch.clear(CASES, "sms")
    env = mid_batch.env(OMVANT_SMS_GATEWAY_URL=sms_simulator.url, OMVANT_SMS_BATCH_SIZE=str(BATCH))
    mid_batch.kill_while_slow(
        env, sms_simulator, delay=3.0, when=lambda: len(sms_simulator.sends()) >= 1
    )
    # in doubt: the one batch in flight when the worker died; the rest never claimed
    assert mid_batch.statuses() == {
        notifications.PENDING: BATCH,
        notifications.QUEUED: CASES - BATCH,
    }
    in_doubt = mid_batch.in_doubt()
    found = mid_batch.recover(env, sent)
    assert {r.key for r in found if r.resolution == Resolution.FOUND_AT_PROVIDER} == in_doubt
    assert all(r.resolution is None for r in found if r.key not in in_doubt)
    # at the gateway: one SMS per resident, and no key ever sent a second time
    assert Counter(s["key"] for s in sms_simulator.sends()) == Counter(
        {f"{c}:sms": 1 for c in case_ids}
    )
    assert len(sms_simulator.messages()) == CASES
    taken = httpx.get(f"{sms_simulator.url}/messages").json()["batches"]
    assert sum(taken) == CASES and max(taken) <= BATCH and len(taken) >= 3
