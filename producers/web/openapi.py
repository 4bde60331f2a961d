"""The OpenAPI document of the application, as FastAPI makes it with two corrections so that
it says exactly what the API accepts and answers: the contracts' text rules stated as
``pattern`` (``contracts.text.stating_text_rules``), personalisation ``fields`` closed, and
file uploads declared ``format: binary`` beside 3.1's ``contentMediaType`` (the form most
client generators and validators read as a file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from contracts.schemas import closed_pattern_properties
from contracts.text import stating_text_rules


def openapi_for(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the text rules stated and personalisation ``fields`` closed to
    other keys (see ``closed_pattern_properties``), made once and cached like FastAPI's own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with stating_text_rules():
                app.openapi_schema = binary_uploads(closed_pattern_properties(generate()))
        return app.openapi_schema

    return openapi


def binary_uploads(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every file field (a string of ``contentMediaType``
    ``application/octet-stream``, FastAPI's ``UploadFile``) also ``format: binary``."""

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "string"
                and node.get("contentMediaType") == "application/octet-stream"
            ):
                node.setdefault("format", "binary")
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(document)
    return document
