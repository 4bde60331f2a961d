"""Properties of the intake's decode-and-validate function: bytes and headers in, an accepted
record or a reason out, never an exception; and what a reject keeps."""

from __future__ import annotations

import bz2
import json
import lzma
import re
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.intake_bridge import (
    Accepted,
    Delivery,
    IntakeError,
    IntakeRules,
    evaluate,
    reject_record,
    sign,
)
from workers.reasons import Reason

KEYS = {"journal-a": "secret-a"}
RULES = IntakeRules(KEYS, {}, max_body_bytes=64 * 1024)
REASONS = {r.value for r in Reason}
RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "19121212-1212",
    "idempotency_key": "journal-a:1",
}

header_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
header_names = st.one_of(
    st.sampled_from(
        ["omvant-key-id", "omvant-signature", "omvant-contract-version", "compression"]
    ),
    st.text(max_size=20),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)
encodings = st.one_of(
    st.none(),
    st.sampled_from(["utf-8", "UTF8", "latin-1", "binary", "utf-16", "rot13", "base64", "x"]),
    st.text(max_size=50),
    st.binary(max_size=10),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    headers=st.dictionaries(header_names, header_values, max_size=6),
    encoding=encodings,
    sign_it=st.booleans(),
)
def test_any_body_and_headers_give_a_verdict_never_an_exception(
    body: bytes | str, headers: dict[str, object], encoding: object, sign_it: bool
) -> None:
    if sign_it:
        raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        headers = {
            **headers,
            "omvant-key-id": "journal-a",
            "omvant-signature": sign(raw, "secret-a"),
        }
    delivery = Delivery(body, headers, content_encoding=encoding)
    verdict = evaluate(delivery, RULES)
    assert isinstance(verdict, Accepted | IntakeError)
    if isinstance(verdict, IntakeError):
        assert verdict.reason in REASONS
        record = json.loads(reject_record(delivery, verdict))
        assert record["reason"] == verdict.reason
        assert "\x00" not in json.dumps(record, ensure_ascii=False)
        if verdict.integration is None:  # unauthenticated: nothing of the body in clear
            assert "body" not in record and "body_base64" not in record
            assert not re.search(r"[0-9]", str(record["excerpt"]).replace("9", ""))


compressors = {
    None: lambda b: b,
    "application/x-gzip": zlib.compress,
    "gzip": zlib.compress,
    "bzip2": bz2.compress,
    "application/x-lzma": lzma.compress,
}


@settings(max_examples=150)
@given(
    key=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"]),
        min_size=1,
        max_size=60,
    ),
    free_text=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=80)
    | st.just("rad ett\nrad två\tmed tab"),
    encoding=st.sampled_from([None, "utf-8", "utf-16", "utf-32", "binary"]),
    compression=st.sampled_from(list(compressors)),
    as_list=st.booleans(),
)
def test_a_signed_valid_record_is_accepted_in_any_encoding_and_compression(
    key: str, free_text: str, encoding: str | None, compression: str | None, as_list: bool
) -> None:
    data = {**RECORD, "idempotency_key": key, "free_text": free_text}
    text = json.dumps([data] if as_list else data, ensure_ascii=False)
    raw = text.encode(encoding if encoding not in (None, "binary") else "utf-8")
    wire = compressors[compression](raw)
    headers: dict[str, object] = {
        "omvant-key-id": "journal-a",
        "omvant-signature": sign(wire, "secret-a"),
        "omvant-contract-version": "1",
    }
    if compression:
        headers["compression"] = compression
    verdict = evaluate(Delivery(wire, headers, content_encoding=encoding), RULES)
    assert isinstance(verdict, Accepted), verdict
    assert verdict.requests[0].idempotency_key == key
    assert verdict.requests[0].free_text == free_text


@settings(max_examples=150)
@given(
    where=st.sampled_from(["idempotency_key", "personnummer", "fragments", "free_text"]),
    char=st.characters(categories=["Cc", "Cs"]).filter(lambda c: c not in "\t\n\r")
    | st.sampled_from(["\x00", "\ud800", "\x1b"]),
)
def test_control_characters_and_lone_surrogates_are_refused_naming_the_field_and_rule(
    where: str, char: str
) -> None:
    value = f"abc{char}def"
    data = {**RECORD, where: [value] if where == "fragments" else value}
    body = json.dumps(data).encode()  # json escapes them: \\u0000, \\ud800
    headers = {
        "omvant-key-id": "journal-a",
        "omvant-signature": sign(body, "secret-a"),
        "omvant-contract-version": "1",
    }
    verdict = evaluate(Delivery(body, headers), RULES)
    assert isinstance(verdict, IntakeError)
    assert verdict.reason == "invalid-payload"
    assert verdict.field.split(".")[0] == where
    # pydantic itself refuses a lone surrogate as not a valid string (string_unicode)
    assert verdict.rule in {"control-character", "string_unicode"}
    if verdict.rule == "control-character":
        assert "position 3" in verdict.message


@given(version=st.text(max_size=8) | st.integers() | st.just("1" * 5000) | st.just("²"))
def test_a_version_header_is_one_to_four_ascii_digits_naming_a_published_version(
    version: object,
) -> None:
    body = json.dumps(RECORD).encode()
    headers = {
        "omvant-key-id": "journal-a",
        "omvant-signature": sign(body, "secret-a"),
        "omvant-contract-version": version,
    }
    verdict = evaluate(Delivery(body, headers), RULES)
    if str(version) in {"1", "2", "01", "001", "0001", "02", "002", "0002"}:
        assert isinstance(verdict, Accepted)
    else:
        assert isinstance(verdict, IntakeError)
        assert verdict.field == "omvant-contract-version"
