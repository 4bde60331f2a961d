"""The intake bridge's decisions: who signed a message, what it holds, and idempotency keys."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from contracts.send_case import case_id_for
from tests.databases import migrated_engine
from workers.intake_bridge import Accepted, IntakeError, check, sign
from workers.store import intake_keys

KEYS = {"journal-a": "secret-a", "booking-b": "secret-b"}
RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "19121212-1212",
    "idempotency_key": "journal-a:1",
}


def headers(body: bytes, key_id: str = "journal-a", version: str = "1") -> dict[str, str]:
    return {
        "omvant-key-id": key_id,
        "omvant-signature": sign(body, KEYS.get(key_id, "x")),
        "omvant-contract-version": version,
    }


def test_a_signed_v1_record_is_accepted_as_the_latest_version() -> None:
    body = json.dumps(RECORD).encode()
    verdict = check(body, headers(body), KEYS, {})
    assert isinstance(verdict, Accepted)
    assert verdict.integration == "journal-a"
    assert verdict.requests[0].fields == {}
    assert verdict.requests[0].resolved_case_id() == case_id_for("SE2321000016-VC01", "journal-a:1")


def test_a_signature_with_the_sha256_prefix_is_accepted() -> None:
    body = json.dumps(RECORD).encode()
    given = headers(body)
    given["omvant-signature"] = "sha256=" + given["omvant-signature"]
    assert isinstance(check(body, given, KEYS, {}), Accepted)


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        (lambda b, h: h.pop("omvant-signature"), "signature-missing", "omvant-signature"),
        (lambda b, h: h.pop("omvant-key-id"), "signature-missing", "omvant-key-id"),
        (lambda b, h: h.update({"omvant-key-id": "nobody"}), "unknown-key-id", "omvant-key-id"),
        (
            lambda b, h: h.update({"omvant-signature": sign(b, "secret-b")}),
            "signature-invalid",
            "omvant-signature",
        ),
        (
            lambda b, h: h.pop("omvant-contract-version"),
            "contract-version-missing",
            "omvant-contract-version",
        ),
        (
            lambda b, h: h.update({"omvant-contract-version": "9"}),
            "unknown-contract-version",
            "omvant-contract-version",
        ),
    ],
)
def test_unsigned_forged_or_unversioned_messages_are_refused(
    change: object, reason: str, field: str
) -> None:
    body = json.dumps(RECORD).encode()
    given = headers(body)
    change(body, given)  # type: ignore[operator]
    verdict = check(body, given, KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert (verdict.reason, verdict.field) == (reason, field)


def test_a_body_changed_after_signing_is_refused() -> None:
    body = json.dumps(RECORD).encode()
    given = headers(body)
    verdict = check(body.replace(b"1212-1212", b"1212-1213"), given, KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert verdict.reason == "signature-invalid"


def test_an_invalid_record_in_an_array_names_its_index_field_and_rule() -> None:
    body = json.dumps([RECORD, {**RECORD, "template_id": "Not Valid"}]).encode()
    verdict = check(body, headers(body, version="2"), KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert (verdict.reason, verdict.field, verdict.rule) == (
        "invalid-payload",
        "[1].template_id",
        "string_pattern_mismatch",
    )
    assert "Not Valid" not in verdict.message  # values never echoed (they may be personal)


def test_v2_fields_are_refused_on_a_v1_message() -> None:
    body = json.dumps({**RECORD, "fields": {"namn": "Tolvan"}}).encode()
    verdict = check(body, headers(body, version="1"), KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert (verdict.field, verdict.rule) == ("fields", "extra_forbidden")


def test_an_integration_may_send_only_for_its_clinics() -> None:
    body = json.dumps(RECORD).encode()
    verdict = check(body, headers(body), KEYS, {"journal-a": ["SE2321000016-VC02"]})
    assert isinstance(verdict, IntakeError)
    assert verdict.reason == "clinic-not-allowed"


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1"])
def test_json_nested_too_deep_is_malformed_not_a_crash(body: bytes) -> None:
    verdict = check(body, headers(body), KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert verdict.reason == "malformed-message" and verdict.rule == "json"


def test_not_json_is_malformed() -> None:
    body = b"\xff\xfe not json"
    verdict = check(body, headers(body), KEYS, {})
    assert isinstance(verdict, IntakeError)
    assert verdict.reason == "malformed-message"


def test_the_same_key_within_the_window_is_one_case_and_after_it_a_new_one(
    sqlite_url: str,
) -> None:
    engine = migrated_engine(sqlite_url)
    body = json.dumps(RECORD).encode()
    verdict = check(body, headers(body), KEYS, {})
    assert isinstance(verdict, Accepted)
    request = verdict.requests[0]
    window = dt.timedelta(days=30)
    with engine.begin() as conn:
        first = intake_keys.claim(conn, [request, request], window=window)
        assert [c.send for c in first] == [True, False]  # the same key twice in one round
        intake_keys.record(conn, [(first[0], "journal-a")])
    with engine.begin() as conn:
        again = intake_keys.claim(conn, [request], window=window)
    assert not again[0].send
    assert again[0].request.resolved_case_id() == request.resolved_case_id()
    with engine.begin() as conn:
        later = intake_keys.claim(conn, [request], window=dt.timedelta(0))
        intake_keys.record(conn, [(later[0], "journal-a")])
    assert later[0].send
    assert later[0].generation == 1
    assert later[0].request.resolved_case_id() != request.resolved_case_id()
    engine.dispose()


def test_a_key_restricted_to_a_clinic_may_not_name_another_configured_unit_as_sender() -> None:
    clinics = {"journal-a": ["SE2321000016-VC01"], "booking-b": ["SE2321000016-VC02"]}
    body = json.dumps({**RECORD, "sender_hsa_id": "SE2321000016-VC02"}).encode()
    verdict = check(body, headers(body), KEYS, clinics)
    assert isinstance(verdict, IntakeError)
    assert (verdict.reason, verdict.field) == ("clinic-not-allowed", "[0].sender_hsa_id")
    person = json.dumps(RECORD).encode()  # a member of staff is no unit: allowed
    assert isinstance(check(person, headers(person), KEYS, clinics), Accepted)
    own = json.dumps({**RECORD, "sender_hsa_id": "SE2321000016-VC01"}).encode()
    assert isinstance(check(own, headers(own), KEYS, clinics), Accepted)


def test_keys_are_scoped_to_the_integration_and_long_keys_stay_distinct() -> None:
    from contracts.send_case import SendCaseV2

    request = SendCaseV2.model_validate(RECORD)
    scoped = intake_keys.scoped_to(request, "journal-a")
    assert scoped.idempotency_key == "journal-a/journal-a:1"
    assert (
        scoped.resolved_case_id() != intake_keys.scoped_to(request, "booking-b").resolved_case_id()
    )
    long_a, long_b = ("x" * 199 + "a"), ("x" * 199 + "b")
    bounded = {intake_keys.bounded(f"journal-a/{k}") for k in (long_a, long_b)}
    assert len(bounded) == 2 and all(len(k) <= 200 for k in bounded)
    assert intake_keys.bounded("short") == "short"
