"""Recipient validation's reasons, end to end: cases sent through the in-process pipeline
(memory broker, SQLite) come out rejected with the right reason and detail, or move on with
their channels; over HTTP, a short outage is retried and a refusal rejects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers.demo import InProcessPipeline, count_settled, start_pipeline, wait_for
from tests.unit.test_recipient_validation import (
    BLOCKED,
    BOTH,
    COORDS,
    DEACTIVATED,
    EMAIL_ONLY,
    NO_ACCOUNT,
    NO_CHANNEL,
    SIMULATOR,
    SMS_ONLY,
    short,
)
from workers.adapters.directory_server import DirectoryServer, Faults
from workers.reasons import Reason
from workers.recipient_validation import UNREACHABLE_DETAIL
from workers.settings import Settings
from workers.stage import emit
from workers.store.schema import cases as cases_table

pytestmark = pytest.mark.integration


def send_cases(numbers: list[str], batch_id: str) -> list[SendCaseV2]:
    return [
        SendCaseV2(
            clinic_hsa_id="SE2321000016-VC01",
            sender_hsa_id="SE2321000016-S101",
            template_id="meddelande-till-invanare",
            fragments=["halsning", "aterkom"],
            personnummer=number,
            idempotency_key=f"{batch_id}:{index}",
            batch_id=batch_id,
        )
        for index, number in enumerate(numbers)
    ]


def outcomes(pipeline: InProcessPipeline, batch_id: str) -> dict[str, dict[str, Any]]:
    """Each case's state, reason, detail and channels, by the idempotency key's index."""
    columns = cases_table.c
    query = sa.select(
        columns.idempotency_key, columns.state, columns.reason, columns.detail, columns.channels
    ).where(columns.batch_id == batch_id)
    with pipeline.ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        row.idempotency_key.split(":")[1]: {
            "state": row.state,
            "reason": row.reason,
            "detail": row.detail,
            "channels": row.channels,
        }
        for row in rows
    }


def run_batch(pipeline: InProcessPipeline, numbers: list[str], batch_id: str) -> dict[str, Any]:
    emit(pipeline.ctx, send_cases(numbers, batch_id), correlation_id=batch_id)
    settled = wait_for(lambda: count_settled(pipeline.ctx, batch_id), len(numbers), timeout=60)
    assert settled == len(numbers), outcomes(pipeline, batch_id)
    return outcomes(pipeline, batch_id)


def settings_for(tmp_path: Path, queue_prefix: str, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/omvant.db",
        blob_dir=tmp_path / "blobs",
        queue_prefix=queue_prefix,
        broker_url="memory://",
        seed=1177,
        **extra,
    )


@pytest.fixture
def simulated(tmp_path: Path, queue_prefix: str) -> Iterator[InProcessPipeline]:
    pipeline = start_pipeline(settings_for(tmp_path, queue_prefix), threads=4)
    yield pipeline
    pipeline.stop()


def test_every_reason_comes_out_of_the_pipeline(simulated: InProcessPipeline) -> None:
    numbers = [
        NO_ACCOUNT,
        f"{BLOCKED[:8]}-{BLOCKED[8:]}",
        DEACTIVATED,
        NO_CHANNEL,
        COORDS[0],
        "199001012386",
        "202100-5448",
        "19900101-T385",
        BOTH,
        short(SMS_ONLY),
    ]
    seen = run_batch(simulated, numbers, "reasons")
    rejected = {k: (v["reason"], v["detail"]) for k, v in seen.items() if v["state"] == "rejected"}
    assert rejected == {
        "0": ("no-account", UNREACHABLE_DETAIL[Reason.NO_ACCOUNT]),
        "1": ("login-blocked", UNREACHABLE_DETAIL[Reason.LOGIN_BLOCKED]),
        "2": ("account-deactivated", UNREACHABLE_DETAIL[Reason.ACCOUNT_DEACTIVATED]),
        "3": ("no-notification-channel", UNREACHABLE_DETAIL[Reason.NO_NOTIFICATION_CHANNEL]),
        "4": ("samordningsnummer-not-reachable", "a samordningsnummer cannot log in to 1177"),
        "5": ("invalid-identity-number", "check-digit"),
        "6": ("invalid-identity-number", "organisation-number"),
        "7": ("invalid-identity-number", "interim-number"),
    }
    assert seen["8"]["state"] in ("delivered", "notified") and seen["8"]["channels"] == "sms,email"
    assert seen["9"]["state"] in ("delivered", "notified") and seen["9"]["channels"] == "sms"


def test_over_http_an_outage_is_retried_and_a_refusal_rejects(
    tmp_path: Path, queue_prefix: str
) -> None:
    with DirectoryServer(SIMULATOR, faults=Faults(status=503, times=2)) as server:
        settings = settings_for(tmp_path, queue_prefix, directory_url=server.url, max_retries=5)
        pipeline = start_pipeline(settings, threads=4)
        try:
            seen = run_batch(pipeline, [BOTH, BLOCKED, short(SMS_ONLY)], "outage")
            assert [seen[k]["state"] for k in "012"][1] == "rejected"
            assert seen["1"]["reason"] == "login-blocked"
            assert {seen[k]["state"] for k in "02"} <= {"delivered", "notified"}
            assert server.requests >= 3  # two failed, then answers

            server.faults = Faults(status=401)
            seen = run_batch(pipeline, [EMAIL_ONLY, "x", COORDS[0]], "refused")
            assert [seen[k]["reason"] for k in "012"] == [
                "directory-refused",
                "invalid-identity-number",
                "samordningsnummer-not-reachable",
            ]
            assert "HTTP 401" in seen["0"]["detail"]
        finally:
            pipeline.stop()
