"""Swedish identity numbers (personnummer, samordningsnummer): parse and normalise.

Any string at all gives a verdict, never an exception. A valid number is normalised to 12
digits (``YYYYMMDDNNNC``); an invalid one names the rule it broke in ``detail``, one of
``DETAILS`` (documented in docs/identity-numbers.md).

Written here rather than taken from the ``personnummer`` package (3.2), which cannot name the
failed rule, rejects the samordningsnummer Skatteverket issues with month 00 or day 60, and
accepts non-ASCII digits; that package is used by the tests as an independent oracle instead.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final, Literal

IdentityKind = Literal["personnummer", "samordningsnummer"]

DETAILS: Final[dict[str, str]] = {
    "empty": "nothing was given",
    "whitespace": "spaces or other whitespace inside the number",
    "format": "characters other than digits and one '-' or '+' before the last four digits",
    "wrong-length": "digits in the right places, but not 10 or 12 of them",
    "interim-number": "a letter in the last four: an interim number (T-number, reservnummer)",
    "organisation-number": "month digits of 20 or more: an organisation number",
    "century": "a 12-digit number whose century is not 18, 19 or 20",
    "check-digit": "the last digit is not the Luhn check digit of the ten-digit form",
    "invalid-date": "no such date (after taking 60 off a samordningsnummer's day)",
    "future-date": "a date of birth after today",
    "serial-000": "the serial number 000 is never issued",
    "plus-sign-mismatch": "'+' (aged 100 or more) on a 12-digit number of someone younger",
}
"""Every ``detail`` an invalid verdict can carry, and the rule it names."""

_NUMBER = re.compile(r"([0-9]{2})?([0-9]{2})([0-9]{2})([0-9]{2})([-+]?)([0-9]{3})([0-9])")
_INTERIM = re.compile(r"(?:[0-9]{6}|[0-9]{8})[-+]?[0-9A-Za-z]{4}")
_DIGITS_AND_SEPARATOR = re.compile(r"[0-9]+(?:[-+][0-9]{4})?")
_WHITESPACE = re.compile(r"\s")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CENTURIES = frozenset({"18", "19", "20"})


@dataclass(frozen=True, slots=True)
class IdentityVerdict:
    """What a string is as an identity number; ``detail`` names the rule that failed."""

    input: str
    valid: bool
    normalized: str | None = None
    kind: IdentityKind | None = None
    detail: str | None = None


def luhn_ok(ten_digits: str) -> bool:
    """The Luhn check over the ten-digit form (YYMMDDNNNC); ASCII digits only."""
    doubled = _DOUBLED
    total = sum(doubled[ord(c) - 48] for c in ten_digits[0::2])
    total += sum(ord(c) - 48 for c in ten_digits[1::2])
    return total % 10 == 0


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _real_date(year: int, month: int, day: int, *, unknown_allowed: bool) -> bool:
    """A calendar date; a samordningsnummer may leave month or day unknown (00)."""
    if month == 0 or day == 0:
        return unknown_allowed and 0 <= month <= 12 and 0 <= day <= 31
    if month > 12:
        return False
    last = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month]
    return day <= last


def _invalid(text: str, detail: str) -> IdentityVerdict:
    return IdentityVerdict(text, False, detail=detail)


def _shape_failure(text: str) -> str:
    """Which shape rule a string that is not ``[CC]YYMMDD[-+]NNNC`` breaks."""
    if not text:
        return "empty"
    if _WHITESPACE.search(text):
        return "whitespace"
    if _INTERIM.fullmatch(text):
        return "interim-number"
    if _DIGITS_AND_SEPARATOR.fullmatch(text):
        return "wrong-length"
    return "format"


def _year(century: str | None, yy: str, sep: str, born: tuple[int, int], today: dt.date) -> int:
    """The year of birth; a ten-digit form takes the latest century not after ``today``."""
    if century is not None:
        return int(century + yy)
    year = today.year - (today.year - int(yy)) % 100
    if year == today.year and born > (today.month, today.day):
        year -= 100
    return year - 100 if sep == "+" else year


def parse_identity(  # noqa: PLR0911 - one early return per rule reads as the rule list
    text: str, *, today: dt.date | None = None
) -> IdentityVerdict:
    """Parse ``text`` as a personnummer or samordningsnummer in any common written form.

    Parameters
    ----------
    text
        ``YYMMDD-NNNN``, ``YYMMDD+NNNN`` (aged 100 or more), ``YYMMDDNNNN``, ``YYYYMMDDNNNN``
        or ``YYYYMMDD-NNNN``; anything else is invalid with a reason, never an exception.
    today
        The day to reckon the century and age from (default: today).

    Returns
    -------
    IdentityVerdict
        ``normalized`` is ``YYYYMMDDNNNC`` when valid; ``detail`` is one of ``DETAILS`` when not.
    """
    if not isinstance(text, str):
        return _invalid(repr(text), "format")
    match = _NUMBER.fullmatch(text)
    if match is None:
        return _invalid(text, _shape_failure(text))
    century, yy, mm, dd, sep, serial, check = match.groups()
    month, day = int(mm), int(dd)
    if month >= 20:
        return _invalid(text, "organisation-number")
    if century is not None and century not in _CENTURIES:
        return _invalid(text, "century")
    if not luhn_ok(f"{yy}{mm}{dd}{serial}{check}"):
        return _invalid(text, "check-digit")
    kind: IdentityKind = "samordningsnummer" if day >= 60 else "personnummer"
    born_day = day - 60 if day >= 60 else day
    today = today or dt.date.today()
    year = _year(century, yy, sep, (month, born_day), today)
    if not _real_date(year, month, born_day, unknown_allowed=kind == "samordningsnummer"):
        return _invalid(text, "invalid-date")
    if serial == "000":
        return _invalid(text, "serial-000")
    if (year, month, born_day) > (today.year, today.month, today.day):
        return _invalid(text, "future-date")
    if century is not None and sep == "+":
        age = today.year - year - ((today.month, today.day) < (month, born_day))
        if age < 100:
            return _invalid(text, "plus-sign-mismatch")
    return IdentityVerdict(text, True, f"{year:04d}{mm}{dd}{serial}{check}", kind)
