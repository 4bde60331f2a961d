"""The body of a status callback (webhook) to an integration: which case, what happened.

Sent by ``workers.webhooks``; described in the OpenAPI document's ``webhooks`` and the AsyncAPI
document. It carries ids, the clinic, the event and a reason code only: never a personnummer,
message content, or an answer or its kind (the notification rule: no health information; the
clinic reads an answer in Omvänt).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "case.delivered",
    "case.notified",
    "case.read",
    "case.answered",
    "case.rejected",
    "case.failed",
]


class CallbackCase(BaseModel):
    """The case the event is of."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Omvänt's case id (as `POST /v1/cases` answered).")
    clinic_hsa_id: str
    batch_id: str | None = None
    state: Literal["delivered", "notified", "read", "answered", "rejected", "failed"] = Field(
        description="The event: `answered` is the resident's first answer to a question "
        "template (the case stays `read`)."
    )
    reason: str | None = Field(default=None, description="The reason code of a rejection.")


class StatusCallback(BaseModel):
    """One status callback; ``id`` is also the ``Idempotency-Key`` header: deduplicate on it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The event's stable id; a retry repeats it.")
    type: EventType
    occurred_at: dt.datetime
    case: CallbackCase
