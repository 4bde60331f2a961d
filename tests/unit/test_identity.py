"""Identity numbers: every written form, every rule, the official test numbers, any string."""

from __future__ import annotations

import calendar
import datetime as dt
import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from personnummer import personnummer

from workers.adapters import population
from workers.identity import DETAILS, luhn_ok, parse_identity

TODAY = dt.date(2026, 11, 25)
PINS = population.test_personnummer()
COORDS = population.test_samordningsnummer()


def with_check_digit(nine: str) -> str:
    """Nine digits YYMMDDNNN and the Luhn digit that makes them a well-formed ten."""
    return next(nine + str(d) for d in range(10) if luhn_ok(nine + str(d)))


def centenarian(number: str, today: dt.date) -> bool:
    """Whether the holder of a 12-digit number is 100 or older on ``today``."""
    born = (int(number[:4]), int(number[4:6]), int(number[6:8]) % 60)
    return today.year - born[0] - ((today.month, today.day) < born[1:]) >= 100


def written_forms(number: str, today: dt.date) -> list[str]:
    """Every common way to write a 12-digit number."""
    short_sep = "+" if centenarian(number, today) else "-"
    forms = [number, f"{number[:8]}-{number[8:]}", f"{number[2:8]}{short_sep}{number[8:]}"]
    if short_sep == "-":
        forms.append(number[2:])
    return forms


# --- the official test numbers, on the full files -------------------------------------------


def test_every_official_test_personnummer_is_a_valid_personnummer_in_every_form() -> None:
    assert len(PINS) == 41_127
    for number in PINS:
        for form in written_forms(number, TODAY):
            verdict = parse_identity(form, today=TODAY)
            assert (verdict.valid, verdict.kind, verdict.normalized) == (
                True,
                "personnummer",
                number,
            ), form


def _real_coordination_date(number: str) -> bool:
    year, month, day = int(number[:4]), int(number[4:6]), int(number[6:8]) - 60
    if month == 0 or day == 0:
        return True
    return day <= calendar.monthrange(year, month)[1]


def test_official_samordningsnummer_parse_as_samordningsnummer_except_impossible_days() -> None:
    """Skatteverket's test set holds 24 numbers whose day minus 60 does not exist in its month
    (e.g. 31 April); Skatteverket has said those test numbers are wrong (ActiveLogin.Identity
    issue 126), so they must be rejected with the date rule, and every other one accepted."""
    impossible = [n for n in COORDS if not _real_coordination_date(n)]
    assert len(impossible) == 24
    assert "192004912388" in impossible  # 31 April + 60
    for number in COORDS:
        verdict = parse_identity(number, today=TODAY)
        if number in impossible:
            assert (verdict.valid, verdict.detail) == (False, "invalid-date"), number
        else:
            assert (verdict.valid, verdict.kind, verdict.normalized) == (
                True,
                "samordningsnummer",
                number,
            ), number
            for form in written_forms(number, TODAY):
                assert parse_identity(form, today=TODAY).normalized == number, form


def test_samordningsnummer_with_unknown_month_or_day_is_accepted() -> None:
    unknown_month = [n for n in COORDS if n[4:6] == "00"]
    unknown_day = [n for n in COORDS if n[6:8] == "60"]
    assert unknown_month and unknown_day
    assert any(n[4:6] == "00" and n[6:8] == "60" for n in COORDS)
    for number in unknown_month + unknown_day:
        assert parse_identity(number, today=TODAY).kind == "samordningsnummer"


# --- each rule, by example -------------------------------------------------------------------

A_PIN = "199001012385"  # an official test personnummer
RULE_EXAMPLES: list[tuple[str, str]] = [
    ("", "empty"),
    ("900101 2385", "whitespace"),
    ("19900101-2385 ", "whitespace"),
    ("19900101\t2385", "whitespace"),
    ("9001O1-2385", "format"),
    ("900101--2385", "format"),
    ("900101/2385", "format"),
    ("900101-238-5", "format"),
    ("١٩٩٠٠١٠١٢٣٨٥", "format"),  # Arabic-Indic digits are not digits here
    ("９００１０１２３８５", "format"),  # nor are full-width ones
    ("90010123856", "wrong-length"),
    ("9001012", "wrong-length"),
    ("1990010123855", "wrong-length"),
    ("9001012-2385", "wrong-length"),
    ("19900101-T385", "interim-number"),
    ("900101-R123", "interim-number"),
    ("19900101TF38", "interim-number"),
    ("202100-5448", "organisation-number"),  # Skatteverket, the authority
    ("2021005448", "organisation-number"),
    ("16202100-5448", "organisation-number"),
    ("17900101-2385", "century"),
    ("21900101-2385", "century"),
    ("199001012386", "check-digit"),
    ("900101-2386", "check-digit"),
    ("19" + with_check_digit("000229123"), "invalid-date"),  # 1900 was no leap year
    ("20" + with_check_digit("010229123"), "invalid-date"),
    ("19" + with_check_digit("900431123"), "invalid-date"),  # 31 April
    ("19" + with_check_digit("900491123"), "invalid-date"),  # 31 April + 60
    ("19" + with_check_digit("901300123"), "invalid-date"),
    ("19" + with_check_digit("900100123"), "invalid-date"),  # day 00 only for + 60
    ("19" + with_check_digit("900135123"), "invalid-date"),
    ("19" + with_check_digit("900101000"), "serial-000"),
    ("19900101+2385", "plus-sign-mismatch"),
]


@pytest.mark.parametrize(("text", "detail"), RULE_EXAMPLES)
def test_each_rule_is_named_when_it_fails(text: str, detail: str) -> None:
    verdict = parse_identity(text, today=TODAY)
    assert (verdict.valid, verdict.detail, verdict.normalized, verdict.kind) == (
        False,
        detail,
        None,
        None,
    )


def test_every_documented_detail_has_an_example() -> None:
    shown = {detail for _, detail in RULE_EXAMPLES} | {"future-date"}
    assert shown == set(DETAILS)


def test_a_date_of_birth_after_today_is_rejected() -> None:
    newest = max(PINS)  # born 2023-12-31
    assert parse_identity(newest, today=dt.date(2023, 12, 31)).valid
    verdict = parse_identity(newest, today=dt.date(2023, 12, 30))
    assert (verdict.valid, verdict.detail) == (False, "future-date")


def test_leap_days_are_real_dates() -> None:
    leap_days = [n for n in PINS if n[4:8] == "0229"]
    assert any(n.startswith("2000") for n in leap_days)
    for number in leap_days:
        assert parse_identity(number, today=TODAY).valid


def test_ten_digit_forms_take_the_century_from_the_sign_and_today() -> None:
    number = "192601049030"  # an official test number, born 4 January 1926
    before_100th = dt.date(2026, 1, 3)
    after_100th = dt.date(2026, 1, 4)
    assert parse_identity("260104-9030", today=before_100th).normalized == number
    assert parse_identity("2601049030", today=before_100th).normalized == number
    assert parse_identity("260104+9030", today=after_100th).normalized == number
    assert parse_identity("260104-9030", today=after_100th).normalized == "20" + number[2:]
    assert parse_identity("260104+9030", today=before_100th).normalized == "182601049030"


def test_a_twelve_digit_number_with_plus_is_accepted_for_the_hundred_year_old() -> None:
    assert parse_identity("19260104+9030", today=dt.date(2026, 1, 4)).valid
    verdict = parse_identity("19260104+9030", today=dt.date(2026, 1, 3))
    assert verdict.detail == "plus-sign-mismatch"


def test_a_value_that_is_not_a_string_gets_a_verdict() -> None:
    verdict = parse_identity(199001012385)  # type: ignore[arg-type]
    assert (verdict.valid, verdict.detail) == (False, "format")


# --- any string, and mutations of valid numbers ----------------------------------------------


def _consistent(text: str, today: dt.date) -> None:
    verdict = parse_identity(text, today=today)
    assert verdict.input == text
    if verdict.valid:
        number = verdict.normalized
        assert number is not None and re.fullmatch(r"[0-9]{12}", number)
        assert verdict.detail is None
        assert luhn_ok(number[2:])
        assert verdict.kind == ("samordningsnummer" if int(number[6:8]) >= 60 else "personnummer")
        assert number[-4:] == text[-4:] and number[4:8] in text
    else:
        assert verdict.normalized is None and verdict.kind is None
        assert verdict.detail in DETAILS


@given(st.text(max_size=40))
@example("\x00")
@example("1" * 10_000)
def test_any_text_gets_a_consistent_verdict(text: str) -> None:
    _consistent(text, TODAY)


@given(st.from_regex(r"\A[0-9+\- A-Za-z]{0,16}\Z"))
def test_number_like_text_gets_a_consistent_verdict(text: str) -> None:
    _consistent(text, TODAY)


valid_forms = st.tuples(st.sampled_from(PINS + COORDS[:200]), st.integers(0, 3)).map(
    lambda pair: written_forms(pair[0], TODAY)[pair[1] % len(written_forms(pair[0], TODAY))]
)


@given(valid_forms, st.data())
@settings(max_examples=300)
def test_mutations_of_valid_numbers_get_a_consistent_verdict(
    form: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(form)))
    char = data.draw(st.characters() | st.sampled_from("0123456789+- "))
    mutated = data.draw(
        st.sampled_from(
            [
                form[:index] + char + form[index + 1 :],  # replace
                form[:index] + char + form[index:],  # insert
                form[:index] + form[index + 1 :],  # delete
                form[:index]
                + form[index + 1 : index + 2]
                + form[index : index + 1]
                + form[index + 2 :],
            ]
        )
    )
    _consistent(mutated, TODAY)


@given(st.sampled_from(PINS), st.integers(0, 9), st.integers(1, 9))
def test_changing_any_one_digit_of_the_ten_digit_form_invalidates_it(
    number: str, position: int, shift: int
) -> None:
    """The Luhn digit catches every single-digit error, so no typo is taken for a resident."""
    digits = list(number)
    digits[2 + position] = str((int(digits[2 + position]) + shift) % 10)
    assert not parse_identity("".join(digits), today=TODAY).valid


@given(st.sampled_from(PINS), st.integers(0, 3))
def test_every_written_form_normalises_to_the_same_number(number: str, style: int) -> None:
    forms = written_forms(number, TODAY)
    assert parse_identity(forms[style % len(forms)], today=TODAY).normalized == number


# --- an independent oracle: the personnummer package ------------------------------------------


@st.composite
def twelve_digit_numbers(draw: st.DrawFn) -> str:
    year = draw(st.integers(1800, TODAY.year - 1))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 92))
    serial = draw(st.integers(0, 999))
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    check = with_check_digit(nine)[-1] if draw(st.booleans()) else str(draw(st.integers(0, 9)))
    return f"{year // 100}{nine}{check}"


@given(twelve_digit_numbers())
@settings(max_examples=500)
def test_agrees_with_the_personnummer_package_where_both_apply(number: str) -> None:
    """Outside the rules the package lacks (samordningsnummer with month 00 or day 60), both
    accept and reject the same 12-digit numbers."""
    assume(number[4:6] != "00" and number[6:8] != "60")
    ours = parse_identity(number, today=TODAY)
    theirs = personnummer.valid(number)
    assert ours.valid == theirs, (number, ours.detail)


def test_every_detail_is_documented_with_the_reason_codes() -> None:
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs"
    table = (docs / "identity-numbers.md").read_text(encoding="utf-8")
    for detail in DETAILS:
        assert f"| `{detail}` |" in table, detail
    assert "| `directory-refused` |" in (docs / "reason-codes.md").read_text(encoding="utf-8")
