"""SendCase: the intake request an integration team or operator puts on the intake queue."""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import AttachmentRef, CaseId, FrozenModel, HsaId, Priority, TemplateId
from contracts.text import FreeText, Identifier

NAME = "SendCase"

_CASE_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-636173656964")
_REFERENCE_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-726566657265")

IdentityText = Annotated[str, StringConstraints(min_length=1, max_length=64), Identifier]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200), Identifier]
FragmentName = Annotated[str, StringConstraints(min_length=1, max_length=80), Identifier]


@functools.lru_cache(maxsize=65_536)
def case_id_for(clinic_hsa_id: str, idempotency_key: str) -> str:
    """The case id a clinic's idempotency key stands for: the same key gives the same case."""
    return _uuid5_text(_CASE_NAMESPACE, f"{clinic_hsa_id}\x1f{idempotency_key}")


def key_case_ids(clinic_hsa_id: str) -> Callable[[str], str]:
    """``case_id_for`` for one clinic's keys, the clinic's part of the hash taken once (a
    dispatch derives one id per case)."""
    prefix = hashlib.sha1(_CASE_NAMESPACE.bytes + f"{clinic_hsa_id}\x1f".encode())  # noqa: S324 - RFC 4122 version 5

    def case_id(idempotency_key: str) -> str:
        digest = prefix.copy()
        digest.update(idempotency_key.encode())
        return _uuid_text(digest.digest())

    return case_id


def _uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, without building a ``UUID`` (a third of the cost:
    a dispatch derives one per case)."""
    return _uuid_text(hashlib.sha1(namespace.bytes + name.encode()).digest())  # noqa: S324 - RFC 4122 version 5 is SHA-1 by definition


_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}
"""The hex digit of a byte's high nibble with the RFC 4122 variant bits (``10``) set."""


def _uuid_text(sha1: bytes) -> str:
    """The version 5 UUID text of a SHA-1 digest (RFC 4122: its first 16 bytes, version and
    variant bits set), set in the text itself: a quarter cheaper than in the bytes."""
    h = sha1.hex()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


@functools.lru_cache(maxsize=65_536)
def case_id_for_reference(clinic_hsa_id: str, reference: str) -> str:
    """The case id a producer's own ``case_id`` stands for, within its clinic: the producer's
    id is a reference scoped to the clinic, never Omvänt's id itself, so no clinic can name
    (attach to, move, add history to) another clinic's case, whatever id it sends."""
    return str(uuid.uuid5(_REFERENCE_NAMESPACE, f"{clinic_hsa_id}\x1f{reference}"))


def canonical_case_id(text: str) -> str:
    """A case id as Omvänt writes it: a UUID in lower case (``3F2C...`` and ``{3f2c...}`` name
    the case ``3f2c...``); any other text as it is (it names no case Omvänt made)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


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


# Each version is a class of its own: a published version is frozen, and an edit to version 1
# must not change version 2, so version 1's fields are written out again below.
class SendCaseV2(FrozenModel):
    """Version 2 adds personalisation ``fields`` substituted into the template's text."""

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
    fields: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
        Annotated[str, StringConstraints(max_length=500), FreeText],
    ] = Field(default_factory=dict, max_length=50)

    def resolved_case_id(self) -> str:
        """Omvänt's id of the case: derived from the clinic and the producer's ``case_id``
        (its reference) when one is given, else from the clinic and the idempotency key."""
        if self.case_id:
            return case_id_for_reference(self.clinic_hsa_id, self.case_id)
        return self.key_case_id()

    def key_case_id(self) -> str:
        """The id derived from the clinic and the idempotency key alone: where a request goes
        whose ``case_id`` names another of the clinic's cases (``case-id-conflict``)."""
        return case_id_for(self.clinic_hsa_id, self.idempotency_key)


LATEST = SendCaseV2
