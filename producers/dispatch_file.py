"""Reading a dispatch list: CSV (a ``personnummer`` column) or JSONL (one object per line).

Every other CSV column, or the ``fields`` object of a JSONL line, becomes the case's
personalisation fields (``{{ name }}`` in the template's text). Lists come as regions' tools
save them: the CSV delimiter is ``,``, ``;`` (Excel in a Swedish locale) or a tab, found from
the header line; the text is UTF-8, with or without a byte-order mark, or Windows-1252 (Excel's
plain "CSV"), found by reading the file once. Header names are matched without regard to case
and surrounding spaces, and a header that names a column twice is refused.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contracts.strict_json import DuplicateKey, loads_strictly
from producers.client import Recipient
from workers.reasons import Reason

IDENTITY_COLUMNS = ("personnummer", "pnr", "identity_number")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class RowError:
    """A line of the list that cannot be sent: ``reason`` is a stable code."""

    line: int
    reason: str
    detail: str


class DispatchFileError(ValueError):
    """The file as a whole cannot be read (unknown format, no identity column)."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in DELIMITED:
        return "csv"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    raise DispatchFileError(f"{path.name}: a dispatch list is .csv, .tsv, .txt or .jsonl")


DELIMITED = (".csv", ".tsv", ".txt")
"""Delimited lists, the delimiter sniffed: Excel saves "Text (tab-delimited)" as .txt."""


DELIMITERS = (",", ";", "\t")


def encoding_of(path: Path) -> str:
    """``utf-16`` after a UTF-16 byte-order mark, ``utf-8-sig`` when the whole file is UTF-8
    (a byte-order mark is dropped), else
    ``cp1252`` (Windows-1252, what Excel's plain CSV is in a Swedish locale).

    Raises
    ------
    DispatchFileError
        Neither (bytes Windows-1252 does not define).
    """
    with path.open("rb") as handle:
        if handle.read(2) in {codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE}:
            return "utf-16"  # Excel's "Unicode Text" (.txt, tab-delimited)
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
    try:
        with path.open(encoding="cp1252") as handle:
            for _ in iter(lambda: handle.read(1 << 20), ""):
                pass
    except UnicodeDecodeError:
        raise DispatchFileError(
            f"{path.name}: neither UTF-8 nor Windows-1252; save the list as CSV UTF-8"
        ) from None
    return "cp1252"


def delimiter_of(header: str) -> str:
    """The delimiter of a CSV header line: the one of ``,`` ``;`` tab it holds most of."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def count_rows(path: Path) -> int:
    """How many recipient lines the file has (header and blank lines not counted)."""
    kind = _kind(path)
    lines = 0
    with path.open(encoding=encoding_of(path), newline="") as handle:
        for text in handle:
            lines += bool(text.strip().lstrip("\ufeff").strip())
    return max(0, lines - 1) if kind == "csv" else lines


def read_recipients(path: Path) -> Iterator[Recipient | RowError]:
    """Every line of the list as a recipient, or as the error that keeps it from being sent.

    Raises
    ------
    DispatchFileError
        Not .csv, .tsv, .txt or .jsonl, or a CSV without a personnummer column.
    """
    if _kind(path) == "csv":
        yield from _read_csv(path)
    else:
        yield from _read_jsonl(path)


def _recipient(line: int, number: object, fields: dict[str, object]) -> Recipient | RowError:
    if number is not None and not isinstance(number, str):
        return RowError(line, Reason.INVALID_PAYLOAD, "the personnummer must be a JSON string")
    if number is None or not number.strip():
        return RowError(line, Reason.MISSING_IDENTITY_NUMBER, "no personnummer on this line")
    bad = [name for name in fields if not _FIELD_NAME.match(name)]
    if bad:
        return RowError(line, Reason.INVALID_PAYLOAD, f"field name {bad[0][:40]!r} is not allowed")
    return Recipient(
        number.strip(), {k: "" if v is None else str(v) for k, v in fields.items()}, line
    )


def check_header(path: Path) -> None:
    """Refuse, before anything is sent, a list whose header cannot be read: a CSV header without
    a personnummer column, or naming a column twice.

    Raises
    ------
    DispatchFileError
        As :func:`read_recipients` would on its first line.
    """
    if _kind(path) != "csv":
        return
    with path.open(encoding=encoding_of(path), newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        header = next(csv.reader(handle, delimiter=delimiter_of(first)), [])
    _identity_column(path, [_header_name(h) for h in header])


def _header_name(name: str | None) -> str:
    """A header name as the reader matches it: without a byte-order mark, spaces or case."""
    return (name or "").strip().lstrip("\ufeff").strip().lower()


def _identity_column(path: Path, header: list[str]) -> str:
    """The header's personnummer column.

    Raises
    ------
    DispatchFileError
        No such column, or a column named twice (``fornamn,Fornamn``): which of the two values
        a line means cannot be told, and the last one must not silently win.
    """
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DispatchFileError(
                f"{path.name}: the header names the column {name[:40]!r} twice "
                "(header names are matched without regard to case and spaces)"
            )
        seen.add(name)
    column = next((c for c in IDENTITY_COLUMNS if c in header), None)
    if column is None:
        shown = ", ".join(repr(h) for h in header[:10])
        raise DispatchFileError(
            f"{path.name}: no column named {' or '.join(IDENTITY_COLUMNS)} (the header has {shown})"
        )
    return column


def _read_csv(path: Path) -> Iterator[Recipient | RowError]:
    with path.open(encoding=encoding_of(path), newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter=delimiter_of(first))
        reader.fieldnames = [_header_name(h) for h in reader.fieldnames or []]
        column = _identity_column(path, list(reader.fieldnames))
        for row in reader:
            line = reader.line_num
            extra = row.pop(None, None) or []
            given = [v for v in row.values() if v is not None]
            if not any(v.strip() for v in [*given, *extra]):
                continue
            if extra or len(given) < len(row):
                yield RowError(
                    line,
                    Reason.MALFORMED_MESSAGE,
                    f"{len(given) + len(extra)} cells; the header has {len(row)}",
                )
                continue
            cleaned = {(k or "").strip(): v for k, v in row.items()}
            number = cleaned.pop(column, None)
            yield _recipient(line, number, {k: v for k, v in cleaned.items() if k})


def _read_jsonl(path: Path) -> Iterator[Recipient | RowError]:
    with path.open(encoding=encoding_of(path)) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = loads_strictly(text)
            except DuplicateKey as exc:
                yield RowError(line, Reason.DUPLICATE_JSON_KEY, exc.detail)
                continue
            except json.JSONDecodeError as exc:
                yield RowError(line, Reason.MALFORMED_MESSAGE, f"not JSON: {exc.msg}")
                continue
            except RecursionError:
                yield RowError(line, Reason.MALFORMED_MESSAGE, "not JSON: nested too deep")
                continue
            if not isinstance(record, dict):
                yield RowError(line, Reason.MALFORMED_MESSAGE, "a line must be a JSON object")
                continue
            fields = record.get("fields", {})
            if not isinstance(fields, dict):
                yield RowError(line, Reason.INVALID_PAYLOAD, "fields must be an object")
                continue
            number = next((record[c] for c in IDENTITY_COLUMNS if c in record), None)
            yield _recipient(line, number, fields)
