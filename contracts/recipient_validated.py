"""RecipientValidated: the resident can be reached; the channels to notify travel on."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import AttachmentRef, CaseHeader, Channel, HsaId, TemplateId
from contracts.text import FreeText, Identifier

NAME = "RecipientValidated"


class RecipientValidatedV1(CaseHeader):
    """A case whose resident has an active login and at least one notification channel."""

    sender_hsa_id: HsaId
    template_id: TemplateId
    fragments: list[Annotated[str, Identifier]] = Field(default_factory=list)
    free_text: Annotated[str, FreeText] | None = None
    fields: dict[Annotated[str, Identifier], Annotated[str, FreeText]] = Field(default_factory=dict)
    personnummer: Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
    channels: list[Channel] = Field(min_length=1)
    attachments: list[AttachmentRef] = Field(default_factory=list)


LATEST = RecipientValidatedV1
