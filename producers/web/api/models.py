"""The HTTP API's request and response bodies (the OpenAPI document's schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.common import HsaId, TemplateId
from contracts.send_case import FragmentName, IdentityText
from contracts.text import FreeText, LineText


class Strict(BaseModel):
    """Unknown fields are refused, as in the contracts."""

    model_config = ConfigDict(extra="forbid")


class CasesAccepted(BaseModel):
    """The cases a request stands for, in the order of its records."""

    case_ids: list[str]
    accepted: int = Field(description="Cases new to Omvänt, now on their way.")
    duplicates: int = Field(
        description="Records whose idempotency key named a case Omvänt has already."
    )


class Notification(BaseModel):
    """One notification of a case (content-free SMS or e-mail)."""

    channel: str
    round: int
    status: str
    reason: str | None = None
    sent_at: dt.datetime | None = None


class HistoryEntry(BaseModel):
    """One step of a case."""

    at: dt.datetime
    state: str
    stage: str
    reason: str | None = None


class Timestamps(BaseModel):
    """When the case reached each point (null: not yet)."""

    accepted_at: dt.datetime | None = None
    received_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    notified_at: dt.datetime | None = None
    read_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None


class CaseStatusBody(BaseModel):
    """Where a case is: its state, reason code, times and notifications; never its content."""

    id: str
    clinic_hsa_id: str
    state: str = Field(
        description="queued (accepted, not yet recorded by the pipeline), received, validated, "
        "composed, cleared, delivered, notified, read, rejected or failed."
    )
    status: str = Field(description="read, unread, overdue, rejected, failed or in-progress.")
    reason: str | None = Field(default=None, description="The reason code of a rejection.")
    detail: str | None = None
    template_id: str | None = None
    batch_id: str | None = None
    priority: str | None = None
    timestamps: Timestamps
    notifications: list[Notification]
    history: list[HistoryEntry]


class Recipient(Strict):
    """One resident of a dispatch."""

    personnummer: IdentityText
    fields: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
        Annotated[str, StringConstraints(max_length=500), FreeText],
    ] = Field(default_factory=dict, max_length=50)


class BatchRequest(Strict):
    """A dispatch: one template from one clinic to a list of residents."""

    clinic_hsa_id: HsaId
    sender_hsa_id: HsaId
    template_id: TemplateId
    name: Annotated[str, StringConstraints(max_length=200), LineText] | None = None
    fragments: list[FragmentName] = Field(default_factory=list, max_length=100)
    recipients: list[Recipient] = Field(min_length=1, max_length=100_000)


class BatchProgress(BaseModel):
    """A dispatch's live figures."""

    id: str
    name: str
    clinic: str
    template: str
    status: str = Field(description="running, paused or cancelled.")
    lane: int
    total: int
    enqueued: int
    received: int
    states: dict[str, int]
    reached: dict[str, int]
    rejected: dict[str, int] = Field(description="Rejected cases by reason code.")
    failed: int
    settled: int
    in_flight: int
    finished: bool
    created_at: str | None = None


class RecipientsCheckRequest(Strict):
    """Residents to check before sending."""

    personnummer: list[IdentityText] = Field(min_length=1, max_length=1000)


class RecipientVerdict(BaseModel):
    """Whether one resident can be reached through 1177, and if not why."""

    input: str
    valid: bool
    normalized: str | None = None
    kind: str | None = None
    reachable: bool
    channels: list[str]
    reason: str | None = None
    detail: str | None = None


class RecipientsCheckResult(BaseModel):
    """One verdict per number, in order, and the counts."""

    results: list[RecipientVerdict]
    checked: int
    reachable: int
    reasons: dict[str, int]


class AttachmentStored(BaseModel):
    """A file that passed the attachment check, stored: put ``ref`` in a SendCase."""

    ref: dict[str, Any] = Field(description="The AttachmentRef a SendCase carries.")
    kind: str
    pages: int | None = None
    cleaned: bool = Field(description="An image re-encoded without its metadata.")
