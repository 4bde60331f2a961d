"""Two clinics' dispatches share the workers: the second does not wait for the first.

On a real broker (Redis here), where each queue's consumer fetches a bounded number of
messages, so the workers take chunks from both bulk lanes in turn.
"""

from __future__ import annotations

from pathlib import Path

import dramatiq
import pytest

from producers.client import OmvantClient, Recipient
from producers.demo import wait_for
from workers.actors import declare_actors
from workers.adapters import population
from workers.bootstrap import build_context
from workers.broker import build_broker
from workers.settings import Settings
from workers.store.engine import upgrade

pytestmark = pytest.mark.integration

SENDER = "SE2321000016-S101"


def test_a_small_dispatch_after_a_big_one_does_not_wait_for_it(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=redis_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
    )
    upgrade(postgres_url)
    broker = build_broker(redis_url)
    ctx = build_context(settings, broker)
    declare_actors(broker, lambda: ctx, prefix=queue_prefix)
    client = OmvantClient(settings, broker=broker)
    common = {"template_id": "kallelse-screening", "sender_hsa_id": SENDER, "fragments": ["tid"]}
    big = [Recipient(n, {}) for n in population.draw_residents(2000, seed=5)]
    small = [Recipient(n, {}) for n in population.draw_residents(200, seed=6)]
    big_id, small_id = f"{queue_prefix}big", f"{queue_prefix}small"
    # both enqueued before any worker runs: a backlog, as when a region's dispatch is queued
    first = client.dispatch(
        big, clinic_hsa_id="SE2321000016-VC01", total=len(big), batch_id=big_id, **common
    )
    second = client.dispatch(
        small, clinic_hsa_id="SE2321000016-VC02", total=len(small), batch_id=small_id, **common
    )
    assert first.lane != second.lane
    worker = dramatiq.Worker(broker, worker_threads=4)
    # each consumer holds at most one chunk, as dramatiq's default (threads x 2) is at the
    # scale of a 100,000-case dispatch, but would be this test's whole workload
    worker.queue_prefetch = 1
    worker.start()
    try:
        done = wait_for(lambda: int(client.batch(small_id)["settled"]), 200, timeout=90)
        big_done = int(client.batch(big_id)["settled"])
    finally:
        worker.stop()
        broker.close()
        ctx.engine.dispose()
        client.engine.dispose()
    assert done == 200
    # on one FIFO queue the small dispatch would wait for every chunk of the big one
    assert big_done < 0.6 * len(big)
