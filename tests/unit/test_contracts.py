"""Contracts: round trips, upcasting, clear refusals, and frozen published schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.common import AttachmentRef
from contracts.envelope import MAX_CHUNK, origin_message_id, split_message_id
from contracts.read_receipt import ReadReceiptV1
from contracts.registry import (
    VERSIONS,
    ContractError,
    contract_of,
    envelope_data,
    envelope_for,
    parse,
)
from contracts.schemas import all_schemas
from contracts.send_case import SendCaseV1, SendCaseV2, case_id_for, case_id_for_reference
from producers.cli import app

SNAPSHOTS = Path(__file__).parent / "schema_snapshots"

V1_RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "fragments": ["halsning", "aterkom"],
    "personnummer": "19121212-1212",
    "attachments": [
        {"sha256": "a" * 64, "filename": "a.pdf", "declared_type": "application/pdf", "size": 3}
    ],
    "idempotency_key": "journal-77",
}


def raw(contract: str, version: int, payload: list[dict]) -> dict:
    return {"contract": contract, "version": version, "correlation_id": "c1", "payload": payload}


def test_a_version_1_send_case_is_read_as_the_latest_version() -> None:
    parsed = parse(raw("SendCase", 1, [V1_RECORD]))
    (item,) = parsed.items
    assert isinstance(item, SendCaseV2)
    assert item.fields == {}
    assert item.fragments == ["halsning", "aterkom"]
    assert item.attachments[0] == AttachmentRef(**V1_RECORD["attachments"][0])


def test_a_latest_envelope_round_trips_through_json() -> None:
    item = SendCaseV2(**V1_RECORD, fields={"namn": "Tolvan"})
    envelope = envelope_for([item], correlation_id="corr-1")
    again = parse(json.dumps(envelope.model_dump(mode="json")))
    assert again.envelope == envelope
    assert again.items == [item]
    assert envelope.contract == "SendCase" and envelope.version == 2


def test_the_case_id_follows_from_clinic_and_idempotency_key() -> None:
    item = SendCaseV2(**V1_RECORD)
    assert item.resolved_case_id() == case_id_for("SE2321000016-VC01", "journal-77")
    assert case_id_for("SE2321000016-VC02", "journal-77") != item.resolved_case_id()
    own = SendCaseV2(**V1_RECORD, case_id="own-id")
    assert own.resolved_case_id() == case_id_for_reference("SE2321000016-VC01", "own-id")
    elsewhere = SendCaseV2(**{**V1_RECORD, "clinic_hsa_id": "SE2321000016-VC02"}, case_id="own-id")
    assert elsewhere.resolved_case_id() != own.resolved_case_id()  # a reference, per clinic
    assert own.key_case_id() == item.resolved_case_id()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\xff\xfe not json", "malformed-message"),
        ("[1, 2]", "malformed-message"),
        ({"contract": "SendCase", "version": 1, "payload": []}, "malformed-message"),
        (
            {"contract": "SendCase", "version": 1, "payload": [V1_RECORD], "x": 1},
            "malformed-message",
        ),
        (raw("SendLetter", 1, [V1_RECORD]), "unknown-contract"),
        (raw("SendCase", 7, [V1_RECORD]), "unknown-contract-version"),
        (raw("SendCase", 1, [{**V1_RECORD, "clinic_hsa_id": "nope"}]), "invalid-payload"),
        (raw("SendCase", 1, [{**V1_RECORD, "fields": {"a": "b"}}]), "invalid-payload"),
    ],
)
def test_unreadable_messages_are_refused_with_a_reason(message: object, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse(message)  # type: ignore[arg-type]
    assert caught.value.reason == reason
    assert caught.value.detail


def test_an_envelope_carries_at_most_a_full_chunk() -> None:
    record = ReadReceiptV1(case_id="c", event="opened", occurred_at="2026-01-01T00:00:00Z")
    envelope_for([record] * MAX_CHUNK)
    with pytest.raises(ValueError):
        envelope_for([record] * (MAX_CHUNK + 1))


def test_published_models_are_frozen() -> None:
    item = SendCaseV1(**V1_RECORD)
    with pytest.raises(ValueError):
        item.template_id = "other"  # type: ignore[misc]


def published_classes() -> list[tuple[str, int, type]]:
    """Every ``<Name>V<n>`` class of the contract modules, with the name and version its
    module and class name give it: written out independently of the registry."""
    import importlib
    import inspect
    import pkgutil
    import re

    import contracts

    found = []
    for info in pkgutil.iter_modules(contracts.__path__):
        module = importlib.import_module(f"contracts.{info.name}")
        name = getattr(module, "NAME", None)
        if not isinstance(name, str) or name == "InboxEvent":  # the inbox's format, no envelope
            continue
        for attr, value in vars(module).items():
            match = re.fullmatch(rf"{name}V([0-9]+)", attr)
            if match and inspect.isclass(value) and value.__module__ == module.__name__:
                found.append((name, int(match.group(1)), value))
    return found


def test_every_model_knows_its_contract_and_version() -> None:
    """The registry names each published class by its module's contract and its version, and
    an envelope built from a record says so (so a consumer can upcast it)."""
    classes = published_classes()
    assert len(classes) == sum(len(v) for v in VERSIONS.values()), "a class is not registered"
    for name, version, model in classes:
        assert contract_of(model) == (name, version)
        assert VERSIONS[name][version] is model
    old = SendCaseV1(**V1_RECORD)
    envelope = envelope_for([old])
    assert (envelope.contract, envelope.version) == ("SendCase", 1)
    assert isinstance(parse(envelope.model_dump(mode="json")).items[0], SendCaseV2)
    with pytest.raises(KeyError):
        contract_of(AttachmentRef)


def test_contract_versions_are_independent_classes() -> None:
    """A published version is frozen: no version inherits another's fields (an edit to V1
    would change V2)."""
    classes = [model for _name, _version, model in published_classes()]
    for model in classes:
        for other in classes:
            assert model is other or not issubclass(model, other), (model, other)


def test_split_message_ids_lead_back_to_their_origin() -> None:
    child = split_message_id("abc", 3)
    assert child == "abc/3"
    assert origin_message_id(split_message_id(child, 1)) == "abc"


def test_published_schemas_match_their_frozen_snapshots() -> None:
    """A published version is frozen: to change a contract, publish a new version and add its
    snapshot (``omvant contracts export`` writes it); never edit an existing snapshot."""
    schemas = all_schemas()
    on_disk = {p.name for p in SNAPSHOTS.glob("*.json")}
    assert set(schemas) == on_disk, "every published version has exactly one snapshot"
    for filename, schema in schemas.items():
        frozen = json.loads((SNAPSHOTS / filename).read_text())
        assert schema == frozen, f"{filename} changed: publish a new version instead"


def test_contracts_export_writes_one_schema_per_version(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["contracts", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name for p in tmp_path.glob("*.json")}
    expected = {f"{n}.v{v}.schema.json" for n, vs in VERSIONS.items() for v in vs}
    assert expected | {"Envelope.v1.schema.json"} == written
    schema = json.loads((tmp_path / "SendCase.v2.schema.json").read_text())
    assert "fields" in schema["properties"]


def test_contracts_export_into_a_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    target.write_text("a file, not a folder", encoding="utf-8")
    result = CliRunner().invoke(app, ["contracts", "export", str(target)])
    assert result.exit_code == 2
    assert f"cannot write the schemas into {target}" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_intake_envelope_names_the_cases_its_records_become() -> None:
    item = SendCaseV2(**V1_RECORD)
    assert envelope_for([item]).case_ids == [item.resolved_case_id()]


def test_a_stages_envelope_data_is_the_envelopes_json_and_parses_back() -> None:
    items = [SendCaseV2(**{**V1_RECORD, "idempotency_key": f"k-{n}"}) for n in range(3)]
    fast = envelope_data(items, correlation_id="corr-1", message_id="m-1")
    slow = envelope_for(items, correlation_id="corr-1", message_id="m-1").model_dump(mode="json")
    assert list(fast) == list(slow)
    assert {**fast, "occurred_at": None} == {**slow, "occurred_at": None}
    again = parse(json.dumps(fast))
    assert again.items == items
    assert again.envelope.case_ids == [i.resolved_case_id() for i in items]


def test_envelope_data_still_refuses_an_envelope_that_is_not_one() -> None:
    item = SendCaseV2(**V1_RECORD)
    with pytest.raises(ValueError, match="correlation_id"):
        envelope_data([item], correlation_id="x" * 65)
    with pytest.raises(ValueError, match="payload"):
        envelope_data([item] * (MAX_CHUNK + 1), correlation_id="c")


def test_a_chunk_with_one_invalid_record_names_that_record() -> None:
    good = SendCaseV2(**V1_RECORD).model_dump(mode="json")
    bad = {**good, "personnummer": "not\u0000a number"}
    with pytest.raises(ContractError) as refused:
        parse(raw("SendCase", 2, [good, good, bad]))
    assert refused.value.reason == "invalid-payload"
    assert refused.value.detail.startswith("record 2: personnummer")
