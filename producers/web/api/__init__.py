"""The HTTP API for integrations, versioned under ``/v1``: one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
"""Every ``/v1`` route; resource routers are included here."""
