"""``omvant push`` on a real broker (Redis): files as Windows tools and other systems write them.

A byte-order mark must not cost the first case, a line that is not UTF-8 must be reported
without losing the lines around it, and an unknown ``--contract-version`` is a usage error.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.registry import parse
from producers.cli import app
from workers.adapters import population
from workers.queues import Queues, queue_name


def request(key: str, number: str) -> dict[str, object]:
    return {
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": number,
        "idempotency_key": key,
    }


def queued_records(redis_url: str, prefix: str) -> list[dict[str, object]]:
    """Every SendCase record waiting on this test's intake queue."""
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"dramatiq:{queue_name(Queues.RECIPIENT_VALIDATION, prefix)}.msgs"
    records: list[dict[str, object]] = []
    for raw in client.hvals(key):
        envelope = json.loads(raw)["args"][0]
        records.extend(item.model_dump() for item in parse(envelope).items)
    client.close()
    return records


def push(file: Path, redis_url: str, prefix: str, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["push", str(file), "--broker", redis_url, *extra],
        env={"OMVANT_QUEUE_PREFIX": prefix},
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_byte_order_mark_and_a_line_that_is_not_utf8_lose_no_valid_case(
    tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    first, second = population.test_personnummer()[:2]
    file = tmp_path / "cases.jsonl"
    file.write_bytes(
        codecs.BOM_UTF8
        + json.dumps(request("k1", first)).encode()
        + b"\r\n"
        + b'{"free_text": "\xff\xfe latin-1"}\r\n'
        + json.dumps(request("k2", second)).encode()
        + b"\r\n"
    )
    code, out, err = push(file, redis_url, queue_prefix)
    assert code == 1
    assert "pushed 2 cases, 1 invalid lines" in out
    assert "line 2: malformed-message: not UTF-8" in err
    assert "line 1" not in err
    assert sorted(r["idempotency_key"] for r in queued_records(redis_url, queue_prefix)) == [
        "k1",
        "k2",
    ]


def test_an_unknown_contract_version_is_a_usage_error(
    tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    file = tmp_path / "cases.jsonl"
    file.write_text(
        json.dumps(request("k1", population.test_personnummer()[0])) + "\n", encoding="utf-8"
    )
    code, _, err = push(file, redis_url, queue_prefix, "--contract-version", "7")
    assert code == 2
    assert "SendCase has versions [1, 2], not 7" in err
    assert queued_records(redis_url, queue_prefix) == []


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_supported_contract_version_is_pushed(
    tmp_path: Path, redis_url: str, queue_prefix: str, version: str
) -> None:
    file = tmp_path / "cases.jsonl"
    file.write_text(
        json.dumps(request("k1", population.test_personnummer()[0])) + "\n", encoding="utf-8"
    )
    code, out, _ = push(file, redis_url, queue_prefix, "--contract-version", version)
    assert code == 0, out
    assert [r["idempotency_key"] for r in queued_records(redis_url, queue_prefix)] == ["k1"]


@pytest.mark.parametrize("correlation", ["bad\x01id", "a" * 65, "tab\there"])
def test_a_correlation_id_no_envelope_can_carry_is_a_usage_error_not_a_crash(
    tmp_path: Path, redis_url: str, queue_prefix: str, correlation: str
) -> None:
    file = tmp_path / "cases.jsonl"
    file.write_text(
        json.dumps(request("k1", population.test_personnummer()[0])) + "\n", encoding="utf-8"
    )
    code, _, err = push(file, redis_url, queue_prefix, "--correlation-id", correlation)
    assert code == 2, err
    assert err.startswith("omvant: --correlation-id: ")
    assert "Traceback" not in err
    assert queued_records(redis_url, queue_prefix) == []
