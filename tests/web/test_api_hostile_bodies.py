"""Bodies an integration should not send: each is a 4xx problem with a reason, never a 5xx,
and nothing of it is stored."""

from __future__ import annotations

import json
import zlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.web.api_support import CLINIC_A, SENDER, app_for, make_key, record
from workers.store import access_log
from workers.store.engine import make_engine
from workers.store.schema import batches, intake_keys

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


def _twice(text: str, key: str, first: str, second: str) -> str:
    """``text`` (a JSON object holding ``"key": second``) with ``"key": first`` before it."""
    marker = f'"{key}": "{second}"'
    assert marker in text
    return text.replace(marker, f'"{key}": "{first}", {marker}', 1)


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        (
            "/v1/cases",
            _twice(json.dumps(record("dup-1")), "personnummer", "20080808-2383", "19121212-1212"),
            "personnummer",
        ),
        (
            "/v1/cases",
            _twice(json.dumps([record("dup-2")]), "template_id", "kallelse-screening", TEMPLATE),
            "template_id",
        ),
        (
            "/v1/batches",
            _twice(
                json.dumps(
                    {
                        "clinic_hsa_id": CLINIC_A,
                        "sender_hsa_id": SENDER,
                        "template_id": TEMPLATE,
                        "recipients": [{"personnummer": "19121212-1212"}],
                    }
                ),
                "personnummer",
                "20080808-2383",
                "19121212-1212",
            ),
            "personnummer",
        ),
    ],
    ids=["a-case-field", "a-field-of-a-record-in-a-list", "a-nested-recipient"],
)
def test_a_key_twice_in_one_object_is_refused_with_its_reason_and_nothing_is_taken_in(
    sqlite_url: str, path: str, body: str, key: str
) -> None:
    api_key = make_key(sqlite_url, "journal-a", [CLINIC_A])
    headers = {**api_key.headers, "content-type": "application/json"}
    with TestClient(app_for(sqlite_url), raise_server_exceptions=False) as client:
        answer = client.post(path, content=body, headers=headers)
        once = client.post(path, content=json.dumps(json.loads(body)), headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["reason"] == "duplicate-json-key"
    assert problem["type"] == "urn:omvant:reason:duplicate-json-key"
    assert problem["errors"] == [
        {"field": key, "rule": "duplicate-key", "message": "each key at most once per object"}
    ]
    assert once.status_code == 202, once.text  # the same body with the key once is taken in
    with make_engine(sqlite_url).connect() as conn:
        taken = conn.execute(sa.select(sa.func.count()).select_from(intake_keys)).scalar()
        stored_batches = conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar()
    assert (taken if path == "/v1/cases" else stored_batches) == 1  # the accepted body only


def test_the_strict_reading_refuses_repeats_at_any_depth_and_keeps_the_rest_of_json() -> None:
    from producers.web.api.strict_json import DuplicateKey, loads_strictly

    assert loads_strictly('{"a": [{"b": 1}, {"b": 2}], "c": {"d": null}}') == {
        "a": [{"b": 1}, {"b": 2}],
        "c": {"d": None},
    }
    for text in ('{"a": 1, "a": 1}', '[{"x": {"y": 1, "y": 2}}]', '{"a": {}, "b": 0, "a": []}'):
        with pytest.raises(DuplicateKey):
            loads_strictly(text)


@pytest.mark.parametrize(
    "body",
    ['{"a": ' * 100_000 + "1" + "}" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a": 1,,}', "\xff"],
    ids=["objects-nested-past-the-parser", "lists-nested-past-the-parser", "not-json", "not-utf-8"],
)
def test_a_body_the_strict_reading_cannot_parse_is_a_4xx_not_a_5xx(
    sqlite_url: str, body: str
) -> None:
    api_key = make_key(sqlite_url, "journal-a", [CLINIC_A])
    headers = {**api_key.headers, "content-type": "application/json"}
    with TestClient(app_for(sqlite_url), raise_server_exceptions=False) as client:
        answer = client.post("/v1/cases", content=body.encode("latin-1"), headers=headers)
    assert 400 <= answer.status_code < 500, answer.text[:300]
