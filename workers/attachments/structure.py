"""Byte-level structure: where each format's data ends, and signatures of other formats.

A polyglot is a file that is two formats at once: data after the end marker (a ZIP or script
appended after a PNG's IEND, a JPEG's EOI or a PDF's last ``%%EOF``), or another format's
signature inside. These walks are hand-written because Pillow and pypdf stop reading at the end
marker and never report what follows it.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

Problem = Literal["truncated", "corrupt", "polyglot"]

_PADDING = b" \t\r\n\x0c\x00"
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_HTML_MARKERS = (b"<script", b"<html", b"<?php", b"<iframe", b"<svg")


@dataclass(frozen=True)
class Finding:
    """Something wrong with a file's structure."""

    problem: Problem
    detail: str


def _after_end(data: bytes, end: int, what: str) -> Finding | None:
    rest = data[end:]
    if rest.strip(_PADDING):
        return Finding("polyglot", f"{len(rest)} bytes of data after the end of the {what}")
    return None


def png_structure(data: bytes) -> Finding | None:
    """Walk the PNG chunks to IEND, checking each chunk's CRC; report what follows IEND."""
    pos = 8
    size = len(data)
    first = True
    while True:
        if pos + 8 > size:
            return Finding("truncated", "the PNG ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if length > 0x7FFFFFFF:
            return Finding("corrupt", "a PNG chunk length is out of range")
        end = pos + 12 + length
        if end > size:
            return Finding("truncated", "the PNG ends inside a chunk")
        if first and kind != b"IHDR":
            return Finding("corrupt", "the PNG does not start with IHDR")
        first = False
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return Finding("corrupt", f"the PNG chunk {kind!r} has a wrong checksum")
        if kind == b"IEND":
            return _after_end(data, end, "PNG image")
        pos = end


def jpeg_structure(data: bytes) -> Finding | None:  # noqa: PLR0911 - one return per way a JPEG ends wrong
    """Walk the JPEG segments and entropy-coded data to EOI; report what follows EOI."""
    pos = 2
    size = len(data)
    while True:
        if pos + 2 > size:
            return Finding("truncated", "the JPEG ends before its end-of-image marker")
        if data[pos] != 0xFF:
            return Finding("corrupt", "a JPEG marker was expected")
        while pos + 1 < size and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > size:
            return Finding("truncated", "the JPEG ends before its end-of-image marker")
        marker = data[pos + 1]
        if marker == 0xD9:
            return _after_end(data, pos + 2, "JPEG image")
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            pos += 2
            continue
        if pos + 4 > size:
            return Finding("truncated", "the JPEG ends inside a segment header")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return Finding("corrupt", "a JPEG segment length is out of range")
        pos += 2 + length
        if pos > size:
            return Finding("truncated", "the JPEG ends inside a segment")
        if marker == 0xDA:
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                return Finding("truncated", "the JPEG ends inside the image data")
            pos = found.start()


def pdf_structure(data: bytes) -> Finding | None:
    """The last ``%%EOF`` ends a PDF: nothing but whitespace may follow it."""
    last = data.rfind(b"%%EOF")
    if last < 0:
        return Finding("truncated", "the PDF has no %%EOF end marker")
    if data.rfind(b"startxref", 0, last) < 0:
        return Finding("corrupt", "the PDF has no startxref before its end marker")
    return _after_end(data, last + 5, "PDF")


def foreign_signature(data: bytes, kind: str) -> Finding | None:
    """Another format's signature inside: a PDF header in an image, a ZIP archive's local
    header and directory, or HTML/script markers a browser would sniff."""
    if kind != "pdf" and data.find(b"%PDF-") >= 0:
        return Finding("polyglot", "a PDF header inside the image")
    if data.find(b"PK\x03\x04") >= 0 and data.find(b"PK\x05\x06") >= 0:
        return Finding("polyglot", "a ZIP archive inside the file")
    if data.find(b"Rar!\x1a\x07") >= 0:
        return Finding("polyglot", "a RAR archive inside the file")
    head = data[:2048].lower()
    for marker in _HTML_MARKERS:
        if marker in head:
            return Finding("polyglot", f"HTML or script ({marker.decode()}) near the start")
    return None


def structure(data: bytes, kind: str) -> Finding | None:
    """The first structural problem of ``data`` read as ``kind``, or ``None``."""
    walk = {"png": png_structure, "jpeg": jpeg_structure, "pdf": pdf_structure}[kind]
    return walk(data) or foreign_signature(data, kind)


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_dimensions(data: bytes, kind: str) -> tuple[int, int] | None:
    """Width and height as the header claims them, read before any decoder sees the file:
    PNG's IHDR, or a JPEG's first start-of-frame segment. ``None`` when not found."""
    if kind == "png":
        if len(data) < 24:
            return None
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    pos = 2
    size = len(data)
    while pos + 9 <= size and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA or length < 2:
            return None
        pos += 2 + length
    return None
