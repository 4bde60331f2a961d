"""The HTTP API for integrations, versioned under ``/v1``: one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from producers.web.api import attachments, batches, cases, recipients

router = APIRouter(prefix="/v1")
"""Every ``/v1`` route; resource routers are included here."""
router.include_router(cases.router)
router.include_router(batches.router)
router.include_router(recipients.router)
router.include_router(attachments.router)
