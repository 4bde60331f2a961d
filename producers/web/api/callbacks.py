"""The status callbacks as the OpenAPI document's ``webhooks``: what an integration's webhook
receives (``workers.webhooks`` sends them; nothing here is served)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header

from contracts.status_callback import StatusCallback

webhooks = APIRouter()


@webhooks.post(
    "case-status",
    summary="A case's state changed",
    operation_id="caseStatus",
    responses={200: {"description": "Taken (any 2xx); anything else is retried with backoff"}},
)
def case_status(
    body: Annotated[StatusCallback, Body()],
    omvant_signature: Annotated[
        str,
        Header(
            alias="Omvant-Signature",
            description='`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` under the '
            "key's signing key; refuse a `t` more than five minutes off.",
        ),
    ],
    omvant_event_id: Annotated[str, Header(alias="Omvant-Event-Id")],
    idempotency_key: Annotated[
        str, Header(alias="Idempotency-Key", description="The event's id: deduplicate on it.")
    ],
) -> None:
    """POSTed to the key's webhook URL for `case.delivered`, `case.notified`, `case.read`,
    `case.answered` (the resident's first answer to a question template), `case.rejected` and
    `case.failed`. Ids, clinic, event and reason code only: never a personnummer, the message,
    or an answer or its kind."""
