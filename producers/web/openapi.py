"""The OpenAPI document of the application, as FastAPI makes it with two corrections so that
it says exactly what the API accepts and answers: the contracts' text rules stated as
``pattern`` (``contracts.text.stating_text_rules``), and personalisation ``fields`` closed."""

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
                app.openapi_schema = closed_pattern_properties(generate())
        return app.openapi_schema

    return openapi
