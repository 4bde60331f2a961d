"""Which characters a contract's strings may hold: refusals that name the rule.

PostgreSQL refuses NUL in text, a lone surrogate cannot be encoded as UTF-8, and a control
character in an identifier hides it from people and from the log masker. So:

- ``Identifier`` (ids, keys, personnummer, fragment names): no control, format, surrogate,
  private-use, unassigned or line/paragraph-separator character at all (the characters of
  Unicode 14.0, ``contracts.identifier_characters``);
- ``LineText`` (names, subjects, file names): one line of text, no control characters, no
  bidirectional overrides;
- ``FreeText`` (a message body, free text): newlines and tabs allowed, no NUL, no other control
  character, no lone surrogate.

Each rule is one set of allowed characters. The validator refuses a string with any other; the
published per-version JSON Schemas stay as they were frozen, while the OpenAPI and AsyncAPI
documents state the rule as a ``pattern`` (``stating_text_rules``), so a client generated from
them and a fuzzer reading them know what is accepted. A refusal is a pydantic error whose type
is the rule (``control-character``, ``unpaired-surrogate``, ``bidi-control``) and whose message
gives the code point and its position, never the value.
"""

from __future__ import annotations

import contextvars
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from contracts.identifier_characters import IDENTIFIER_RANGES

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SURROGATES = (0xD800, 0xDFFF)

Ranges = Sequence[tuple[int, int]]


def _without(ranges: Ranges, holes: Ranges) -> list[tuple[int, int]]:
    """``ranges`` less every code point of ``holes``."""
    out: list[tuple[int, int]] = []
    for low, high in ranges:
        pieces = [(low, high)]
        for hole_low, hole_high in holes:
            pieces = [
                part
                for a, b in pieces
                for part in ((a, min(b, hole_low - 1)), (max(a, hole_high + 1), b))
                if part[0] <= part[1]
            ]
        out.extend(pieces)
    return out


_CONTROLS = [(0x00, 0x1F), (0x7F, 0x9F)]
"""Unicode category Cc, the same in every version."""
_LINE_RANGES = _without(
    [(0x0000, 0x10FFFF)],
    [*_CONTROLS, _SURROGATES, (0x2028, 0x2029), (0x202A, 0x202E), (0x2066, 0x2069)],
)
_FREE_TEXT_RANGES = sorted(
    [(0x09, 0x0A), (0x0D, 0x0D), *_without([(0x0000, 0x10FFFF)], [*_CONTROLS, _SURROGATES])]
)


def _escape(code: int) -> str:
    # \\uXXXX reads the same in ECMA-262 (JSON Schema's dialect), Python and Rust; a character
    # above the BMP is written as itself (a valid scalar value: the ranges hold no surrogates)
    return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)


def _character_class(ranges: Ranges) -> str:
    return "".join(
        _escape(low) if low == high else f"{_escape(low)}-{_escape(high)}" for low, high in ranges
    )


_STATING = contextvars.ContextVar("omvant_stating_text_rules", default=False)


@contextmanager
def stating_text_rules() -> Iterator[None]:
    """Within this block, JSON Schemas generated from the contracts state the text rules as
    ``pattern`` (the OpenAPI and AsyncAPI documents); outside, they are as published."""
    token = _STATING.set(True)
    try:
        yield
    finally:
        _STATING.reset(token)


class TextRule:
    """An ``Annotated`` marker: the string holds only characters of ``ranges``."""

    def __init__(self, name: str, ranges: Ranges) -> None:
        self.name = name
        self.ranges = tuple(ranges)
        allowed = _character_class(self.ranges)
        self.pattern = f"^[{allowed}]*$"
        """The rule in JSON Schema's (ECMA-262) dialect, as the documents state it."""
        self._refused = re.compile(f"[^{allowed}]")

    def __repr__(self) -> str:
        return f"TextRule({self.name!r})"

    def check(self, value: str) -> str:
        """``value`` if it holds only allowed characters.

        Raises
        ------
        PydanticCustomError
            The first refused character, by rule, code point and position.
        """
        found = self._refused.search(value)
        if found is None:
            return value
        raise _refusal(found.group(), found.start())

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler(schema)
        if not _STATING.get():
            return generated
        if "pattern" in generated:
            return {**generated, "allOf": [{"pattern": self.pattern}]}
        return {**generated, "pattern": self.pattern}


def _refusal(char: str, position: int) -> PydanticCustomError:
    code = f"U+{ord(char):04X}"
    if unicodedata.category(char) == "Cs":
        return PydanticCustomError(
            "unpaired-surrogate",
            "must not contain an unpaired surrogate ({code} at position {position})",
            {"code": code, "position": position},
        )
    if char in _BIDI_CONTROLS:
        return PydanticCustomError(
            "bidi-control",
            "must not contain a bidirectional control ({code} at position {position})",
            {"code": code, "position": position},
        )
    return PydanticCustomError(
        "control-character",
        "must not contain a control character ({code} at position {position})",
        {"code": code, "position": position},
    )


Identifier = TextRule("identifier", IDENTIFIER_RANGES)
"""For ``Annotated[str, ..., Identifier]``: ids, keys, personnummer, fragment names."""
LineText = TextRule("line", _LINE_RANGES)
"""For ``Annotated[str, ..., LineText]``: one line of text (names, subjects, file names)."""
FreeText = TextRule("free-text", _FREE_TEXT_RANGES)
"""For ``Annotated[str, ..., FreeText]``: text that may have newlines and tabs."""

check_identifier = Identifier.check
check_line = LineText.check
check_free_text = FreeText.check
