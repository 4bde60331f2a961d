"""Bodies and headers as brokers hand them over, made into bytes and text without surprises.

py-amqp hands a body over as text when the publisher named a content encoding (and an empty
body as ``''``), as bytes otherwise; kombu's ``compression`` header names a codec; header
values may be text, bytes, numbers, tables or lists, and text may hold lone surrogates. Every
function here either returns a value or raises :class:`Refused` with a stable reason code:
nothing a publisher sends makes one raise anything else.

Compression names are resolved through kombu's compression registry (``gzip``/``zlib``,
``bzip2``, ``lzma``/``xz`` and their content types); decompression is streamed with a limit so
that a small compressed body cannot fill the memory (kombu's own decoders are unbounded).
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kombu.compression

from workers.reasons import Reason

TEXT_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "ascii",
        "iso8859-1",
        "iso8859-15",
        "cp1252",
    }
)
"""Content encodings a body may name (by any of Python's names for them)."""
RAW_ENCODINGS = frozenset({"binary", "8bit", "7bit", "identity"})
"""Names that say "these are the bytes" (kombu uses ``binary``)."""
MAX_HEADER_CHARS = 256


@dataclass(frozen=True)
class Refused(Exception):
    """A body or header that cannot be read; ``reason`` is a stable reason code."""

    reason: str
    field: str
    rule: str
    message: str


def text_encoding(value: object) -> str | None:
    """The canonical name of a declared content encoding; ``None`` for raw bytes or none.

    Raises
    ------
    Refused
        ``unsupported-content-encoding`` when it names no text encoding Omvänt reads.
    """
    if value is None or value in ("", b""):
        return None
    name = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not isinstance(name, str) or len(name) > 40:
        raise Refused(Reason.UNSUPPORTED_CONTENT_ENCODING, "content-encoding", "text", "not a name")
    if name.strip().lower() in RAW_ENCODINGS:
        return None
    try:
        canonical = codecs.lookup(name.strip()).name
    except (LookupError, ValueError):  # ValueError: a NUL inside the name
        canonical = ""
    if canonical not in TEXT_ENCODINGS:
        raise Refused(
            Reason.UNSUPPORTED_CONTENT_ENCODING,
            "content-encoding",
            "supported-encoding",
            "use utf-8 (or utf-16, utf-32, iso-8859-1, iso-8859-15, cp1252)",
        )
    return canonical


def as_bytes(body: object, encoding: str | None) -> bytes:
    """A body as the bytes that were sent: text is encoded back with its declared encoding."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode(encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            return body.encode("utf-8", "surrogatepass")
    raise Refused(Reason.MALFORMED_MESSAGE, "(body)", "bytes", "the body is not bytes or text")


def _bounded(make: Callable[[], Any], data: bytes, limit: int) -> bytes:
    decompressor = make()
    out = decompressor.decompress(data, limit + 1)
    if len(out) > limit:
        raise Refused(
            Reason.MESSAGE_TOO_LARGE,
            "(body)",
            "max-bytes",
            f"decompressed, the body is over {limit} bytes",
        )
    if not decompressor.eof:
        raise Refused(
            Reason.BODY_UNDECODABLE, "(body)", "complete", "the compressed data ends early"
        )
    return bytes(out)


class _Zlib:
    """zlib's streaming decompressor with the ``decompress(data, max_length)`` of bz2/lzma;
    wbits 47 reads both zlib and gzip framing (kombu's ``gzip`` is zlib)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=47)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(data, max_length)

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)


_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "application/x-gzip": _Zlib,
    "application/x-bz2": bz2.BZ2Decompressor,
    "application/x-lzma": lzma.LZMADecompressor,
}


def decompress(body: bytes, compression: object, limit: int) -> bytes:
    """``body`` decompressed as its ``compression`` header says, at most ``limit`` bytes.

    Raises
    ------
    Refused
        ``unsupported-compression`` (a codec kombu does not know, or one without a bounded
        decoder here), ``body-undecodable`` (corrupt), ``message-too-large`` (over the limit).
    """
    if compression is None or compression in ("", b""):
        return body
    name = compression.decode("ascii", "replace") if isinstance(compression, bytes) else compression
    content_type = ""
    if isinstance(name, str) and len(name) <= 64:
        try:
            kombu.compression.get_decoder(name)
            content_type = kombu.compression.get_encoder(name)[1]
        except KeyError:
            content_type = ""
    make = _DECOMPRESSORS.get(content_type)
    if make is None:
        raise Refused(
            Reason.UNSUPPORTED_COMPRESSION,
            "compression",
            "supported-compression",
            "use gzip (application/x-gzip), bzip2 (application/x-bz2) or xz (application/x-lzma)",
        )
    try:
        return _bounded(make, body, limit)
    except Refused:
        raise
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError) as exc:
        raise Refused(
            Reason.BODY_UNDECODABLE, "(body)", content_type, f"cannot decompress: {exc}"[:200]
        ) from None


def header_text(value: object) -> str | None:
    """A header value as text if it is text (or UTF-8 bytes, or an integer); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**18 else None
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return value
    return None


def printable(value: object, limit: int = MAX_HEADER_CHARS) -> str:
    """Any value as one bounded line of text fit for a record: control characters, lone
    surrogates and NUL escaped (PostgreSQL refuses NUL; JSON cannot encode a lone surrogate)."""
    text = header_text(value)
    if text is None:
        text = repr(value)[: limit * 2]
    out = []
    for char in text[:limit]:
        if char.isprintable() or char == " ":
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    result = "".join(out)
    if len(text) > limit:
        result += f"...(+{len(text) - limit} chars)"
    return result


def normal_headers(raw: Mapping[Any, Any] | None) -> dict[str, object]:
    """Header names as lower-case text (bytes names decoded, others skipped); values raw."""
    headers: dict[str, object] = {}
    if not isinstance(raw, Mapping):
        return headers
    for key, value in list(raw.items())[:256]:
        name = header_text(key)
        if name is None or len(name) > 128:
            continue
        headers[name.lower()] = value
    return headers
