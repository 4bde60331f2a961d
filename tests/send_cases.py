"""The request most tests send: the greeting message from the test clinic's sender."""

from __future__ import annotations

from contracts.send_case import SendCaseV2

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
TEMPLATE = "meddelande-till-invanare"


def greeting(personnummer: str, key: str, **changes: object) -> SendCaseV2:
    """A ``SendCase`` of the plain message template with its greeting fragment, from
    ``CLINIC``'s ``SENDER`` to ``personnummer`` under the idempotency ``key``; ``changes`` (any
    field, e.g. ``clinic_hsa_id`` or ``attachments``) on top, validated as a producer's are."""
    return SendCaseV2.model_validate(
        {
            "clinic_hsa_id": CLINIC,
            "sender_hsa_id": SENDER,
            "template_id": TEMPLATE,
            "fragments": ["halsning"],
            "personnummer": personnummer,
            "idempotency_key": key,
            **changes,
        }
    )
