"""References and kept verdicts on PostgreSQL (the servers' database), as on SQLite."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from producers import attachment_samples as samples
from tests.databases import migrated_engine
from tests.delivery_support import received_row
from workers.attachments import references
from workers.attachments.checker import inspect
from workers.attachments.limits import Limits
from workers.attachments.scanner import SimulatedVirusScanner
from workers.case_states import CaseState
from workers.store import cases
from workers.store.cases import Transition

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> sa.Engine:
    return migrated_engine(postgres_url)


def test_references_count_only_live_cases_on_postgres(engine: sa.Engine) -> None:
    run = uuid.uuid4().hex[:8]
    sha = uuid.uuid4().hex * 2
    ids = [f"{run}-{n}" for n in range(3)]
    with engine.begin() as conn:
        cases.insert_received(conn, [received_row(case_id) for case_id in ids])
        references.record(conn, [(case_id, sha) for case_id in ids])
        references.record(conn, [(ids[0], sha)])
    with engine.connect() as conn:
        assert references.live_references(conn, [sha]) == {sha}
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert references.live_references(conn, [sha], since=future) == set()
    with engine.begin() as conn:
        cases.apply(
            conn, [Transition(c, CaseState.REJECTED, reason="no-account") for c in ids], stage="t"
        )
    with engine.connect() as conn:
        assert references.live_references(conn, [sha]) == set()


def test_verdicts_are_kept_once_and_read_back_whole_on_postgres(engine: sa.Engine) -> None:
    scanner = SimulatedVirusScanner()
    photo = inspect(samples.jpeg_with_gps(40, 30), Limits(), scanner)
    refused = inspect(samples.pdf_with_javascript(), Limits(), scanner)
    policy = f"test-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        references.save_verdicts(conn, [photo, refused], policy)
        references.save_verdicts(conn, [photo], policy)
    with engine.connect() as conn:
        kept = references.load_verdicts(conn, [photo.sha256, refused.sha256, "0" * 64], policy)
    assert set(kept) == {photo.sha256, refused.sha256}
    assert kept[photo.sha256].ok and kept[photo.sha256].cleaned_sha256 == photo.cleaned_sha256
    assert kept[refused.sha256].reason == refused.reason
    with engine.begin() as conn:
        references.forget(conn, [photo.cleaned_sha256 or ""])
    with engine.connect() as conn:
        assert set(references.load_verdicts(conn, [photo.sha256, refused.sha256], policy)) == {
            refused.sha256
        }
