"""Files attached to a whole dispatch (``omvant dispatch --attachment FILE``): read once,
checked once with the attachment check's own functions, stored once, and shared by every case
of the batch (each case carries the same ``AttachmentRef``)."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.common import AttachmentRef
from workers.attachment_check import policy_of, verdicts_for
from workers.attachments.checker import against_claims, check_file
from workers.attachments.limits import Limits
from workers.attachments.ownership import store_attachment
from workers.bootstrap import Context
from workers.reasons import Reason

Problem = tuple[str, str]
"""``(reason code, detail)`` of a file the attachment check would refuse."""


@dataclass(frozen=True)
class SharedFile:
    """One file as read from disk (at most the size limit plus one byte)."""

    path: Path
    data: bytes
    declared_type: str

    @property
    def ref(self) -> AttachmentRef:
        """The reference every case of the dispatch carries."""
        return AttachmentRef(
            sha256=hashlib.sha256(self.data).hexdigest(),
            filename=self.path.name[:255],
            declared_type=self.declared_type,
            size=len(self.data),
        )


def read_files(paths: Sequence[Path], limits: Limits) -> list[SharedFile]:
    """Read each file, never more than the limit plus one byte (so an oversized one is known
    without reading it whole)."""
    files = []
    for path in paths:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
        declared = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files.append(SharedFile(path, data, declared))
    return files


def _too_large(file: SharedFile, limits: Limits) -> Problem | None:
    if len(file.data) > limits.max_bytes:
        return (
            Reason.ATTACHMENT_TOO_LARGE,
            f"{file.path.name}: over the limit of {limits.max_bytes:,} bytes",
        )
    return None


def _too_many(files: Sequence[SharedFile], limits: Limits) -> Problem | None:
    if len(files) > limits.max_files:
        return (
            Reason.TOO_MANY_ATTACHMENTS,
            f"{len(files)} files; a message takes at most {limits.max_files}",
        )
    return None


def predict_problems(files: Sequence[SharedFile], limits: Limits, ctx: Context) -> list[Problem]:
    """What the attachment check would refuse, checking without storing (the dry run)."""
    problems = [p for p in [_too_many(files, limits)] if p]
    for file in files:
        large = _too_large(file, limits)
        if large:
            problems.append(large)
            continue
        verdict = check_file(
            file.data,
            filename=file.path.name,
            declared_type=file.declared_type,
            limits=limits,
            scanner=ctx.scanner,
        )
        if not verdict.ok:
            reason = verdict.reason or Reason.ATTACHMENT_TYPE_NOT_ALLOWED
            problems.append((reason, f"{file.path.name}: {verdict.detail}"))
    return problems


def store_and_check(
    files: Sequence[SharedFile], limits: Limits, ctx: Context, clinic_hsa_id: str
) -> tuple[list[AttachmentRef], list[Problem]]:
    """Store each file once as the clinic's own (``store_attachment``, so its cases may send
    it) and check it once, keeping the verdict where the attachment check stage finds it (by
    content), so no case of the dispatch checks it again."""
    problems = [p for p in [_too_many(files, limits)] if p]
    refs: list[AttachmentRef] = []
    stored: dict[str, SharedFile] = {}
    for file in files:
        large = _too_large(file, limits)
        if large:
            problems.append(large)
            continue
        ref = store_attachment(
            ctx.engine,
            ctx.blobs,
            file.data,
            owner_hsa_id=clinic_hsa_id,
            filename=file.ref.filename,
            declared_type=file.declared_type,
        )
        stored[ref.sha256] = file
        refs.append(ref)
    if stored:
        verdicts, _fresh = verdicts_for(ctx, set(stored), limits, policy_of(limits, ctx.scanner))
        for sha256, file in stored.items():
            verdict = against_claims(verdicts[sha256], file.path.name, file.declared_type)
            if not verdict.ok:
                reason = verdict.reason or Reason.ATTACHMENT_TYPE_NOT_ALLOWED
                problems.append((reason, f"{file.path.name}: {verdict.detail}"))
    return refs, problems
