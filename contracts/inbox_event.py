"""InboxEvent: what the 1177 inbox publishes when a resident opens or answers a message.

Plain versioned JSON on an AMQP topic exchange (routing key ``inbox.opened`` /
``inbox.answered``), so the inbox can publish it from any language:

    {"version": 2, "event": "opened", "case_id": "...", "occurred_at": "2026-11-25T08:00:00Z"}
    {"version": 2, "event": "answered", "case_id": "...", "occurred_at": "...",
     "answer": {"kind": "partial-answer", "text": "...",
                "question_answers": [{"question": "...", "answer": "..."}]}}

Version 1 (``answer_kind`` only, no text) is still read: ``upcasters.inbox_event_v1_v2``.

Not an envelope: the inbox is an outside system with its own format. The bridge
(``workers.inbox_events_bridge``) reads it and forwards ``ReadReceipt`` envelopes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, ValidationError, model_validator

from contracts.common import CaseId, FrozenModel
from contracts.read_receipt import Answer, AnswerKind
from contracts.strict_json import DuplicateKey, loads_strictly
from contracts.text import Identifier
from contracts.upcasters import inbox_event_v1_v2

NAME = "InboxEvent"
VERSIONS = (1, 2)


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text_only(value: object) -> object:
    """An event's time as the inbox writes it: ISO-8601 text (with an offset, which
    ``AwareDatetime`` then requires), never a number or a numeric string, which pydantic would
    read as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_TIME.match(value):
        return value
    raise ValueError("an ISO-8601 time with an offset, e.g. 2026-11-25T08:00:00Z")


EventTime = Annotated[AwareDatetime, BeforeValidator(_iso_text_only)]
"""When the resident acted, as ISO-8601 text with an offset."""


class InboxEventError(ValueError):
    """An inbox event that cannot be read; ``reason`` is a stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InboxEventV1(FrozenModel):
    """A resident opened (or answered) the message of one case."""

    version: Literal[1] = 1
    event: Literal["opened", "answered"]
    case_id: CaseId
    inbox_message_id: Annotated[str, Identifier] | None = None
    answer_kind: AnswerKind | None = None
    occurred_at: EventTime

    @model_validator(mode="after")
    def _answer_kind_with_answers(self) -> InboxEventV1:
        if (self.event == "answered") != (self.answer_kind is not None):
            raise ValueError("answer_kind is given with answered events, and only with them")
        return self

    @property
    def routing_key(self) -> str:
        """The topic it is published under."""
        return f"inbox.{self.event}"


class InboxEventV2(FrozenModel):
    """A resident opened or answered the message of one case; an answer comes with it."""

    version: Literal[2] = 2
    event: Literal["opened", "answered"]
    case_id: CaseId
    inbox_message_id: Annotated[str, Identifier] | None = None
    answer: Answer | None = None
    occurred_at: EventTime

    @model_validator(mode="after")
    def _answer_with_answers(self) -> InboxEventV2:
        if (self.event == "answered") != (self.answer is not None):
            raise ValueError("an answer is given with answered events, and only with them")
        return self

    @property
    def routing_key(self) -> str:
        """The topic it is published under."""
        return f"inbox.{self.event}"


def parse_inbox_event(raw: str | bytes | Mapping[str, Any]) -> InboxEventV2:
    """Read one inbox event of any version, as the latest (validate, upcast, validate).

    Raises
    ------
    InboxEventError
        ``malformed-message`` (not a JSON object), ``unknown-contract-version`` or
        ``invalid-payload``; the detail never holds the event's content.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = loads_strictly(raw)
        except DuplicateKey as exc:
            raise InboxEventError("duplicate-json-key", exc.detail) from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nested too deep for json; it must not stop the bridge, which
            # would get the same event again on every restart.
            raise InboxEventError("malformed-message", "an inbox event is not JSON") from None
    if not isinstance(raw, Mapping):
        raise InboxEventError("malformed-message", "an inbox event must be a JSON object")
    if raw.get("version") not in VERSIONS:
        raise InboxEventError(
            "unknown-contract-version", f"inbox events have versions {list(VERSIONS)}"
        )
    try:
        if raw["version"] == 1:
            old = InboxEventV1.model_validate(raw)
            raw = inbox_event_v1_v2(old.model_dump(mode="json"))
        return InboxEventV2.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors()[:3]
        )
        raise InboxEventError("invalid-payload", where) from None
