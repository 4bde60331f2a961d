"""Stage 3, attachment check: every file is identified by its content, never its name.

Consumes ``MessageComposed``; emits ``AttachmentsCleared`` or rejects the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.common import AttachmentRef, AttachmentType, ClearedAttachment
from contracts.message_composed import MessageComposedV1
from contracts.registry import Parsed
from workers.adapters.blobs import BlobStore
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.reasons import Reason
from workers.stage import Advance, Decision, Reject, settle
from workers.store.cases import Transition

STAGE = "attachment-check"

_MAGIC: tuple[tuple[bytes, AttachmentType], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)


@dataclass(frozen=True)
class Verdict:
    """The check's word on one file."""

    ok: bool
    type: AttachmentType | None
    reason: Reason | None = None
    detail: str | None = None
    pages: int | None = None


def inspect(data: bytes) -> Verdict:
    """Identify ``data`` by its first bytes; anything but PDF, JPEG or PNG is refused."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return Verdict(True, kind)
    return Verdict(False, None, Reason.ATTACHMENT_TYPE_NOT_ALLOWED, "not a PDF, JPEG or PNG")


def check(ref: AttachmentRef, blobs: BlobStore) -> Verdict:
    """Check one stored attachment."""
    data = blobs.get(ref.sha256)
    if data is None:
        return Verdict(False, None, Reason.ATTACHMENT_MISSING, f"no blob {ref.sha256[:12]}")
    return inspect(data)


def handle(items: Sequence[MessageComposedV1], blobs: BlobStore) -> list[Decision]:
    """Clear every case whose attachments all pass; reject the others with the first reason."""
    decisions: list[Decision] = []
    for item in items:
        cleared: list[ClearedAttachment] = []
        rejection: Reject | None = None
        for ref in item.attachments:
            verdict = check(ref, blobs)
            if not verdict.ok or verdict.type is None:
                reason = verdict.reason or Reason.ATTACHMENT_TYPE_NOT_ALLOWED
                rejection = Reject(item.case_id, reason, f"{ref.filename}: {verdict.detail}")
                break
            cleared.append(
                ClearedAttachment(
                    sha256=ref.sha256,
                    filename=ref.filename,
                    type=verdict.type,
                    size=ref.size,
                    pages=verdict.pages,
                )
            )
        if rejection is not None:
            decisions.append(rejection)
            continue
        fields = item.model_dump(exclude={"attachments"})
        decisions.append(
            Advance(
                item.case_id,
                (Transition(item.case_id, CaseState.CLEARED),),
                AttachmentsClearedV1(**fields, attachments=cleared),
            )
        )
    return decisions


def process(parsed: Parsed, ctx: Context) -> None:
    """Check the chunk's attachments, record the verdicts, emit onward."""
    items = [item for item in parsed.items if isinstance(item, MessageComposedV1)]
    settle(
        ctx,
        stage=STAGE,
        decisions=handle(items, ctx.blobs),
        correlation_id=parsed.envelope.correlation_id,
    )
