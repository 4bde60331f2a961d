"""``/v1/cases``: idempotency, clinic isolation, problem details, auth, rate and size limits."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from producers.web.rate_limits import KeyRateLimits
from tests.clocks import ManualClock
from tests.web.api_support import CLINIC_A, CLINIC_B, SENDER, app_for, make_key, record
from workers.store import access_log
from workers.store.engine import make_engine
from workers.store.schema import intake_keys

PROBLEM = "application/problem+json"


@pytest.fixture
def db(sqlite_url: str) -> str:
    return sqlite_url


def test_the_same_idempotency_key_and_body_gives_the_same_cases_with_200(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    body = [record("remiss-1"), record("remiss-2")]
    with TestClient(app_for(db)) as client:
        headers = {**key.headers, "Idempotency-Key": "req-1"}
        first = client.post("/v1/cases", json=body, headers=headers)
        again = client.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert again.status_code == 200, again.text
    assert first.json()["case_ids"] == again.json()["case_ids"]
    assert first.json()["accepted"] == 2
    assert len(set(first.json()["case_ids"])) == 2
    engine = make_engine(db)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(sa.func.count()).select_from(intake_keys)).scalar()
    assert keys == 2  # the repeat took nothing in again


def test_the_same_idempotency_key_with_another_body_is_422_with_a_reason(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db)) as client:
        headers = {**key.headers, "Idempotency-Key": "req-1"}
        assert client.post("/v1/cases", json=record("a"), headers=headers).status_code == 202
        other = client.post("/v1/cases", json=record("b"), headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == PROBLEM
    problem = other.json()
    assert problem["reason"] == "idempotency-key-reused"
    assert problem["type"] == "urn:omvant:reason:idempotency-key-reused"
    assert problem["status"] == 422


def test_a_record_key_seen_before_is_the_same_case_without_a_header(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db)) as client:
        first = client.post("/v1/cases", json=record("remiss-9"), headers=key.headers).json()
        second = client.post("/v1/cases", json=record("remiss-9"), headers=key.headers).json()
    assert first["case_ids"] == second["case_ids"]
    assert (first["accepted"], second["accepted"], second["duplicates"]) == (1, 0, 1)


def test_a_case_not_yet_recorded_by_the_pipeline_reads_queued(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db)) as client:
        case_id = client.post("/v1/cases", json=record("x"), headers=key.headers).json()[
            "case_ids"
        ][0]
        status = client.get(f"/v1/cases/{case_id}", headers=key.headers)
        upper = client.get(f"/v1/cases/{case_id.upper()}", headers=key.headers)
    assert status.status_code == 200
    assert status.json()["state"] == "queued"
    assert upper.status_code == 200 and upper.json()["id"] == case_id  # the same case
    assert "personnummer" not in status.text and "19121212" not in status.text


def test_a_key_for_clinic_a_cannot_send_read_or_steer_clinic_b(db: str) -> None:
    key_a = make_key(db, "journal-a", [CLINIC_A])
    key_b = make_key(db, "journal-b", [CLINIC_B])
    with TestClient(app_for(db)) as client:
        refused = client.post("/v1/cases", json=record("x", clinic=CLINIC_B), headers=key_a.headers)
        b_case = client.post("/v1/cases", json=record("y", clinic=CLINIC_B), headers=key_b.headers)
        case_id = b_case.json()["case_ids"][0]
        read = client.get(f"/v1/cases/{case_id}", headers=key_a.headers)
        missing = client.get("/v1/cases/no-such-case", headers=key_a.headers)
        batch = client.post(
            "/v1/batches",
            json={
                "clinic_hsa_id": CLINIC_B,
                "sender_hsa_id": SENDER,
                "template_id": "meddelande-till-invanare",
                "recipients": [{"personnummer": "19121212-1212"}],
            },
            headers=key_b.headers,
        )
        batch_id = batch.json()["id"]
        seen = client.get(f"/v1/batches/{batch_id}", headers=key_a.headers)
        paused = client.post(f"/v1/batches/{batch_id}/pause", headers=key_a.headers)
        into_b = client.post(
            "/v1/cases", json=record("z", batch_id=batch_id), headers=key_a.headers
        )
        own = client.get(f"/v1/batches/{batch_id}", headers=key_b.headers)
    assert refused.status_code == 403 and refused.json()["reason"] == "clinic-not-allowed"
    assert batch.status_code == 202, batch.text
    # another clinic's case or batch reads exactly like one that does not exist
    assert read.status_code == 404 and missing.status_code == 404
    assert read.json()["reason"] == missing.json()["reason"] == "not-found"
    assert seen.status_code == paused.status_code == into_b.status_code == 404
    assert own.status_code == 200 and own.json()["status"] == "running"
    engine = make_engine(db)
    with engine.connect() as conn:
        logged = access_log.entries(conn, CLINIC_A)
    attempts = [e for e in logged if case_id in e.case_ids]
    assert attempts and attempts[0].user_hsa_id == "api:journal-a"
    assert attempts[0].action == "api-case-not-found"


def test_no_key_or_a_revoked_key_is_401_problem(db: str) -> None:
    from workers.store import api_keys

    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db)) as client:
        missing = client.get("/v1/cases/x")
        wrong = client.get("/v1/cases/x", headers={"Authorization": "Bearer journal-a.nope"})
        with make_engine(db).begin() as conn:
            api_keys.revoke(conn, "journal-a")
        revoked = client.get("/v1/cases/x", headers=key.headers)
    assert missing.status_code == 401 and missing.json()["reason"] == "api-key-missing"
    assert wrong.status_code == 401 and wrong.json()["reason"] == "api-key-invalid"
    assert revoked.status_code == 401 and revoked.json()["reason"] == "api-key-invalid"
    assert missing.headers["content-type"] == PROBLEM


def test_a_key_over_its_rate_gets_429_with_retry_after(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A], rate=3)
    clock = ManualClock(1_800_000_000.25)
    app = app_for(db)
    app.state.omvant.rate_limits = KeyRateLimits(None, clock=clock)
    with TestClient(app) as client:
        first = [client.get("/v1/cases/x", headers=key.headers).status_code for _ in range(8)]
        limited = client.get("/v1/cases/x", headers=key.headers)
        clock.now += 0.7  # the same second still
        same = client.get("/v1/cases/x", headers=key.headers).status_code
        clock.now += 0.1  # the next second: a new budget
        after = [client.get("/v1/cases/x", headers=key.headers).status_code for _ in range(4)]
    assert first == [404, 404, 404] + [429] * 5  # three a second get through, in order
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["reason"] == "rate-limited"
    assert same == 429 and after == [404, 404, 404, 429]


def test_a_body_over_the_limit_is_413_before_the_route(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db, api_max_body_bytes=4096)) as client:
        big = [record(f"k{i}", free_text="x" * 500) for i in range(20)]
        answer = client.post("/v1/cases", content=json.dumps(big), headers=key.headers)
    assert answer.status_code == 413
    assert answer.json()["reason"] == "request-too-large"


def test_a_record_breaking_the_schema_is_422_naming_the_field(db: str) -> None:
    key = make_key(db, "journal-a", [CLINIC_A])
    with TestClient(app_for(db)) as client:
        answer = client.post(
            "/v1/cases", json=[record("a"), record("b", clinic="nope")], headers=key.headers
        )
        too_many = client.post(
            "/v1/cases", json=[record(f"k{i}") for i in range(1001)], headers=key.headers
        )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["reason"] == "invalid-payload"
    assert any("clinic_hsa_id" in e["field"] for e in problem["errors"])
    assert too_many.status_code == 422 and too_many.json()["reason"] == "too-many-records"
