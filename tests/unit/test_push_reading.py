"""Reading SendCase JSONL for ``omvant push``: invalid lines are reported, valid ones kept."""

from __future__ import annotations

import json

from contracts.send_case import SendCaseV2
from producers.intake import LineError, read_send_cases

GOOD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "191212121212",
    "idempotency_key": "k1",
}


def test_every_line_gets_a_verdict_and_none_is_lost() -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "template_id": "Bad Id"}),
        "",
        "[1, 2]",
        json.dumps({**GOOD, "idempotency_key": "k2", "fields": {"namn": "Tolvan"}}),
    ]
    results = list(read_send_cases(lines))
    assert [type(r).__name__ for r in results] == [
        "SendCaseV2",
        "LineError",
        "LineError",
        "LineError",
        "SendCaseV2",
    ]
    errors = [r for r in results if isinstance(r, LineError)]
    assert [(e.line, e.reason) for e in errors] == [
        (2, "malformed-message"),
        (3, "invalid-payload"),
        (5, "invalid-payload"),
    ]
    assert "template_id" in errors[1].detail


def test_version_1_lines_are_upcast() -> None:
    (result,) = read_send_cases([json.dumps(GOOD)], version=1)
    assert isinstance(result, SendCaseV2) and result.fields == {}
    (refused,) = read_send_cases([json.dumps({**GOOD, "fields": {}})], version=1)
    assert isinstance(refused, LineError)


def test_a_line_nested_too_deep_is_malformed_not_a_crash() -> None:
    results = list(read_send_cases(["[" * 100_000, json.dumps(GOOD)]))
    assert isinstance(results[0], LineError) and results[0].reason == "malformed-message"
    assert not isinstance(results[1], LineError)


def test_a_line_with_a_key_twice_is_refused_not_the_last_one_kept() -> None:
    good = json.dumps(GOOD)
    twice = good[:-1] + ', "idempotency_key": "dup"}'
    nested = json.dumps({**GOOD, "fields": {"namn": "A"}})[:-2] + ', "namn": "B"}}'
    results = list(read_send_cases([twice, nested, good]))
    assert [(r.line, r.reason) for r in results if isinstance(r, LineError)] == [
        (1, "duplicate-json-key"),
        (2, "duplicate-json-key"),
    ]
    assert "idempotency_key" in results[0].detail  # type: ignore[union-attr]
    assert isinstance(results[2], SendCaseV2) and results[2].idempotency_key == "k1"
