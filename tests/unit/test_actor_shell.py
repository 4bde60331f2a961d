"""The stage shells: bad input is recorded, never fatal; one poison case cannot sink its chunk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from producers.demo import InProcessPipeline, count_settled, start_pipeline, wait_for
from producers.scenario import build_dispatch
from workers.adapters.account_directory import (
    Account,
    DirectoryUnavailable,
    SimulatedAccountDirectory,
)
from workers.broker import dead_letter_count
from workers.enqueue import enqueue
from workers.queues import Queues, queue_name
from workers.settings import Settings
from workers.stage import emit
from workers.store import cases
from workers.store.schema import case_bodies, rejected_messages
from workers.store.schema import cases as cases_table
from workers.transient import retries_for, retry_when


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[InProcessPipeline]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/o.db",
        blob_dir=tmp_path / "blobs",
        max_retries=1,
        chunk_size=20,
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


def unreadable(pipeline: InProcessPipeline) -> list[tuple[str, str]]:
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(rejected_messages.c.queue, rejected_messages.c.reason))
        return [(r.queue, r.reason) for r in rows]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("not an envelope",), "malformed-message"),
        (({"contract": "SendCase", "version": 3, "payload": [{}]},), "unknown-contract-version"),
        (({"contract": "Nope", "version": 1, "payload": [{}]},), "unknown-contract"),
        (({"contract": "SendCase", "version": 2, "payload": [{"a": 1}]},), "invalid-payload"),
        (
            (
                {
                    "contract": "ReadReceipt",
                    "version": 1,
                    "payload": [
                        {"case_id": "x", "event": "opened", "occurred_at": "2026-01-01T00:00:00Z"}
                    ],
                },
            ),
            "wrong-queue",
        ),
        ((1, 2), "malformed-message"),
    ],
)
def test_an_unreadable_message_is_recorded_with_its_reason(
    pipeline: InProcessPipeline, args: tuple, reason: str
) -> None:
    import dramatiq

    broker = pipeline.ctx.broker
    broker.enqueue(
        dramatiq.Message(
            queue_name=str(Queues.RECIPIENT_VALIDATION),
            actor_name="validate_recipients",
            args=args,
            kwargs={},
            options={},
        )
    )
    broker.join(str(Queues.RECIPIENT_VALIDATION))  # type: ignore[attr-defined]
    assert unreadable(pipeline) == [(str(Queues.RECIPIENT_VALIDATION), reason)]
    assert dead_letter_count(broker, [str(q) for q in Queues]) == 0


class PoisonDirectory(SimulatedAccountDirectory):
    """The simulated directory, except that looking one resident up always fails."""

    def __init__(self, poison: str) -> None:
        super().__init__(1177)
        self.poison = poison

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        if self.poison in personnummer:
            raise RuntimeError("the directory falls over on this one")
        return super().lookup_many(personnummer)


def test_a_poison_case_is_split_out_and_dead_lettered_alone(pipeline: InProcessPipeline) -> None:
    requests = build_dispatch(40, seed=7, batch_id="poison")
    reachable = [
        r
        for r in requests
        if SimulatedAccountDirectory(1177).account(r.personnummer.replace("-", "")).channels
        and len(r.personnummer.replace("-", "")) == 12
    ]
    victim = reachable[0]
    pipeline.ctx.directory = PoisonDirectory(victim.personnummer.replace("-", ""))
    emit(pipeline.ctx, requests, correlation_id="poison")
    done = wait_for(lambda: count_settled(pipeline.ctx, "poison"), 40, timeout=60)
    assert done == 40
    with pipeline.ctx.engine.connect() as conn:
        failed = conn.execute(
            sa.select(cases_table.c.id, cases_table.c.reason).where(cases_table.c.state == "failed")
        ).all()
        states = cases.count_states(conn, batch_id="poison")
    assert [(f.id, f.reason) for f in failed] == [(victim.resolved_case_id(), "technical-failure")]
    assert states["failed"] == 1
    assert states.get("notified", 0) > 20
    queues = [queue_name(q) for q in Queues]
    assert dead_letter_count(pipeline.ctx.broker, queues) == 1


def test_a_read_event_for_an_unknown_case_is_kept_as_unknown_case(
    pipeline: InProcessPipeline,
) -> None:
    enqueue(
        pipeline.ctx.broker,
        Queues.READ_RECEIPTS,
        "collect_read_receipts",
        {
            "contract": "ReadReceipt",
            "version": 1,
            "payload": [
                {"case_id": "ghost", "event": "opened", "occurred_at": "2026-01-01T00:00:00Z"}
            ],
        },
    )
    pipeline.ctx.broker.join(str(Queues.READ_RECEIPTS))  # type: ignore[attr-defined]
    assert unreadable(pipeline) == [(str(Queues.READ_RECEIPTS), "unknown-case")]


def test_a_chunk_with_one_invalid_record_still_runs_the_valid_ones(
    pipeline: InProcessPipeline,
) -> None:
    good = [r.model_dump(mode="json") for r in build_dispatch(3, seed=11, batch_id="mixed")]
    bad = {**good[1], "clinic_hsa_id": "not an hsa id"}
    envelope = {"contract": "SendCase", "version": 2, "payload": [good[0], bad, good[2]]}
    enqueue(pipeline.ctx.broker, Queues.RECIPIENT_VALIDATION, "validate_recipients", envelope)
    assert wait_for(lambda: count_settled(pipeline.ctx, "mixed"), 2, timeout=30) == 2
    assert unreadable(pipeline) == [(str(Queues.RECIPIENT_VALIDATION), "invalid-payload")]


class FlakyDirectory(SimulatedAccountDirectory):
    """The simulated directory, down for its first ``outages`` calls."""

    def __init__(self, outages: int) -> None:
        super().__init__(1177)
        self.outages = outages
        self.sizes: list[int] = []

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        self.sizes.append(len(personnummer))
        if len(self.sizes) <= self.outages:
            raise DirectoryUnavailable("the directory is down")
        return super().lookup_many(personnummer)


def test_an_outage_retries_the_chunk_whole_instead_of_splitting_it(
    pipeline: InProcessPipeline,
) -> None:
    directory = FlakyDirectory(outages=1)
    pipeline.ctx.directory = directory
    requests = [
        r.model_copy(update={"priority": "normal"})
        for r in build_dispatch(20, seed=5, batch_id="outage")
    ]
    emit(pipeline.ctx, requests, correlation_id="outage")
    assert wait_for(lambda: count_settled(pipeline.ctx, "outage"), 20, timeout=60) == 20
    with pipeline.ctx.engine.connect() as conn:
        assert cases.count_states(conn, batch_id="outage")["failed"] == 0
    # the failed chunk was looked up whole again, never split into single-case lookups
    assert len(directory.sizes) >= 2
    assert min(directory.sizes) > 5, directory.sizes


def test_an_outage_outlasting_the_retry_count_is_retried_until_it_ends(
    pipeline: InProcessPipeline,
) -> None:
    # max_retries is 1 here: counted, the chunk would be dead-lettered on the second outage
    directory = FlakyDirectory(outages=4)
    pipeline.ctx.directory = directory
    requests = [
        r.model_copy(update={"priority": "normal"})
        for r in build_dispatch(20, seed=6, batch_id="long-outage")
    ]
    emit(pipeline.ctx, requests, correlation_id="long-outage")
    assert wait_for(lambda: count_settled(pipeline.ctx, "long-outage"), 20, timeout=60) == 20
    with pipeline.ctx.engine.connect() as conn:
        assert cases.count_states(conn, batch_id="long-outage").get("failed", 0) == 0
    assert len(directory.sizes) >= 5


def test_retries_are_counted_for_failures_and_timed_for_outages() -> None:
    decide = retry_when(max_retries=2, outage_seconds=30)
    assert [decide(n, KeyError("x")) for n in range(3)] == [True, True, False]
    # 0.2 + 0.4 + ... + 12.8 + 20 s >= 30 s: eight retries of an outage
    assert retries_for(30) == 8
    assert all(decide(n, DirectoryUnavailable("down")) for n in range(8))
    assert not decide(8, DirectoryUnavailable("down"))


def test_a_record_about_an_unknown_case_leaves_a_trace(pipeline: InProcessPipeline) -> None:
    record = {
        "case_id": "nobody-knows",
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": "191212121212",
        "channels": ["sms"],
    }
    envelope = {"contract": "RecipientValidated", "version": 1, "payload": [record]}
    enqueue(pipeline.ctx.broker, Queues.MESSAGE_COMPOSITION, "compose_messages", envelope)
    pipeline.ctx.broker.join(str(Queues.MESSAGE_COMPOSITION))  # type: ignore[attr-defined]
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(rejected_messages.c.reason, rejected_messages.c.detail))
        assert [(r.reason, r.detail) for r in rows] == [("unknown-case", "no case nobody-knows")]


def test_the_records_of_a_split_chunk_go_back_on_their_own_lane(tmp_path: Path) -> None:
    from dramatiq.brokers.stub import StubBroker

    from contracts.registry import ContractError
    from workers.actors import split_unreadable_chunk
    from workers.bootstrap import build_context
    from workers.routes import ROUTES
    from workers.store.engine import upgrade

    url = f"sqlite:///{tmp_path}/o.db"
    upgrade(url)
    broker = StubBroker()
    ctx = build_context(Settings(database_url=url, blob_dir=tmp_path / "blobs"), broker)
    records = [r.model_dump(mode="json") for r in build_dispatch(2, seed=5, batch_id=None)]
    urgent = [{**r, "priority": "urgent"} for r in records]
    raw = {"contract": "SendCase", "version": 2, "payload": [*urgent, {"a": 1}]}
    for queue in ("recipient-validation", "recipient-validation.urgent"):
        broker.declare_queue(queue)
    route = ROUTES["SendCase"]
    assert split_unreadable_chunk(route, ctx, (raw,), ContractError("invalid-payload", "x"))
    assert broker.queues["recipient-validation.urgent"].qsize() == 2  # kept their lane
    assert broker.queues["recipient-validation"].qsize() == 1  # the invalid one: no priority
    ctx.engine.dispose()


def test_composition_reads_its_cases_once_per_chunk_with_the_ownership_check(
    pipeline: InProcessPipeline,
) -> None:
    """The shell's ownership check reads each case's clinic and arrival in one query, and
    composition pins its cases from that read, not from a query of its own."""
    reads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "received_at" in statement:
            reads.append(statement)

    sa.event.listen(pipeline.ctx.engine, "before_cursor_execute", note)
    try:
        requests = build_dispatch(30, seed=11, batch_id="reads")
        emit(pipeline.ctx, requests, correlation_id="reads")
        assert wait_for(lambda: count_settled(pipeline.ctx, "reads"), 30, timeout=60) == 30
    finally:
        sa.event.remove(pipeline.ctx.engine, "before_cursor_execute", note)
    arrivals = [s for s in reads if "template_version" in s]
    assert arrivals, "composition read no arrivals"
    assert all("clinic_hsa_id" in s for s in arrivals), arrivals
    with pipeline.ctx.engine.connect() as conn:
        composed = conn.execute(
            sa.select(sa.func.count())
            .select_from(cases_table.join(case_bodies, case_bodies.c.case_id == cases_table.c.id))
            .where(cases_table.c.batch_id == "reads", case_bodies.c.part == "content")
        ).scalar_one()
    assert composed > 0
