"""The JSON of dramatiq messages: orjson where it reads and writes what the stdlib would, the
stdlib where it does not.

Every message between stages is encoded and decoded once per hop; orjson does both several
times faster than the stdlib (``json``), and what it writes is standard JSON (UTF-8, not
``\\u`` escapes) that any producer or consumer reads. Where the two differ, the stdlib decides,
so hostile input reads and writes exactly as it did:

- orjson refuses lone surrogates, integers beyond 64 bits, keys that are not strings and
  objects nested deeper than 254 (``dumps``): the stdlib writes them;
- orjson reads nesting up to 1024 deep, the stdlib (3.11) only as deep as the recursion limit
  (1000) less the caller's stack: text nested deeper than 254 is read by the stdlib, whose
  ``RecursionError`` is the verdict where it gives up. orjson's own limit checks the depth: the
  text is read inside 770 more arrays (:data:`PAD`), which orjson refuses beyond 254, rather
  than written again to find out (``dumps``: a fifth of reading a 500-case message);
- orjson reads an integer beyond 64 bits as a float, and refuses ``NaN``, ``Infinity``, a byte
  order mark and surrogates: a message with a number token of 19 digits or more, or one orjson
  refuses, is read by the stdlib, whose ``RecursionError`` and ``ValueError`` stay the verdict
  on what it cannot read (``workers/message_guard.py`` quarantines it);
- the stdlib reads ``NaN`` and ``Infinity``, which orjson would write as ``null``: they are read
  as :class:`NonFinite`, a float orjson refuses to write, so they are written by the stdlib
  again. No contract has a float field, so no other non-finite float reaches a message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_WRITE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Datetimes and dataclasses are refused, as the stdlib refuses them (no silent new format)."""

_DEEPEST = 254
"""The deepest nesting orjson reads here (``[]`` is 1 deep); deeper text goes to the stdlib."""
PAD = 1024 - _DEEPEST
"""Arrays around the text: orjson refuses nesting beyond 1024, so it reads the text only if that
is nested at most 254 deep (``[]`` is 1 deep)."""
_OPEN, _CLOSE = b"[" * PAD, b"]" * PAD
_DIGIT_RUNS = bytes.maketrans(b"0123456789:,[ \t\r\n", b"0000000000#######")
_LONG = b"0" * 19
"""19 digits: the shortest integer orjson may read as a float (beyond -2**63 or 2**64 - 1)."""


class NonFinite(float):
    """``NaN`` or an infinity the stdlib read: orjson refuses to write it (the stdlib does)."""


def dumps(data: Any) -> bytes:
    """``data`` as compact JSON in UTF-8.

    Raises
    ------
    TypeError, ValueError, RecursionError
        What ``json.dumps`` raises for data it cannot write.
    """
    try:
        return orjson.dumps(data, option=_WRITE)
    except TypeError:  # orjson.JSONEncodeError: the stdlib writes it or says why not
        return json.dumps(data, separators=(",", ":")).encode("utf-8")


def loads(raw: bytes) -> Any:
    """The value of the JSON text ``raw`` (UTF-8), as ``json.loads(raw.decode("utf-8"))``.

    Raises
    ------
    UnicodeDecodeError, ValueError, RecursionError
        What the stdlib raises for text it cannot read.
    """
    if not _has_long_number(raw):
        try:
            if raw.count(b"[") + raw.count(b"{") <= _DEEPEST:  # no deeper than its brackets
                return orjson.loads(raw)
            return _unpadded(orjson.loads(b"".join((_OPEN, raw, _CLOSE))))
        except (orjson.JSONDecodeError, _NotOneText):
            pass
    return json.loads(raw.decode("utf-8"), parse_constant=NonFinite, parse_float=_float)


class _NotOneText(ValueError):
    """The padded text read, but the text alone is not one JSON value (``1,2``, ``1],[2``)."""


def _unpadded(value: Any) -> Any:
    """The text's value inside the :data:`PAD` arrays: each a list of exactly one item, else
    the text alone was not one value (the stdlib refuses it)."""
    for _ in range(PAD):
        if type(value) is not list or len(value) != 1:
            raise _NotOneText
        value = value[0]
    return value


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def _has_long_number(raw: bytes) -> bool:
    """Whether ``raw`` may hold a number token of 19 digits or more: a run of 19 digits at the
    start or after ``:``, ``,``, ``[`` or whitespace (in a string it only costs time)."""
    runs = raw.translate(_DIGIT_RUNS)
    if _LONG not in runs:
        return False
    return any(mark + _LONG in runs for mark in (b"#", b"#-")) or runs.startswith(
        (_LONG, b"-" + _LONG)
    )
