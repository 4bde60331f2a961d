"""Swedish identity numbers (personnummer, samordningsnummer): parse and normalise.

Any string at all gives a verdict, never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

IdentityKind = Literal["personnummer", "samordningsnummer"]

_FORM = re.compile(r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+]?)(\d{3})(\d)$")


@dataclass(frozen=True)
class IdentityVerdict:
    """What a string is as an identity number; ``detail`` names the rule that failed."""

    input: str
    valid: bool
    normalized: str | None = None
    kind: IdentityKind | None = None
    detail: str | None = None


def luhn_ok(ten_digits: str) -> bool:
    """The Luhn check over the ten-digit form (YYMMDDNNNC)."""
    total = 0
    for index, char in enumerate(ten_digits):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def parse_identity(text: str, *, today: dt.date | None = None) -> IdentityVerdict:
    """Parse ``text`` as a personnummer or samordningsnummer."""
    match = _FORM.match(text)
    if match is None:
        return IdentityVerdict(text, False, detail="format")
    century, yy, mm, dd, sep, serial, check = match.groups()
    if not luhn_ok(f"{yy}{mm}{dd}{serial}{check}"):
        return IdentityVerdict(text, False, detail="check-digit")
    today = today or dt.date.today()
    if century is None:
        year = 2000 + int(yy)
        if year > today.year:
            year -= 100
        if sep == "+":
            year -= 100
    else:
        year = int(century + yy)
    day = int(dd)
    kind: IdentityKind = "samordningsnummer" if day > 60 else "personnummer"
    if kind == "samordningsnummer":
        day -= 60
    try:
        dt.date(year, int(mm), day)
    except ValueError:
        return IdentityVerdict(text, False, detail="date")
    if serial == "000":
        return IdentityVerdict(text, False, detail="serial")
    return IdentityVerdict(text, True, f"{year:04d}{mm}{dd}{serial}{check}", kind)
