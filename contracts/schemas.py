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
