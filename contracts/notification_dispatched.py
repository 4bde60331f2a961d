"""NotificationDispatched: the message is in the inbox and the resident has been told."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from contracts.common import CaseHeader, Channel
from contracts.text import Identifier

NAME = "NotificationDispatched"


class NotificationDispatchedV1(CaseHeader):
    """The final fact of the send; recorded, and not routed to another stage."""

    inbox_message_id: Annotated[str, Identifier]
    delivered_at: dt.datetime
    channels_notified: list[Channel] = Field(default_factory=list)


LATEST = NotificationDispatchedV1
