"""PDF checks with pypdf: a full parse, no encryption, no active content; the page count.

Active content is found by walking every object reachable from the trailer, so an action
hidden in a page, an annotation, a form field or the name tree is found wherever it hangs.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

from workers.reasons import Reason

logging.getLogger("pypdf").setLevel(logging.CRITICAL)
"""pypdf's warnings on broken files quote the file's bytes: content never goes to the logs."""

_QUOTED = re.compile(r"""\s*(@\d+)?:?\s*b(['"]).*""", re.DOTALL)

MAX_OBJECTS = 500_000
"""A walk that meets more objects than this is refused rather than left to run on."""

ACTIVE_KEYS: dict[str, str] = {
    "/JS": "JavaScript",
    "/JavaScript": "JavaScript",
    "/AA": "an additional action (AA)",
    "/Launch": "a Launch action",
    "/EmbeddedFiles": "embedded files",
    "/EmbeddedFile": "an embedded file",
    "/XFA": "an XFA form",
    "/RichMedia": "RichMedia",
}
ACTIVE_KINDS: dict[str, str] = {
    "/JavaScript": "JavaScript",
    "/Launch": "a Launch action",
    "/RichMedia": "RichMedia",
    "/FileAttachment": "an embedded file",
    "/EmbeddedFile": "an embedded file",
    "/SubmitForm": "a SubmitForm action",
    "/ImportData": "an ImportData action",
    "/GoToE": "a GoToE action into an embedded file",
    "/Movie": "a Movie",
    "/Sound": "a Sound",
}
"""Values of ``/S``, ``/Subtype`` or ``/Type`` that mark active content."""


@dataclass(frozen=True)
class PdfFinding:
    """A reason to refuse a PDF, or its page count when it passes."""

    reason: Reason | None
    detail: str | None = None
    pages: int | None = None


def _open_action(value: PdfObject) -> str | None:
    """An OpenAction that only opens a page (a destination or a GoTo) is harmless.

    A GoTo's ``/Next`` names further actions that run on opening too: it is harmless only when
    every action it chains is itself a GoTo (a URI or any other kind is refused).
    """
    pending: list[PdfObject] = [value]
    seen = 0
    while pending:
        seen += 1
        if seen > 1000:
            return "an OpenAction"
        target = pending.pop().get_object()
        if isinstance(target, ArrayObject) and seen == 1:
            return None
        if not isinstance(target, DictionaryObject) or target.get("/S") != "/GoTo":
            return "an OpenAction"
        chained = target.get("/Next")
        if chained is not None:
            chained = chained.get_object()
            pending.extend(chained if isinstance(chained, ArrayObject) else [chained])
    return None


def _is_active_kind(value: PdfObject) -> bool:
    return isinstance(value, NameObject) and str(value) in ACTIVE_KINDS


def active_content(reader: PdfReader) -> str | None:
    """What active content the document holds, or ``None``."""
    stack: list[PdfObject] = [reader.trailer]
    seen: set[tuple[int, int]] = set()
    visited = 0
    while stack:
        node = stack.pop()
        if isinstance(node, IndirectObject):
            key = (node.idnum, node.generation)
            if key in seen:
                continue
            seen.add(key)
            resolved = node.get_object()
            if resolved is None:
                continue
            node = resolved
        visited += 1
        if visited > MAX_OBJECTS:
            return f"more than {MAX_OBJECTS} objects"
        if isinstance(node, DictionaryObject):
            for name, value in node.items():
                if name in ACTIVE_KEYS:
                    return ACTIVE_KEYS[name]
                if name == "/OpenAction":
                    found = _open_action(value)
                    if found:
                        return found
                if name in ("/S", "/Subtype", "/Type") and _is_active_kind(value):
                    return ACTIVE_KINDS[str(value)]
                stack.append(value)
        elif isinstance(node, ArrayObject):
            stack.extend(node)
    return None


def check_pdf(data: bytes) -> PdfFinding:
    """Parse ``data`` fully; refuse it if encrypted or active, else count its pages."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return PdfFinding(Reason.ATTACHMENT_PDF_ENCRYPTED, "the PDF is encrypted")
        pages = len(reader.pages)
        found = active_content(reader)
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on hostile input
        return PdfFinding(Reason.ATTACHMENT_CORRUPT, f"pypdf cannot read it: {_short(exc)}")
    if found:
        return PdfFinding(Reason.ATTACHMENT_PDF_ACTIVE_CONTENT, f"the PDF contains {found}")
    if pages < 1:
        return PdfFinding(Reason.ATTACHMENT_CORRUPT, "the PDF has no pages")
    return PdfFinding(None, pages=pages)


def _short(exc: BaseException) -> str:
    """The error's kind and message without the file bytes pypdf quotes in it."""
    text = _QUOTED.sub("", str(exc)).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}"
