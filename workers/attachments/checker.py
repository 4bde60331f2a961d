"""The whole check of one file, in order from cheapest to dearest.

``inspect`` decides on the content alone, so its verdict holds for every case that carries the
same bytes (the stage keeps it by sha256); ``check_file`` adds the sender's claims (name and
declared type), which belong to one case. Neither raises on any bytes at all; only a virus
scanner that cannot answer raises ``ScannerUnavailable``.
"""

from __future__ import annotations

import dataclasses
import hashlib

from workers.attachments.identify import describe, disagreement, identify
from workers.attachments.images import check_image
from workers.attachments.limits import Limits
from workers.attachments.pdf import check_pdf
from workers.attachments.scanner import VirusScanner
from workers.attachments.structure import structure
from workers.attachments.verdict import Verdict
from workers.reasons import Reason

_STRUCTURE_REASON = {
    "truncated": Reason.ATTACHMENT_TRUNCATED,
    "corrupt": Reason.ATTACHMENT_CORRUPT,
    "polyglot": Reason.ATTACHMENT_POLYGLOT,
}

CONTENT_REASONS = frozenset(
    {
        Reason.ATTACHMENT_TYPE_NOT_ALLOWED,
        Reason.ATTACHMENT_TOO_LARGE,
        Reason.ATTACHMENT_TRUNCATED,
        Reason.ATTACHMENT_CORRUPT,
        Reason.ATTACHMENT_POLYGLOT,
        Reason.ATTACHMENT_PDF_ENCRYPTED,
        Reason.ATTACHMENT_PDF_ACTIVE_CONTENT,
        Reason.ATTACHMENT_IMAGE_TOO_LARGE,
        Reason.ATTACHMENT_INFECTED,
    }
)
"""Reasons that belong to the bytes themselves: no case can ever send such a file."""


def inspect(data: bytes, limits: Limits, scanner: VirusScanner) -> Verdict:  # noqa: PLR0911 - one return per kind of refusal, in checking order
    """The verdict on ``data``'s content: identified, parsed, scanned and cleaned."""
    sha256 = hashlib.sha256(data).hexdigest()
    size = len(data)
    if size > limits.max_bytes:
        return Verdict.refuse(
            Reason.ATTACHMENT_TOO_LARGE,
            f"{size:,} bytes is over the limit of {limits.max_bytes:,}",
            sha256=sha256,
            size=size,
        )
    kind = identify(data)
    if kind is None:
        return Verdict.refuse(
            Reason.ATTACHMENT_TYPE_NOT_ALLOWED,
            f"{describe(data)}, not a PDF, JPEG or PNG",
            sha256=sha256,
            size=size,
        )
    finding = structure(data, kind)
    if finding is not None:
        return Verdict.refuse(
            _STRUCTURE_REASON[finding.problem], finding.detail, sha256=sha256, size=size, kind=kind
        )
    pages: int | None = None
    cleaned: bytes | None = None
    if kind == "pdf":
        pdf = check_pdf(data)
        if pdf.reason is not None:
            return Verdict.refuse(pdf.reason, pdf.detail or "", sha256=sha256, size=size, kind=kind)
        pages = pdf.pages
    else:
        image = check_image(data, kind, limits.max_pixels)
        if image.reason is not None:
            return Verdict.refuse(
                image.reason, image.detail or "", sha256=sha256, size=size, kind=kind
            )
        cleaned = image.cleaned
    scan = scanner.scan(data)
    if scan.infected:
        return Verdict.refuse(
            Reason.ATTACHMENT_INFECTED,
            f"the virus scanner found {scan.signature}",
            sha256=sha256,
            size=size,
            kind=kind,
        )
    if cleaned is None or cleaned == data:
        return Verdict(True, kind, sha256, size, pages=pages)
    return Verdict(
        True,
        kind,
        sha256,
        size,
        pages=pages,
        cleaned_sha256=hashlib.sha256(cleaned).hexdigest(),
        cleaned_size=len(cleaned),
        cleaned=cleaned,
    )


def against_claims(verdict: Verdict, filename: str, declared_type: str) -> Verdict:
    """``verdict`` unless the sender's name or declared type disagrees with the content."""
    if not verdict.ok or verdict.type is None:
        return verdict
    problem = disagreement(verdict.type, filename, declared_type)
    if problem is None:
        return verdict
    return dataclasses.replace(
        verdict, ok=False, reason=Reason.ATTACHMENT_TYPE_MISMATCH, detail=problem
    )


def check_file(
    data: bytes,
    *,
    filename: str,
    declared_type: str = "application/octet-stream",
    limits: Limits,
    scanner: VirusScanner,
) -> Verdict:
    """The full check of one file as a sender presents it."""
    return against_claims(inspect(data, limits, scanner), filename, declared_type)
