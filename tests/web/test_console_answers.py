"""The resident's answer on the case page: opened only for staff of the clinic that owns the
case (as ``omvant cases show --answer``), and every read written to the access log."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.databases import migrated_engine
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from tests.web.console_support import (
    CLINIC_A,
    CLINIC_B,
    NURSE_A,
    NURSE_B,
    add_users,
    build_app,
    sign_in,
)
from workers.answer_seal import answer_seal
from workers.settings import Settings
from workers.store import answers
from workers.store.schema import access_log

ANSWER = "Jag har haft feber i tre dagar."
QUESTION = "Hur länge har du haft besvär?"


@pytest.fixture
def client(sqlite_url: str, tmp_path: object) -> Iterator[TestClient]:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    settings = Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs")
    residents = reachable_residents(1177, 2, frozenset({"sms"}))
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        store_cleared(
            conn,
            [
                cleared_item("answered", residents[0], clinic=CLINIC_A, channels=["sms"]),
                cleared_item("silent", residents[1], clinic=CLINIC_A, channels=["sms"]),
            ],
        )
        sealed = answer_seal(settings).seal(
            json.dumps(
                {"text": ANSWER, "question_answers": [{"question": QUESTION, "answer": "3 dagar"}]},
                ensure_ascii=False,
            )
        )
        answers.add(
            conn, case_id="answered", clinic_hsa_id=CLINIC_A, kind="answer", sealed=sealed,
            answered_at=now,
        )  # fmt: skip
        conn.execute(
            sa.text("UPDATE cases SET answered_at = :at, answer_kind = 'answer' WHERE id = :id"),
            {"at": now, "id": "answered"},
        )
    engine.dispose()
    with TestClient(build_app(settings)) as test_client:
        yield test_client


def _log(client: TestClient, action: str) -> list[sa.Row[object]]:
    engine = client.app.state.console.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(access_log).where(access_log.c.action == action).order_by(access_log.c.id)
            )
        )


def test_the_case_page_offers_the_answer_and_opens_it_only_when_asked(client: TestClient) -> None:
    sign_in(client, "nurse-a")
    page = html.unescape(client.get("/arenden/answered").text)
    assert 'id="show-answer"' in page and ANSWER not in page
    assert _log(client, "cases-show-answer") == []
    opened = html.unescape(client.get("/arenden/answered?svar=1").text)
    assert ANSWER in opened and QUESTION in opened and "3 dagar" in opened
    assert "no-store" in client.get("/arenden/answered?svar=1").headers["cache-control"]
    reads = _log(client, "cases-show-answer")
    assert len(reads) == 2 and {r.user_hsa_id for r in reads} == {NURSE_A}
    assert {r.outcome for r in reads} == {"allowed"}
    assert 'id="answer-none"' in client.get("/arenden/silent?svar=1").text


def test_another_clinics_staff_and_oncall_cannot_open_the_answer(client: TestClient) -> None:
    sign_in(client, "nurse-b")
    refused = client.get("/arenden/answered?svar=1")
    assert refused.status_code == 404 and ANSWER not in html.unescape(refused.text)
    shown = _log(client, "cases-show")
    assert shown and shown[-1].user_hsa_id == NURSE_B and shown[-1].outcome == "refused"
    assert shown[-1].unit_hsa_id == CLINIC_B
    tried = _log(client, "cases-show-answer")  # what was attempted is logged, refused
    assert [(r.user_hsa_id, r.outcome) for r in tried] == [(NURSE_B, "refused")]
    client.cookies.clear()
    sign_in(client, "oncall")
    assert client.get("/arenden/answered?svar=1").status_code == 403
    assert all(r.user_hsa_id == NURSE_B for r in _log(client, "cases-show"))
    assert [r.outcome for r in _log(client, "cases-show-answer")] == ["refused"], "none opened"
