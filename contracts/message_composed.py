"""MessageComposed: subject, body, signature and date are fixed; attachments still unchecked."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import AttachmentRef, CaseHeader, Channel, TemplateId
from contracts.text import FreeText, LineText

NAME = "MessageComposed"


class MessageComposedV1(CaseHeader):
    """The message exactly as the resident will read it."""

    personnummer: Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
    template_id: TemplateId
    template_version: int = Field(ge=1)
    answerable: bool
    subject: Annotated[str, LineText]
    body: Annotated[str, FreeText]
    signature: Annotated[str, FreeText]
    sent_on: dt.date
    channels: list[Channel] = Field(min_length=1)
    attachments: list[AttachmentRef] = Field(default_factory=list)


LATEST = MessageComposedV1
