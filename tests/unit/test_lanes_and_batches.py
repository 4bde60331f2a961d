"""Lanes (urgent, normal, bulk), fair bulk-lane assignment, and pause/resume/cancel of batches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers.cli.worker_command import (
    DEFAULT_THREADS,
    OTHER_LANES,
    URGENT_LANES,
    consumed_queues,
    threads_for,
)
from producers.client import OmvantClient
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from workers.actors import declare_actors
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.queues import all_queues
from workers.routes import STAGES
from workers.settings import Settings
from workers.stage import emit
from workers.store import batches
from workers.store.engine import upgrade

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"


def request(key: str, *, priority: str = "normal", batch_id: str | None = None) -> SendCaseV2:
    return SendCaseV2(
        clinic_hsa_id=CLINIC,
        sender_hsa_id=SENDER,
        template_id="kallelse-screening",
        fragments=["tid"],
        personnummer=population.test_personnummer()[0],
        priority=priority,  # type: ignore[arg-type]
        idempotency_key=key,
        batch_id=batch_id,
    )


def new_batch(conn: sa.Connection, batch_id: str, name: str, *, total: int) -> batches.Batch:
    """A running dispatch of the screening letter for ``CLINIC``, signed by ``SENDER``."""
    return batches.create(
        conn,
        batch_id=batch_id,
        name=name,
        clinic_hsa_id=CLINIC,
        sender_hsa_id=SENDER,
        template_id="kallelse-screening",
        total=total,
    )


def memory_context(sqlite_url: str, **settings: Any) -> Context:
    """A process's context on an upgraded database and the in-memory broker, actors declared."""
    upgrade(sqlite_url)
    broker = build_broker("memory://")
    ctx = build_context(
        Settings(broker_url="memory://", database_url=sqlite_url, **settings), broker
    )
    declare_actors(broker, lambda: ctx)
    return ctx


def reachable(count: int) -> list[str]:
    directory = SimulatedAccountDirectory(1177)
    return [
        n
        for n in population.test_personnummer()[:2000]
        if directory.account(n).status == AccountStatus.ACTIVE and directory.account(n).channels
    ][:count]


def test_every_lane_of_every_stage_is_consumed_by_omvant_worker_and_declared() -> None:
    assert set(consumed_queues(list(STAGES))) == set(all_queues())
    broker = build_broker("memory://")
    declare_actors(broker, lambda: None)  # type: ignore[arg-type, return-value]
    assert set(all_queues()) <= broker.get_declared_queues()


def test_an_urgent_worker_and_an_others_worker_together_consume_every_lane_once() -> None:
    urgent = consumed_queues(list(STAGES), "p.", lanes=URGENT_LANES)
    others = consumed_queues(list(STAGES), "p.", lanes=OTHER_LANES)
    assert urgent and all(q.startswith("p.") and q.endswith(".urgent") for q in urgent)
    assert not any(q.endswith(".urgent") for q in others)
    assert sorted(urgent + others) == sorted(consumed_queues(list(STAGES), "p."))
    assert consumed_queues(["read-receipts"], lanes=URGENT_LANES) == []  # it has no lanes


def test_an_urgent_lanes_worker_has_eight_threads_per_lane_the_others_eight() -> None:
    urgent = consumed_queues(list(STAGES), lanes=URGENT_LANES)
    assert threads_for(urgent, URGENT_LANES) == DEFAULT_THREADS * len(urgent) == 40
    others = consumed_queues(list(STAGES), lanes=OTHER_LANES)
    assert threads_for(others, OTHER_LANES) == DEFAULT_THREADS


def test_urgent_cases_take_the_urgent_lane_and_dispatches_their_bulk_lane(
    sqlite_url: str,
) -> None:
    ctx = memory_context(sqlite_url)
    with ctx.engine.begin() as conn:
        first = new_batch(conn, "b-one", "one", total=10)
        second = new_batch(conn, "b-two", "two", total=10)
    assert {first.lane, second.lane} == {1, 2}  # two running dispatches never share a lane
    emit(
        ctx,
        [
            request("u", priority="urgent", batch_id="b-one"),
            request("a", batch_id="b-one"),
            request("b", batch_id="b-two"),
            request("n"),
        ],
        correlation_id="c",
    )
    depth = {name: q.qsize() for name, q in ctx.broker.queues.items() if q.qsize()}
    assert depth == {
        "recipient-validation.urgent": 1,
        f"recipient-validation.bulk-{first.lane}": 1,
        f"recipient-validation.bulk-{second.lane}": 1,
        "recipient-validation": 1,
    }
    urgent = ctx.broker.queues["recipient-validation.urgent"].get_nowait()
    assert b"validate_recipients_urgent" in urgent


@pytest.fixture
def pipeline(sqlite_url: str, tmp_path: object) -> Iterator[InProcessPipeline]:
    settings = Settings(
        broker_url="memory://",
        database_url=sqlite_url,
        blob_dir=f"{tmp_path}/blobs",  # type: ignore[arg-type]
        batch_pause_recheck_ms=200,
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


def figures(client: OmvantClient, batch_id: str) -> dict[str, object]:
    return client.batch(batch_id)


def test_a_paused_dispatch_waits_and_resumes_to_the_end(pipeline: InProcessPipeline) -> None:
    ctx = pipeline.ctx
    client = OmvantClient(ctx.settings, broker=ctx.broker)
    residents = reachable(40)
    with ctx.engine.begin() as conn:
        new_batch(conn, "pause-me", "paused", total=len(residents))
    client.pause("pause-me")
    requests = [
        request(f"pause-me:{i}", batch_id="pause-me").model_copy(update={"personnummer": n})
        for i, n in enumerate(residents)
    ]
    client.send_many(requests, correlation_id="pause-me", batch_lane=1, chunk_size=10)
    time.sleep(1.5)  # several re-checks of the paused chunks
    held = figures(client, "pause-me")
    assert held["status"] == "paused"
    assert held["received"] == 0  # held on the intake lane, not one case taken in
    client.resume("pause-me")
    done = wait_for(
        lambda: int(figures(client, "pause-me")["reached"]["notified"]),  # type: ignore[index]
        len(residents),
        timeout=30,
    )
    assert done == len(residents)
    with ctx.engine.begin() as conn:  # what OmvantClient.dispatch counts as it enqueues
        batches.add_enqueued(conn, "pause-me", len(residents))
    for too_late in (client.pause, client.cancel, client.resume):
        with pytest.raises(batches.BatchTransitionRefused, match="finished"):
            too_late("pause-me")
    assert figures(client, "pause-me")["status"] == "finished"
    assert figures(client, "pause-me")["control"] == "running"


def test_a_cancelled_dispatch_rejects_its_cases_with_batch_cancelled(
    pipeline: InProcessPipeline,
) -> None:
    ctx = pipeline.ctx
    client = OmvantClient(ctx.settings, broker=ctx.broker)
    residents = reachable(30)
    with ctx.engine.begin() as conn:
        new_batch(conn, "cancel-me", "cancel", total=len(residents))
        batches.set_status(conn, "cancel-me", batches.BatchStatus.CANCELLED)
    time.sleep(1.1)
    requests = [
        request(f"cancel-me:{i}", batch_id="cancel-me").model_copy(update={"personnummer": n})
        for i, n in enumerate(residents)
    ]
    client.send_many(requests, correlation_id="cancel-me", batch_lane=1)
    rejected = wait_for(
        lambda: int(figures(client, "cancel-me")["rejected"].get("batch-cancelled", 0)),  # type: ignore[attr-defined]
        len(residents),
        timeout=30,
    )
    assert rejected == len(residents)
    assert figures(client, "cancel-me")["reached"]["delivered"] == 0  # type: ignore[index]
    with pytest.raises(batches.BatchTransitionRefused):
        client.resume("cancel-me")


def test_worker_processes_poll_idle_queues_often_enough_for_urgent_cases() -> None:
    from producers.processes import worker_env
    from workers.settings import Settings

    assert worker_env(Settings(idle_poll_ms=80))["dramatiq_worker_timeout"] == "80"
    assert Settings().idle_poll_ms <= 200  # dramatiq's own 1 s would cost urgent cases 1 s a stage


def test_bulk_lanes_carry_chunks_of_bulk_chunk_size_the_other_lanes_of_chunk_size(
    sqlite_url: str,
) -> None:
    ctx = memory_context(sqlite_url, chunk_size=3, bulk_chunk_size=7)
    with ctx.engine.begin() as conn:
        batch = new_batch(conn, "b-big", "big", total=10)
    emit(
        ctx,
        [request(f"d{i}", batch_id="b-big") for i in range(10)]
        + [request(f"u{i}", priority="urgent", batch_id="b-big") for i in range(4)]
        + [request(f"n{i}") for i in range(4)],
        correlation_id="c",
    )
    depth = {name: q.qsize() for name, q in ctx.broker.queues.items() if q.qsize()}
    assert depth == {
        f"recipient-validation.bulk-{batch.lane}": 2,  # 7 + 3
        "recipient-validation.urgent": 2,  # 3 + 1
        "recipient-validation": 2,  # 3 + 1
    }


def test_a_dispatch_is_enqueued_in_bulk_chunks_and_an_urgent_one_in_small_chunks(
    sqlite_url: str,
) -> None:
    from producers.client import Recipient

    upgrade(sqlite_url)
    settings = Settings(
        broker_url="memory://", database_url=sqlite_url, chunk_size=2, bulk_chunk_size=5
    )
    broker = build_broker("memory://")
    declare_actors(broker, lambda: None)  # type: ignore[arg-type, return-value]
    residents = [Recipient(n, {}) for n in reachable(6)]
    with OmvantClient(settings, broker=broker) as client:
        bulk = client.dispatch(
            residents,
            template_id="kallelse-screening",
            clinic_hsa_id=CLINIC,
            sender_hsa_id=SENDER,
            total=len(residents),
        )
        client.dispatch(
            residents,
            template_id="kallelse-screening",
            clinic_hsa_id=CLINIC,
            sender_hsa_id=SENDER,
            total=len(residents),
            priority="urgent",
        )
        depth = {name: q.qsize() for name, q in broker.queues.items() if q.qsize()}
    assert depth == {
        f"recipient-validation.bulk-{bulk.lane}": 2,  # 5 + 1
        "recipient-validation.urgent": 3,  # 2 + 2 + 2
    }
