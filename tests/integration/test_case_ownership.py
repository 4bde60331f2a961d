"""A case belongs to its clinic for good (issue 10): no request can attach to, move or add history
to another clinic's case, whatever ``case_id``, idempotency key or batch it carries.

Every producer path ends in the intake stage (recipient validation), which creates the case rows:
the Python client and ``omvant dispatch`` put their chunks there directly, ``omvant push`` too,
and the intake bridge after its own checks. These tests run that stage on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.recipient_validated import RecipientValidatedV1
from contracts.send_case import SendCaseV2
from producers.cli import app
from producers.client import OmvantClient
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from tests.databases import migrated_engine
from tests.delivery_support import create_batch
from tests.reachable import reachable_residents
from tests.send_cases import greeting
from workers.case_states import CaseState
from workers.queues import Queues, queue_name
from workers.settings import Settings
from workers.stage import emit
from workers.store import batches, cases, notifications
from workers.store.cases import Transition
from workers.store.schema import batches as batches_table
from workers.store.schema import case_events, rejected_messages
from workers.store.schema import cases as cases_table

pytestmark = pytest.mark.integration

CLINIC_A = "SE2321000016-VC0A"
CLINIC_B = "SE2321000016-VC0B"


@pytest.fixture
def pipeline(postgres_url: str, queue_prefix: str, tmp_path: Path) -> Iterator[InProcessPipeline]:
    settings = Settings(
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        sms_quiet_hours="",
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


RESIDENT = reachable_residents(1, seed=1177)[0]


def request(clinic: str, key: str, **extra: object) -> SendCaseV2:
    return greeting(RESIDENT, key, clinic_hsa_id=clinic, **extra)


def settled(pipeline: InProcessPipeline, *case_ids: str) -> int:
    with pipeline.ctx.engine.connect() as conn:  # delivered counts once no notice is open
        return notifications.count_settled(conn, case_ids=list(case_ids))


def send(pipeline: InProcessPipeline, *requests: SendCaseV2) -> list[str]:
    client = OmvantClient(pipeline.ctx.settings, broker=pipeline.ctx.broker)
    ids = [client.send(r) for r in requests]
    client.engine.dispose()
    return ids


def drain(pipeline: InProcessPipeline, prefix: str) -> None:
    """Wait until the intake stage has taken every message put on it."""
    pipeline.ctx.broker.join(queue_name(Queues.RECIPIENT_VALIDATION, prefix), timeout=20_000)
    pipeline.worker.join()


def history(pipeline: InProcessPipeline, case_id: str) -> list[tuple[str, str]]:
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(case_events.c.state, case_events.c.stage)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.id)
        )
        return [(r.state, r.stage) for r in rows]


def row(pipeline: InProcessPipeline, case_id: str) -> sa.Row[tuple[object, ...]] | None:
    with pipeline.ctx.engine.connect() as conn:
        return conn.execute(sa.select(cases_table).where(cases_table.c.id == case_id)).one_or_none()


def test_a_request_carrying_another_clinics_case_id_gets_a_case_of_its_own(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    [b_case] = send(pipeline, request(CLINIC_B, f"{queue_prefix}b-1"))
    assert wait_for(lambda: settled(pipeline, b_case), 1, timeout=30) == 1
    with pipeline.ctx.engine.begin() as conn:
        cases.apply(conn, [Transition(b_case, CaseState.READ)], stage="read-receipts")
    b_history = history(pipeline, b_case)

    [a_case] = send(pipeline, request(CLINIC_A, f"{queue_prefix}a-1", case_id=b_case))
    drain(pipeline, queue_prefix)

    # B's case is exactly as it was: no false "received", no change of clinic or state
    assert history(pipeline, b_case) == b_history
    b_row = row(pipeline, b_case)
    assert b_row is not None
    assert (b_row.clinic_hsa_id, b_row.state) == (CLINIC_B, "read")
    # and A's request was not lost: it is a case of A's own
    assert a_case != b_case
    assert wait_for(lambda: settled(pipeline, a_case), 1, timeout=30) == 1
    a_row = row(pipeline, a_case)
    assert a_row is not None
    assert a_row.clinic_hsa_id == CLINIC_A
    assert a_row.idempotency_key == f"{queue_prefix}a-1"
    assert history(pipeline, a_case)[0] == ("received", "intake")


def test_a_clinic_reusing_its_own_case_id_for_another_key_gets_a_recorded_reject(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    first, second = (
        request(CLINIC_A, f"{queue_prefix}k-{n}", case_id=f"{queue_prefix}journal-77")
        for n in (1, 2)
    )
    [one] = send(pipeline, first)
    assert wait_for(lambda: settled(pipeline, one), 1, timeout=30) == 1
    [two] = send(pipeline, second)
    assert two == one  # the producer's reference names one case of the clinic
    conflict = second.key_case_id()
    assert wait_for(lambda: settled(pipeline, conflict), 1, timeout=30) == 1
    conflict_row = row(pipeline, conflict)
    assert conflict_row is not None
    assert (conflict_row.clinic_hsa_id, conflict_row.state, conflict_row.reason) == (
        CLINIC_A,
        "rejected",
        "case-id-conflict",
    )
    assert [s for s, _stage in history(pipeline, one)].count("received") == 1


def test_the_same_key_in_two_clinics_is_two_cases(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    key = f"{queue_prefix}shared-key"
    ids = send(pipeline, request(CLINIC_A, key), request(CLINIC_B, key))
    assert len(set(ids)) == 2
    assert wait_for(lambda: settled(pipeline, *ids), 2, timeout=30) == 2
    clinics = {r.clinic_hsa_id for r in (row(pipeline, i) for i in ids) if r is not None}
    assert clinics == {CLINIC_A, CLINIC_B}


def test_a_redelivered_intake_chunk_adds_no_second_received_event(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    one = request(CLINIC_A, f"{queue_prefix}again")
    [case_id] = send(pipeline, one)
    assert wait_for(lambda: settled(pipeline, case_id), 1, timeout=30) == 1
    send(pipeline, one)  # a duplicate of the same clinic and key: left alone
    drain(pipeline, queue_prefix)
    assert [s for s, _stage in history(pipeline, case_id)].count("received") == 1


def test_a_request_naming_another_clinics_dispatch_is_rejected_and_not_counted_there(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    with pipeline.ctx.engine.begin() as conn:
        batch = create_batch(conn, f"{queue_prefix}b-dispatch", "B's screening", CLINIC_B)
    [case_id] = send(pipeline, request(CLINIC_A, f"{queue_prefix}sneaky", batch_id=batch.id))
    assert wait_for(lambda: settled(pipeline, case_id), 1, timeout=30) == 1
    a_row = row(pipeline, case_id)
    assert a_row is not None
    assert (a_row.clinic_hsa_id, a_row.reason, a_row.batch_id) == (
        CLINIC_A,
        "batch-not-owned",
        None,
    )
    with pipeline.ctx.engine.connect() as conn:
        assert sum(cases.count_states(conn, batch_id=batch.id).values()) == 0
        with pytest.raises(batches.BatchExists, match="another clinic's dispatch") as taken:
            create_batch(conn, batch.id, "A joins B's dispatch", CLINIC_A, total=1)
        assert taken.value.reason == "batch-not-owned"


def test_omvant_dispatch_refuses_another_clinics_batch_id(
    postgres_url: str, redis_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    engine = migrated_engine(postgres_url)
    with engine.begin() as conn:
        batch = create_batch(conn, f"{queue_prefix}b-own", "B's", CLINIC_B)
    engine.dispose()
    listing = tmp_path / "residents.csv"
    listing.write_text(f"personnummer\n{RESIDENT}\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            *("dispatch", str(listing), "--template", "meddelande-till-invanare"),
            *("--clinic", CLINIC_A, "--sender", "SE2321000016-S101", "--batch-id", batch.id),
            *("--broker", redis_url, "--database", postgres_url),
        ],
        env={"OMVANT_QUEUE_PREFIX": queue_prefix},
    )
    assert result.exit_code == 2
    assert "batch-not-owned" in result.stderr


def test_omvant_push_with_another_clinics_case_id_leaves_that_case_alone(
    postgres_url: str, redis_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=redis_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        sms_quiet_hours="",
    )
    running = start_pipeline(settings, threads=2)
    try:
        [b_case] = send(running, request(CLINIC_B, f"{queue_prefix}pb"))
        assert wait_for(lambda: settled(running, b_case), 1, timeout=30) == 1
        before = history(running, b_case)
        jsonl = tmp_path / "cases.jsonl"
        record = request(CLINIC_A, f"{queue_prefix}pa", case_id=b_case)
        jsonl.write_text(record.model_dump_json() + "\n", encoding="utf-8")
        pushed = CliRunner().invoke(
            app,
            ["push", str(jsonl), "--broker", redis_url],
            env={"OMVANT_QUEUE_PREFIX": queue_prefix},
        )
        assert pushed.exit_code == 0, pushed.output
        a_case = record.resolved_case_id()
        assert wait_for(lambda: settled(running, a_case), 1, timeout=30) == 1
        assert history(running, b_case) == before
        a_row = row(running, a_case)
        assert a_row is not None and a_row.clinic_hsa_id == CLINIC_A
    finally:
        running.stop()


def test_a_stage_message_naming_another_clinics_case_leaves_it_alone(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    b_case = f"{queue_prefix}stage-b"
    with pipeline.ctx.engine.begin() as conn:  # B's case, validated, about to be composed
        cases.insert_received(
            conn,
            [
                {
                    "id": b_case,
                    "clinic_hsa_id": CLINIC_B,
                    "sender_hsa_id": "SE2321000016-S101",
                    "template_id": "meddelande-till-invanare",
                    "personnummer": RESIDENT,
                    "idempotency_key": b_case,
                }
            ],
        )
        cases.apply(conn, [Transition(b_case, CaseState.VALIDATED)], stage="recipient-validation")
    before = history(pipeline, b_case)
    forged = RecipientValidatedV1(
        case_id=b_case,
        clinic_hsa_id=CLINIC_A,
        sender_hsa_id="SE2321000016-S101",
        template_id="meddelande-till-invanare",
        fragments=["halsning"],
        personnummer=RESIDENT,
        channels=["sms"],
    )
    emit(pipeline.ctx, [forged], correlation_id="forged")
    pipeline.ctx.broker.join(queue_name(Queues.MESSAGE_COMPOSITION, queue_prefix), timeout=20_000)
    pipeline.worker.join()
    assert history(pipeline, b_case) == before
    with pipeline.ctx.engine.connect() as conn:
        kept = conn.execute(
            sa.select(rejected_messages.c.reason, rejected_messages.c.detail).where(
                rejected_messages.c.detail.contains(b_case)
            )
        ).all()
    assert [r.reason for r in kept] == ["case-not-owned"]


def test_another_clinics_cancelled_dispatch_does_not_decide_a_request(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    with pipeline.ctx.engine.begin() as conn:
        batch = create_batch(conn, f"{queue_prefix}b-cancelled", "B's, cancelled", CLINIC_B)
        cancel = sa.update(batches_table).where(batches_table.c.id == batch.id)
        conn.execute(cancel.values(status="cancelled"))
    [case_id] = send(pipeline, request(CLINIC_A, f"{queue_prefix}into-b", batch_id=batch.id))
    assert wait_for(lambda: settled(pipeline, case_id), 1, timeout=30) == 1
    a_row = row(pipeline, case_id)
    assert a_row is not None
    assert (a_row.reason, a_row.batch_id) == ("batch-not-owned", None)
