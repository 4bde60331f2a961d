"""Stage 3, attachment check: every file is identified by its content, never its name.

Consumes ``MessageComposed``; emits ``AttachmentsCleared`` or rejects the case. The content
verdict on a file (``workers.attachments.checker.inspect``) is kept by sha256, so a PDF sent to
100,000 residents is checked once; the sender's claims (name, declared type) and the count
limit are judged per case. Cleared images are delivered as their cleaned re-encoding.

Blobs go away as soon as they can: a file whose content is refused can never be sent by
anyone, so it is deleted at once (its verdict is kept, so later cases get the same reason), and
so is the original of a cleaned image (it holds the metadata cleaning removed). What a case
refused for its own claims refers to is left to ``omvant attachments gc``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from contracts import message_composed
from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.common import ClearedAttachment
from contracts.message_composed import MessageComposedV1
from contracts.registry import Parsed
from workers.answer_seal import AnswerSeal, answer_seal
from workers.attachments import ownership, references
from workers.attachments.checker import CONTENT_REASONS, against_claims, inspect
from workers.attachments.limits import Limits
from workers.attachments.scanner import VirusScanner
from workers.attachments.verdict import Verdict
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, Reject, settle
from workers.store.cases import Transition
from workers.store.engine import reads

STAGE = ROUTES[message_composed.NAME].stage


def decide(item: MessageComposedV1, verdicts: Mapping[str, Verdict], limits: Limits) -> Decision:
    """Clear the case if every attachment passes; else reject it with the first reason."""
    if len(item.attachments) > limits.max_files:
        return Reject(
            item.case_id,
            Reason.TOO_MANY_ATTACHMENTS,
            f"{len(item.attachments)} attachments; at most {limits.max_files} per message",
        )
    cleared: list[ClearedAttachment] = []
    for ref in item.attachments:
        verdict = verdicts.get(ref.sha256) or missing(ref.sha256)
        verdict = against_claims(verdict, ref.filename, ref.declared_type)
        if not verdict.ok or verdict.type is None:
            reason = verdict.reason or Reason.ATTACHMENT_TYPE_NOT_ALLOWED
            return Reject(item.case_id, reason, f"{ref.filename}: {verdict.detail}")
        cleared.append(
            ClearedAttachment(
                sha256=verdict.delivered_sha256,
                filename=ref.filename,
                type=verdict.type,
                size=verdict.delivered_size,
                pages=verdict.pages,
            )
        )
    fields = item.model_dump(exclude={"attachments"})
    return Advance(
        item.case_id,
        (Transition(item.case_id, CaseState.CLEARED),),
        AttachmentsClearedV1(**fields, attachments=cleared),
    )


def handle(
    items: Sequence[MessageComposedV1], verdicts: Mapping[str, Verdict], limits: Limits
) -> list[Decision]:
    """One decision per case, from the content verdicts on its files."""
    return [decide(item, verdicts, limits) for item in items]


def missing(sha256: str) -> Verdict:
    """The verdict on a reference to a blob that is not in the store."""
    return Verdict.refuse(
        Reason.ATTACHMENT_MISSING, f"no blob {sha256[:12]} in the blob store", sha256=sha256, size=0
    )


def policy_of(limits: Limits, scanner: VirusScanner) -> str:
    """What a kept verdict depends on besides the bytes: the limits and the scanner."""
    return f"v1:{limits.fingerprint()}:{scanner.name}"


def verdicts_for(
    ctx: Context, sha256s: set[str], limits: Limits, policy: str
) -> tuple[dict[str, Verdict], list[Verdict]]:
    """The content verdict on each blob: kept ones, and fresh checks of the rest (stored, the
    cleaned bytes put in the blob store). Returns all verdicts and the fresh ones."""
    with reads(ctx.engine).connect() as conn:
        verdicts = references.load_verdicts(conn, sha256s, policy)
    for sha256, kept in list(verdicts.items()):
        if kept.ok and ctx.blobs.size(kept.delivered_sha256) is None:
            del verdicts[sha256]
    fresh: list[Verdict] = []
    absent: set[str] = set()
    for sha256 in sorted(sha256s - verdicts.keys()):
        size = ctx.blobs.size(sha256)
        data = None if size is None or size > limits.max_bytes else ctx.blobs.get(sha256)
        if size is not None and size > limits.max_bytes:
            verdict = Verdict.refuse(
                Reason.ATTACHMENT_TOO_LARGE,
                f"{size:,} bytes is over the limit of {limits.max_bytes:,}",
                sha256=sha256,
                size=size,
            )
        elif data is None:
            absent.add(sha256)
            continue
        elif hashlib.sha256(data).hexdigest() != sha256:
            verdicts[sha256] = Verdict.refuse(
                Reason.ATTACHMENT_CORRUPT,
                "the stored blob does not match its sha256",
                sha256=sha256,
                size=len(data),
            )
            continue
        else:
            verdict = inspect(data, limits, ctx.scanner)
            if verdict.cleaned is not None:
                ctx.blobs.put(verdict.cleaned)
        verdicts[sha256] = verdict
        fresh.append(verdict)
    with ctx.engine.begin() as conn:
        references.save_verdicts(conn, fresh, policy)
        # another worker may have checked (and removed) a blob this one found absent
        late = references.load_verdicts(conn, absent, policy) if absent else {}
    for sha256 in absent:
        verdicts[sha256] = late.get(sha256) or missing(sha256)
    return verdicts, fresh


def removable(fresh: Sequence[Verdict]) -> set[str]:
    """Blobs no case needs any more: refused content, and originals of cleaned images."""
    refused = {v.sha256 for v in fresh if not v.ok and v.reason in CONTENT_REASONS}
    cleaned = {v.sha256 for v in fresh if v.ok and v.cleaned_sha256 not in (None, v.sha256)}
    return refused | cleaned


def not_owned_rejects(ctx: Context, items: Sequence[MessageComposedV1]) -> dict[str, Reject]:
    """The cases referring to a blob their clinic may not send (defence in depth: the intake
    stage refuses them first), each rejected with ``attachment-not-owned`` unread."""
    wanted = [(item.clinic_hsa_id, ref.sha256) for item in items for ref in item.attachments]
    if not wanted:
        return {}
    with reads(ctx.engine).connect() as conn:
        allowed = ownership.usable(conn, wanted, lambda sha: ctx.blobs.size(sha) is not None)
    rejects: dict[str, Reject] = {}
    for item in items:
        found = ownership.first_not_owned(item.clinic_hsa_id, item.attachments, allowed)
        if found is not None:
            rejects[item.case_id] = Reject(
                item.case_id, Reason.ATTACHMENT_NOT_OWNED, found.detail(item.clinic_hsa_id)
            )
    return rejects


def with_sealed_attachments(decisions: list[Decision], seal: AnswerSeal) -> list[Decision]:
    """Keep, sealed with the message, what each cleared case with attachments will show of
    them (names, types, sizes): with the composed content, all the sweep needs to build the
    case's ``AttachmentsCleared`` again (``workers/redrive.py``). A case without attachments
    keeps the content composition sealed."""
    kept: list[Decision] = []
    for decision in decisions:
        if not (
            isinstance(decision, Advance)
            and isinstance(decision.next_item, AttachmentsClearedV1)
            and decision.next_item.attachments
        ):
            kept.append(decision)
            continue
        cleared = decision.next_item
        content = json.dumps(
            cleared.model_dump(
                mode="json", include={"subject", "body", "signature", "sent_on", "attachments"}
            ),
            ensure_ascii=False,
        )
        first, *rest = decision.transitions
        sealed = Transition(
            first.case_id, first.state, {**first.values, "content": seal.seal(content)}
        )
        kept.append(Advance(decision.case_id, (sealed, *rest), cleared))
    return kept


def process(parsed: Parsed, ctx: Context) -> None:
    """Check the chunk's attachments, record the verdicts, emit onward, remove spent blobs."""
    items = [item for item in parsed.items if isinstance(item, MessageComposedV1)]
    not_owned = not_owned_rejects(ctx, items)
    items = [item for item in items if item.case_id not in not_owned]
    limits = Limits.from_settings(ctx.settings)
    wanted = {
        ref.sha256
        for item in items
        if len(item.attachments) <= limits.max_files
        for ref in item.attachments
    }
    verdicts, fresh = verdicts_for(ctx, wanted, limits, policy_of(limits, ctx.scanner))
    decisions = [*not_owned.values(), *handle(items, verdicts, limits)]
    decisions = with_sealed_attachments(decisions, answer_seal(ctx.settings))
    with ctx.engine.begin() as conn:
        references.record(
            conn,
            (
                (decision.case_id, attachment.sha256)
                for decision in decisions
                if isinstance(decision, Advance)
                and isinstance(decision.next_item, AttachmentsClearedV1)
                for attachment in decision.next_item.attachments
            ),
        )
    settle(ctx, stage=STAGE, decisions=decisions, correlation_id=parsed.envelope.correlation_id)
    for sha256 in removable(fresh):
        ctx.blobs.delete(sha256)
