"""Identification by content: the three allowed formats by their magic bytes, anything else
named (for the detail) by puremagic. Names and declared types are claims to compare, not facts.
"""

from __future__ import annotations

import re
from pathlib import PurePath

import puremagic

from contracts.common import AttachmentType

MAGIC: tuple[tuple[bytes, AttachmentType], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)

EXTENSIONS: dict[str, AttachmentType] = {
    ".pdf": "pdf",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".png": "png",
}

MEDIA_TYPES: dict[str, AttachmentType] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/png": "png",
    "image/x-png": "png",
}

CONTENT_TYPES: dict[AttachmentType, str] = {
    "pdf": "application/pdf",
    "jpeg": "image/jpeg",
    "png": "image/png",
}
"""The media type a file of each kind is delivered as."""

NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream"})
"""Declared types that claim nothing."""

_EXTENSION = re.compile(r"^\.[a-z0-9]{1,8}$")
_TEXT_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"<svg", "SVG image"),
    (b"<html", "HTML page"),
    (b"<!doctype html", "HTML page"),
    (b"<?xml", "XML document"),
    (b"{\\rtf", "RTF document"),
)


def identify(data: bytes) -> AttachmentType | None:
    """The allowed format ``data`` starts as, or ``None``."""
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    return None


def describe(data: bytes) -> str:
    """A short human name for content that is none of the allowed formats."""
    if not data:
        return "an empty file"
    head = data[:1024].lstrip().lower()
    for marker, name in _TEXT_KINDS:
        if head.startswith(marker) or (marker == b"<svg" and marker in head):
            return f"a {name}"
    if data.startswith(b"PK\x03\x04"):
        office = _office_kind(data)
        if office:
            return office
    try:
        matches = puremagic.magic_string(data[:65536])
    except Exception:  # noqa: BLE001 - naming is a courtesy; any failure means "unknown"
        matches = []
    if matches:
        best = matches[0]
        return f"a {best.name} ({best.extension.lstrip('.') or 'unknown'})"
    return "content of unknown type"


def _office_kind(data: bytes) -> str | None:
    """Word, Excel or PowerPoint by the folders inside their ZIP container."""
    head = data[:65536]
    for folder, name in ((b"word/", "a Word"), (b"xl/", "an Excel"), (b"ppt/", "a PowerPoint")):
        if folder in head:
            return f"{name} document (a ZIP archive)"
    return None


def claimed_extension(filename: str) -> str | None:
    """The extension a file name claims, if it looks like one (``.01`` of a date does not)."""
    suffix = PurePath(filename.replace("\\", "/")).suffix.lower()
    if not _EXTENSION.match(suffix) or suffix[1:].isdigit():
        return None
    return suffix


def disagreement(kind: AttachmentType, filename: str, declared_type: str) -> str | None:
    """Why the sender's claims (name, declared type) disagree with the content, or ``None``."""
    extension = claimed_extension(filename)
    if extension is not None and EXTENSIONS.get(extension) != kind:
        return f"the content is {kind} but the name ends in {extension}"
    media = declared_type.split(";", 1)[0].strip().lower()
    if media not in NO_CLAIM and MEDIA_TYPES.get(media) != kind:
        return f"the content is {kind} but the declared type is {media[:60]}"
    return None
