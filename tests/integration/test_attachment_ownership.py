"""Attachments belong to a clinic (issue 10): a case may send only its own clinic's blobs, or one
a national or regional template shares; otherwise ``attachment-not-owned``, at intake and again
in the attachment check. On PostgreSQL, through the whole in-process pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.common import AttachmentRef
from contracts.message_composed import MessageComposedV1
from contracts.send_case import SendCaseV2
from producers import attachment_samples as samples
from producers.cli import app
from producers.client import OmvantClient
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from tests.reachable import reachable_residents
from tests.send_cases import greeting
from workers.attachments.ownership import store_attachment
from workers.settings import Settings
from workers.stage import emit
from workers.store import cases, notifications
from workers.store.engine import make_engine, upgrade
from workers.store.schema import blob_owners, case_events
from workers.store.schema import cases as cases_table

pytestmark = pytest.mark.integration

CLINIC_A = "SE2321000016-VC0A"
CLINIC_B = "SE2321000016-VC0B"
RESIDENT = reachable_residents(1, seed=1177)[0]


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


def request(clinic: str, key: str, *refs: AttachmentRef) -> SendCaseV2:
    return greeting(RESIDENT, key, clinic_hsa_id=clinic, attachments=list(refs))


def outcome(
    pipeline: InProcessPipeline, *requests: SendCaseV2
) -> dict[str, tuple[str, str | None]]:
    """Send the requests (the Python client's path) and wait until each is settled."""
    client = OmvantClient(pipeline.ctx.settings, broker=pipeline.ctx.broker)
    ids = [client.send(r) for r in requests]
    client.engine.dispose()

    def settled() -> int:
        with pipeline.ctx.engine.connect() as conn:
            return notifications.count_settled(conn, case_ids=list(ids))

    assert wait_for(settled, len(ids), timeout=30) == len(ids)
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                cases_table.c.idempotency_key, cases_table.c.state, cases_table.c.reason
            ).where(cases_table.c.id.in_(ids))
        )
        return {r.idempotency_key: (r.state, r.reason) for r in rows}


def rejected_by(pipeline: InProcessPipeline, key: str) -> str:
    """The stage that rejected the case with that idempotency key."""
    with pipeline.ctx.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(case_events.c.stage)
                .join(cases_table, cases_table.c.id == case_events.c.case_id)
                .where(cases_table.c.idempotency_key == key, case_events.c.state == "rejected")
            ).scalar_one()
        )


def letter_for(pipeline: InProcessPipeline, clinic: str, pages: int = 1) -> AttachmentRef:
    ctx = pipeline.ctx
    return store_attachment(
        ctx.engine, ctx.blobs, samples.pdf(pages), owner_hsa_id=clinic, filename="kallelse.pdf"
    )


def test_a_case_may_send_its_own_clinics_file_but_not_another_clinics(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    ref = letter_for(pipeline, CLINIC_A)
    got = outcome(
        pipeline,
        request(CLINIC_A, f"{queue_prefix}own", ref),
        request(CLINIC_B, f"{queue_prefix}foreign", ref),
    )
    assert got[f"{queue_prefix}own"] == ("notified", None)
    assert got[f"{queue_prefix}foreign"] == ("rejected", "attachment-not-owned")
    assert rejected_by(pipeline, f"{queue_prefix}foreign") == "recipient-validation"  # at intake


def test_the_same_bytes_uploaded_by_each_clinic_are_each_clinics_own(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    ref = letter_for(pipeline, CLINIC_A, pages=2)
    assert letter_for(pipeline, CLINIC_B, pages=2) == ref
    got = outcome(pipeline, request(CLINIC_B, f"{queue_prefix}b-has-it-too", ref))
    assert got[f"{queue_prefix}b-has-it-too"] == ("notified", None)


def test_a_file_shared_by_a_regional_template_may_be_sent_by_every_clinic(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    ctx = pipeline.ctx
    ref = store_attachment(
        ctx.engine,
        ctx.blobs,
        samples.pdf(3),
        owner_hsa_id="SE2321000016-REG1",
        filename="broschyr.pdf",
        shared=True,
        template_id="kallelse-screening",
    )
    got = outcome(pipeline, request(CLINIC_B, f"{queue_prefix}shared", ref))
    assert got[f"{queue_prefix}shared"] == ("notified", None)


def test_a_blob_stored_without_an_owner_is_nobodys_and_an_absent_one_is_missing(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    data = samples.pdf(4)
    behind_the_back = AttachmentRef(
        sha256=pipeline.ctx.blobs.put(data), filename="brev.pdf", size=len(data)
    )
    absent = AttachmentRef(sha256="ab" * 32, filename="brev.pdf", size=10)
    got = outcome(
        pipeline,
        request(CLINIC_A, f"{queue_prefix}unowned", behind_the_back),
        request(CLINIC_A, f"{queue_prefix}absent", absent),
    )
    assert got[f"{queue_prefix}unowned"] == ("rejected", "attachment-not-owned")
    assert got[f"{queue_prefix}absent"] == ("rejected", "attachment-missing")


def test_the_attachment_check_refuses_another_clinics_file_again(
    pipeline: InProcessPipeline, queue_prefix: str
) -> None:
    """Defence in depth: a composed message that never passed the intake's check (forged on the
    stage queue, or in flight while the file changed hands) is refused by the check itself."""
    ctx = pipeline.ctx
    ref = letter_for(pipeline, CLINIC_A, pages=5)
    case_id = f"{queue_prefix}forged"
    with ctx.engine.begin() as conn:
        cases.insert_received(
            conn,
            [
                {
                    "id": case_id,
                    "clinic_hsa_id": CLINIC_B,
                    "sender_hsa_id": "SE2321000016-S101",
                    "template_id": "meddelande-till-invanare",
                    "personnummer": RESIDENT,
                    "idempotency_key": case_id,
                    "intake_message_id": "m",
                }
            ],
        )
    emit(
        ctx,
        [
            MessageComposedV1(
                case_id=case_id,
                clinic_hsa_id=CLINIC_B,
                template_id="meddelande-till-invanare",
                template_version=1,
                personnummer=RESIDENT,
                channels=["sms"],
                subject="Meddelande",
                body="Hej",
                signature="Vårdcentralen",
                answerable=False,
                sent_on="2026-12-01",
                attachments=[ref],
            )
        ],
        correlation_id="forged",
    )

    def rejected() -> int:
        with ctx.engine.connect() as conn:
            return int(cases.states_of(conn, [case_id]).get(case_id) == "rejected")

    assert wait_for(rejected, 1, timeout=30) == 1
    with ctx.engine.connect() as conn:
        event = conn.execute(
            sa.select(case_events.c.stage, case_events.c.reason).where(
                case_events.c.case_id == case_id, case_events.c.state == "rejected"
            )
        ).one()
    assert (event.stage, event.reason) == ("attachment-check", "attachment-not-owned")


def test_attachments_put_records_the_owning_clinic_and_refuses_a_bad_one(
    tmp_path: Path, postgres_url: str
) -> None:
    letter = tmp_path / "kallelse.pdf"
    letter.write_bytes(samples.pdf(6))
    upgrade(postgres_url)
    env = {"OMVANT_BLOB_DIR": str(tmp_path / "blobs"), "OMVANT_DATABASE_URL": postgres_url}
    runner = CliRunner()

    def put(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["attachments", "put", str(letter), *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    code, _out, err = put()
    assert code == 2 and "--clinic" in err
    code, _out, err = put("--clinic", "SE2321000016-VC01\n")
    assert code == 2 and "invalid-hsa-id" in err
    code, _out, err = put("--template", "vc01.lokal-mall-som-inte-finns")
    assert code == 2 and "template-unknown" in err
    code, out, _err = put("--clinic", CLINIC_A)
    assert code == 0
    sha256 = json.loads(out)["sha256"]
    code, out, _err = put("--template", "kallelse-screening")
    assert code == 0
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(blob_owners.c.owner_hsa_id, blob_owners.c.shared).where(
                blob_owners.c.sha256 == sha256
            )
        ).all()
    engine.dispose()
    assert (CLINIC_A, False) in {(r.owner_hsa_id, r.shared) for r in rows}
    assert any(r.shared for r in rows)
