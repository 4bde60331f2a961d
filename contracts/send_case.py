"""SendCase: the intake request an integration team or operator puts on the intake queue."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import AttachmentRef, CaseId, FrozenModel, HsaId, Priority, TemplateId
from contracts.text import FreeText, Identifier

NAME = "SendCase"

_CASE_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-636173656964")

IdentityText = Annotated[str, StringConstraints(min_length=1, max_length=64), Identifier]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200), Identifier]
FragmentName = Annotated[str, StringConstraints(min_length=1, max_length=80), Identifier]


@functools.lru_cache(maxsize=65_536)
def case_id_for(clinic_hsa_id: str, idempotency_key: str) -> str:
    """The case id a clinic's idempotency key stands for: the same key gives the same case."""
    return str(uuid.uuid5(_CASE_NAMESPACE, f"{clinic_hsa_id}\x1f{idempotency_key}"))


class SendCaseV1(FrozenModel):
    """Send one message from a clinic to one resident (version 1).

    The identity number is kept as given: an invalid one is a case rejected with
    ``invalid-identity-number``, not a malformed message.
    """

    case_id: CaseId | None = None
    clinic_hsa_id: HsaId
    sender_hsa_id: HsaId
    template_id: TemplateId
    fragments: list[FragmentName] = Field(default_factory=list, max_length=100)
    free_text: Annotated[str, StringConstraints(max_length=100_000), FreeText] | None = None
    personnummer: IdentityText
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=100)
    priority: Priority = "normal"
    idempotency_key: IdempotencyKey
    batch_id: CaseId | None = None


class SendCaseV2(SendCaseV1):
    """Version 2 adds personalisation ``fields`` substituted into the template's text."""

    fields: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
        Annotated[str, StringConstraints(max_length=500), FreeText],
    ] = Field(default_factory=dict, max_length=50)

    def resolved_case_id(self) -> str:
        """The producer's case id, or the one derived from the idempotency key."""
        return self.case_id or case_id_for(self.clinic_hsa_id, self.idempotency_key)


LATEST = SendCaseV2
