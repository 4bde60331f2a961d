"""The log masker is exact (issue 10): every identity number is masked in every written form,
also with invisible characters inside; identifiers that hold digits are never touched.

The rule (``workers/log.py``): six or eight date digits (a month and a day, or a day + 60, or
00), then four serial digits (or a letter and three), with '-', '+', a space, a line break or
nothing between and invisible characters (Unicode Cc/Cf: NUL, controls, zero-width marks; line
breaks and tabs only between date and serial) anywhere, bounded by non-digits, is masked,
whether the check digit holds or not; UUIDs, HSA-ids, hex digests of 16
or more digits and ISO-8601 timestamps are left exactly as they are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.adapters import population
from workers.log import mask_identity_numbers

OFFICIAL = population.test_personnummer()[::97] + population.test_samordningsnummer()[::13]
SOFT = ["\x00", "\x01", "\x1b", "\x7f", "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\x9b"]
"""Read through anywhere in a number (line breaks and tabs only separate date and serial)."""
BOUNDARIES = [" ", ":", "=", "(", ")", "\n", "\t", ",", ";", "x", "z", "_", "/", '"', "'", "\x00"]
WORDS = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Nd", "Cs"), exclude_characters="0123456789"
    ),
    max_size=30,
)


def luhn(digits: str) -> int:
    total = 0
    for index, char in enumerate(digits):
        value = int(char) * (2 - index % 2)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


@st.composite
def nobodys_numbers(draw: st.DrawFn) -> str:
    """A 12-digit number with a plausible date and a check digit that does NOT hold: a typo,
    nobody's number (the guide: never invent numbers that could be real)."""
    year = draw(st.integers(1890, 2025))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28)) + draw(st.sampled_from([0, 60]))
    serial = draw(st.integers(0, 999))
    body = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    wrong = (luhn(body) + draw(st.integers(1, 9))) % 10
    return f"{year:04d}{month:02d}{day:02d}{serial:03d}{wrong}"


numbers = st.one_of(st.sampled_from(OFFICIAL), nobodys_numbers())


def written(number: str, style: int) -> str:
    date8, date6, tail = number[:8], number[2:8], number[8:]
    return [
        f"{date6}-{tail}",
        f"{date6}+{tail}",
        f"{date6}{tail}",
        number,
        f"{date8}-{tail}",
        f"{date8} {tail}",
        f"{date6} {tail}",
        f"{date8} - {tail}",
        f"{date6}\u2010{tail}",
        f"{date8}\n{tail}",
    ][style]


@st.composite
def with_invisible(draw: st.DrawFn, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(0, 3))):
        chars.insert(draw(st.integers(1, len(chars) - 1)), draw(st.sampled_from(SOFT)))
    return "".join(chars)


def in_clear(text: str, number: str) -> bool:
    """Whether the number's ten last digits survive anywhere, however they are spread."""
    digits = "".join(c for c in text if c.isdigit() or c == "*")
    return number[2:] in digits


@settings(max_examples=400)
@given(numbers, st.integers(0, 9), WORDS, WORDS, st.data())
def test_an_identity_number_never_survives_in_any_form(
    number: str, style: int, before: str, after: str, data: st.DataObject
) -> None:
    form = data.draw(with_invisible(written(number, style)))
    left, right = data.draw(st.sampled_from(BOUNDARIES)), data.draw(st.sampled_from(BOUNDARIES))
    masked = mask_identity_numbers(f"{before}{left}{form}{right}{after}")
    assert not in_clear(masked, number), masked
    assert "****" in masked


def hsa_ids() -> st.SearchStrategy[str]:
    suffix = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    return st.one_of(
        st.builds(lambda d, s: f"SE{d}-{s}", st.from_regex(r"\A[0-9]{10}\Z"), suffix.filter(bool)),
        st.builds(
            lambda d, n, s: f"SE{d}-{n}-{s}",
            st.from_regex(r"\A[0-9]{6}\Z"),
            st.from_regex(r"\A[0-9]{4}\Z"),
            suffix.filter(bool),
        ),
    )


identifiers = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    hsa_ids(),
    st.binary(min_size=1).map(lambda b: hashlib.sha256(b).hexdigest()),
    st.binary(min_size=1).map(lambda b: hashlib.md5(b).hexdigest()),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), timezones=st.just(dt.UTC)).map(
        lambda t: t.isoformat()
    ),
    st.datetimes(min_value=dt.datetime(1900, 1, 1)).map(lambda t: t.isoformat(sep=" ")),
    st.from_regex(r"\A\+46 ?7[0-9] ?[0-9]{3} ?[0-9]{2} ?[0-9]{2}\Z"),
    st.from_regex(r"\A07[0-9]-[0-9]{3} [0-9]{2} [0-9]{2}\Z"),
)


@settings(max_examples=400)
@given(st.lists(identifiers, min_size=1, max_size=4), st.sampled_from([" ", ", ", " case=", "\n"]))
def test_identifiers_survive_untouched(ids: list[str], joint: str) -> None:
    text = "case " + joint.join(ids) + " done"
    assert mask_identity_numbers(text) == text


@given(st.uuids().map(str), hsa_ids(), numbers)
def test_identifiers_survive_beside_a_masked_number(uuid: str, hsa: str, number: str) -> None:
    masked = mask_identity_numbers(f"case {uuid} unit {hsa} resident {number[:8]}-{number[8:]}")
    assert uuid in masked and hsa in masked
    assert not in_clear(masked, number)


def test_the_examples_of_the_issue() -> None:
    assert mask_identity_numbers("SE232100-0016-VC01") == "SE232100-0016-VC01"
    uuid = "19515135-1234-5334-9abc-0123456789ab"
    assert mask_identity_numbers(uuid) == uuid
    assert mask_identity_numbers("SE2321000016-VC01") == "SE2321000016-VC01"
    assert mask_identity_numbers("pnr 19121212\x00-1212.") == "pnr 19121212-****."
    assert mask_identity_numbers("1912\u200b1212-1212") == "19121212-****"
    assert mask_identity_numbers("121212+1212") == "121212+****"
    assert mask_identity_numbers("pnr191212121212x") == "pnr19121212-****x"


def test_the_invisible_class_covers_every_control_and_format_character() -> None:
    from workers.log import _SOFT

    soft = re.compile(f"[{_SOFT}]")
    missing = [
        hex(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf") and not soft.match(chr(cp))
    ]
    assert not missing
