"""The envelope every message travels in: identity, tracing and a chunk of per-case records."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints

from contracts.common import CaseId, FrozenModel
from contracts.text import Identifier

MAX_CHUNK = 1000
"""The most per-case records one message may carry."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_message_id() -> str:
    """A fresh, unique message id."""
    return uuid.uuid4().hex


def split_message_id(parent: str, index: int) -> str:
    """The id of the ``index``-th single-case message a chunk ``parent`` was split into."""
    return f"{origin_message_id(parent)}/{index}"


def origin_message_id(message_id: str) -> str:
    """The id of the message a (possibly split) message came from."""
    return message_id.split("/", 1)[0]


CorrelationId = Annotated[str, StringConstraints(min_length=1, max_length=64), Identifier]
"""What ties the messages of one push or dispatch together (given by the producer, or new)."""


class Envelope(FrozenModel):
    """A message: one contract version and a chunk of 1..MAX_CHUNK records of it.

    ``case_ids`` lists the cases the payload is about, in payload order, when they are known
    (an intake request may leave its case id to be derived from the idempotency key).
    """

    message_id: Annotated[str, StringConstraints(min_length=1, max_length=64), Identifier] = Field(
        default_factory=new_message_id
    )
    contract: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")]
    version: int = Field(ge=1)
    correlation_id: CorrelationId = Field(default_factory=new_message_id)
    case_ids: list[CaseId] = Field(default_factory=list, max_length=MAX_CHUNK)
    occurred_at: AwareDatetime = Field(default_factory=_now)
    payload: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_CHUNK)
