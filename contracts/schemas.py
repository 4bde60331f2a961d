"""JSON Schemas of every published contract version and of the envelope."""

from __future__ import annotations

from typing import Any

from contracts.envelope import Envelope
from contracts.registry import VERSIONS


def all_schemas() -> dict[str, dict[str, Any]]:
    """``{"<Contract>.v<N>.schema.json": schema}`` for every version, plus the envelope."""
    schemas = {"Envelope.v1.schema.json": Envelope.model_json_schema()}
    for name, versions in sorted(VERSIONS.items()):
        for version, model in sorted(versions.items()):
            schemas[f"{name}.v{version}.schema.json"] = model.model_json_schema()
    return schemas


def closed_pattern_properties(node: Any) -> Any:
    """``node`` with ``additionalProperties: false`` beside every ``patternProperties`` that
    lacks it: pydantic leaves a ``dict`` with constrained keys (``fields``) open in JSON Schema,
    though the model refuses any other key. The published per-version schemas stay as frozen;
    the OpenAPI and AsyncAPI documents say what is really accepted."""
    if isinstance(node, dict):
        closed = {k: closed_pattern_properties(v) for k, v in node.items()}
        if "patternProperties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [closed_pattern_properties(v) for v in node]
    return node
