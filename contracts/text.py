"""Which characters a contract's strings may hold: refusals that name the rule.

PostgreSQL refuses NUL in text, a lone surrogate cannot be encoded as UTF-8, and a control
character in an identifier hides it from people and from the log masker. So:

- ``Identifier`` (ids, keys, personnummer, fragment names): no control, format, surrogate,
  private-use, unassigned or line/paragraph-separator character at all;
- ``LineText`` (names, subjects, file names): one line of text, no control characters, no
  bidirectional overrides;
- ``FreeText`` (a message body, free text): newlines and tabs allowed, no NUL, no other control
  character, no lone surrogate.

The rules are validators after the type's own constraints, so the published JSON Schemas stay
as they were (a string that breaks them could never be stored or sent); they are documented in
docs/intake.md. A refusal is a pydantic error whose type is the rule (``control-character``,
``unpaired-surrogate``, ``bidi-control``) and whose message gives the code point and its position,
never the value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_NEVER_IN_IDENTIFIERS = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NEVER_IN_LINES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_NEVER_IN_FREE_TEXT = frozenset({"Cc", "Cs"})
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


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


def _checker(refused: frozenset[str], allowed: frozenset[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        probe = value
        for char in allowed:  # a body's newlines must not send it character by character
            probe = probe.replace(char, "")
        if probe.isprintable() and not _BIDI_CONTROLS.intersection(value):
            return value  # the common case: nothing to look at character by character
        for position, char in enumerate(value):
            if char in allowed:
                continue
            if unicodedata.category(char) in refused or (
                char in _BIDI_CONTROLS and refused is not _NEVER_IN_FREE_TEXT
            ):
                raise _refusal(char, position)
        return value

    return check


check_identifier = _checker(_NEVER_IN_IDENTIFIERS, frozenset())
check_line = _checker(_NEVER_IN_LINES, frozenset())
check_free_text = _checker(_NEVER_IN_FREE_TEXT, _FREE_TEXT_CONTROLS)

Identifier = AfterValidator(check_identifier)
"""For ``Annotated[str, ..., Identifier]``: ids, keys, personnummer, fragment names."""
LineText = AfterValidator(check_line)
"""For ``Annotated[str, ..., LineText]``: one line of text (names, subjects, file names)."""
FreeText = AfterValidator(check_free_text)
"""For ``Annotated[str, ..., FreeText]``: text that may have newlines and tabs."""
