"""Bodies an integration should not send: each is a 4xx problem with a reason, never a 5xx,
and nothing of it is stored."""

from __future__ import annotations

import zlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.web.api_support import CLINIC_A, SENDER, app_for, make_key
from workers.store import access_log
from workers.store.engine import make_engine
from workers.store.schema import batches

TEMPLATE = "meddelande-till-invanare"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"recipients": [{"personnummer": "19121212-1212", "fields": {"namn": "A\x00B"}}]}, 422),
        ({"recipients": [{"personnummer": "19121212-1212", "fields": {"namn": "A\ufeff"}}]}, 202),
        ({"name": "utskick\x00"}, 422),
        ({"name": "utskick\u202e"}, 422),
    ],
    ids=["nul-in-a-field", "format-char-in-free-text-is-text", "nul-in-the-name", "bidi-name"],
)
def test_a_batch_with_control_characters_is_refused_before_anything_is_stored(
    sqlite_url: str, change: dict[str, object], status: int
) -> None:
    key = make_key(sqlite_url, "journal-a", [CLINIC_A])
    body = {
        "clinic_hsa_id": CLINIC_A,
        "sender_hsa_id": SENDER,
        "template_id": TEMPLATE,
        "recipients": [{"personnummer": "19121212-1212"}],
        **change,
    }
    with TestClient(app_for(sqlite_url), raise_server_exceptions=False) as client:
        answer = client.post("/v1/batches", json=body, headers=key.headers)
    with make_engine(sqlite_url).connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar()
    assert answer.status_code == status, answer.text
    if status == 202:  # a format character is text, not a control, in free text
        return
    assert answer.json()["reason"] == "invalid-payload"
    assert answer.json()["errors"][0]["rule"] in {"control-character", "bidi-control"}
    assert stored == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    "path",
    [
        "/v1/cases/abc%00def",
        "/v1/cases/%ED%A0%80",
        "/v1/batches/abc%00def",
        "/v1/batches/abc%00def/pause",
    ],
)
def test_an_id_no_case_or_batch_can_have_is_404_on_postgresql_and_the_attempt_logged(
    postgres_url: str, path: str
) -> None:
    who = f"journal-nul-{zlib.crc32(path.encode())}"
    key = make_key(postgres_url, who, [CLINIC_A])
    with TestClient(app_for(postgres_url), raise_server_exceptions=False) as client:
        method = client.post if path.endswith("pause") else client.get
        answer = method(path, headers=key.headers)
    assert answer.status_code == 404, answer.text
    assert answer.json()["reason"] == "not-found"
    if path.startswith("/v1/cases"):
        with make_engine(postgres_url).connect() as conn:
            last = access_log.entries(conn, CLINIC_A)[-1]
        assert last.action == "api-case-not-found" and last.user_hsa_id == f"api:{who}"
        assert "\x00" not in last.case_ids
