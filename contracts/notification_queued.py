"""NotificationQueued: a notification is written to the ledger (the outbox) and waits to be
sent. The record names the ledger row by its key; the row holds what to send and where."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import CaseHeader, Channel

NAME = "NotificationQueued"


class NotificationQueuedV1(CaseHeader):
    """One notification of one case, by its idempotency key (``CASE:CHANNEL[:ROUND]``)."""

    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,120}$")]
    channel: Channel
    round: Annotated[int, Field(ge=1, le=100)] = 1


LATEST = NotificationQueuedV1
