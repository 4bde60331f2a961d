"""AttachmentsCleared: every attachment was identified by content and let through."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import CaseHeader, Channel, ClearedAttachment, TemplateId
from contracts.text import FreeText, LineText

NAME = "AttachmentsCleared"


class AttachmentsClearedV1(CaseHeader):
    """A message ready for the inbox."""

    personnummer: Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
    template_id: TemplateId
    template_version: int = Field(ge=1)
    answerable: bool
    subject: Annotated[str, LineText]
    body: Annotated[str, FreeText]
    signature: Annotated[str, FreeText]
    sent_on: dt.date
    channels: list[Channel] = Field(min_length=1)
    attachments: list[ClearedAttachment] = Field(default_factory=list)


LATEST = AttachmentsClearedV1
