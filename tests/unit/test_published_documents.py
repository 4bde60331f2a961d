"""The OpenAPI and AsyncAPI documents: current with the code, and valid."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi
from typer.testing import CliRunner

from contracts.asyncapi import INTAKE_REJECT_SCHEMA, document
from producers.cli import app
from producers.cli.contracts_command import asyncapi_text, openapi_document, openapi_text
from workers.intake_bridge import Delivery, IntakeError, reject_record

DOCS = Path(__file__).resolve().parents[2] / "docs"
REFRESH = "run `omvant contracts export --openapi docs/openapi.json --asyncapi docs/asyncapi.yaml`"


def test_the_committed_openapi_document_is_current() -> None:
    assert (DOCS / "openapi.json").read_text(encoding="utf-8") == openapi_text(), REFRESH


def test_the_committed_asyncapi_document_is_current() -> None:
    assert (DOCS / "asyncapi.yaml").read_text(encoding="utf-8") == asyncapi_text(), REFRESH


def test_contracts_export_writes_both_documents(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "contracts",
            "export",
            str(tmp_path / "schemas"),
            "--openapi",
            str(tmp_path / "openapi.json"),
            "--asyncapi",
            str(tmp_path / "asyncapi.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "openapi.json").read_text() == openapi_text()
    assert yaml.safe_load((tmp_path / "asyncapi.yaml").read_text()) == document()
    assert (tmp_path / "schemas" / "SendCase.v2.schema.json").exists()
    nothing = CliRunner().invoke(app, ["contracts", "export"])
    assert nothing.exit_code == 2


def test_the_openapi_document_is_valid_openapi_3_1_with_every_route() -> None:
    spec = openapi_document()
    validate_openapi(spec)
    assert spec["openapi"].startswith("3.1")
    assert {
        "/v1/cases",
        "/v1/cases/{case_id}",
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/pause",
        "/v1/batches/{batch_id}/resume",
        "/v1/batches/{batch_id}/cancel",
        "/v1/recipients/check",
        "/v1/attachments",
        "/healthz",
        "/readyz",
    } <= set(spec["paths"])
    problem = spec["paths"]["/v1/cases"]["post"]["responses"]["422"]["content"]
    assert "application/problem+json" in problem
    assert "ApiKey" in spec["components"]["securitySchemes"]


def test_the_asyncapi_document_is_an_asyncapi_3_document() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the model's own field-name warnings
        from asyncapi3 import AsyncAPI3

    doc = yaml.safe_load(asyncapi_text())
    AsyncAPI3.model_validate(doc)
    broken = copy.deepcopy(doc)
    broken["operations"]["publishToIntake"]["action"] = "publish"  # AsyncAPI 2's word
    with pytest.raises(ValueError, match="action"):
        AsyncAPI3.model_validate(broken)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves_and_every_payload_is_a_json_schema() -> None:
    doc = document()
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        _resolve(doc, ref)
    assert {c["address"] for c in doc["channels"].values()} == {
        "omvant.intake",
        "omvant.intake.rejects",
        "omvant.inbox-events",
        "{webhookUrl}",
    }
    for name, message in doc["components"]["messages"].items():
        assert message["x-omvant-contract"] and message["x-omvant-version"] >= 1, name
        jsonschema.Draft7Validator.check_schema(message["payload"]["schema"])
        assert "$defs" not in json.dumps(message["payload"]["schema"]), name


def test_the_documented_payloads_take_real_messages() -> None:
    messages = document()["components"]["messages"]
    record = {
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "kallelse-screening",
        "personnummer": "19121212-1212",
        "idempotency_key": "journal-a:1",
        "fields": {"tid": "14 mars"},
    }
    v2 = messages["sendCaseV2"]["payload"]["schema"]
    jsonschema.validate(record, v2)
    jsonschema.validate([record, record], v2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "clinic_hsa_id": "nope"}, v2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, messages["sendCaseV1"]["payload"]["schema"])  # no fields
    rejected = reject_record(
        Delivery(b"\xff not utf-8", {"omvant-key-id": "journal-a"}),
        IntakeError("malformed-message", "(body)", "json", "not JSON"),
    )
    jsonschema.validate(json.loads(rejected), INTAKE_REJECT_SCHEMA)
    inbox = {
        "version": 1,
        "event": "opened",
        "case_id": "c-1",
        "occurred_at": "2026-11-25T17:00:03+00:00",
    }
    jsonschema.validate(inbox, messages["inboxEventV1"]["payload"]["schema"])


def test_a_real_status_callback_matches_both_documents_and_carries_no_content() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from workers.store.webhooks import payload

    event = SimpleNamespace(
        id=7,
        integration="journal-a",
        state="answered",
        at=dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC),
        case_id="c-1",
        clinic_hsa_id="SE2321000016-VC01",
        batch_id=None,
        reason=None,
    )
    body = payload(event)
    asyncapi = document()["components"]["messages"]["statusCallback"]["payload"]["schema"]
    jsonschema.validate(body, asyncapi)
    spec = openapi_document()
    hook = spec["webhooks"]["case-status"]["post"]
    ref = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = {
        **spec["components"]["schemas"][ref.rsplit("/", 1)[1]],
        "components": spec["components"],
    }
    jsonschema.validate(body, schema)
    assert set(body) == {"id", "type", "occurred_at", "case"}
    assert set(body["case"]) == {"id", "clinic_hsa_id", "batch_id", "state", "reason"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "answer": "text"}, asyncapi)
