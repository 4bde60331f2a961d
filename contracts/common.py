"""Field types shared by several contracts.

A published contract version is frozen; the schema snapshot test fails if a change here alters
any published version's JSON Schema. Add a new type rather than edit one in use.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.text import Identifier, LineText

HsaId = Annotated[
    str,
    StringConstraints(pattern=r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$", max_length=48),
]
"""An HSA-id of a unit or a member of staff, e.g. ``SE2321000016-ABCD``."""

CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
TemplateId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Priority = Literal["normal", "urgent"]
Channel = Literal["sms", "email"]
AttachmentType = Literal["pdf", "jpeg", "png"]


class FrozenModel(BaseModel):
    """Base of every contract record: immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AttachmentRef(FrozenModel):
    """A file stored content-addressed in the blob store; files never ride in messages."""

    sha256: Sha256
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255), LineText]
    declared_type: Annotated[str, StringConstraints(max_length=127), Identifier] = (
        "application/octet-stream"
    )
    size: Annotated[int, Field(ge=0)]


class ClearedAttachment(FrozenModel):
    """An attachment the attachment check let through, identified by its content."""

    sha256: Sha256
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255), LineText]
    type: AttachmentType
    size: Annotated[int, Field(ge=0)]
    pages: int | None = None


class CaseHeader(FrozenModel):
    """What every hop knows of a case: who it belongs to and how urgent it is."""

    case_id: CaseId
    clinic_hsa_id: HsaId
    priority: Priority = "normal"
    batch_id: CaseId | None = None
