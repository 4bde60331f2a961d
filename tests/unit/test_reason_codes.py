"""The reason codes in code and the documented table stay in step."""

from __future__ import annotations

import re
from pathlib import Path

from workers.reasons import Note, Reason

TABLE = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"


def documented_codes() -> list[str]:
    return re.findall(r"^\| `([a-z0-9-]+)` \|", TABLE.read_text(), flags=re.MULTILINE)


def test_every_reason_code_is_documented_once() -> None:
    codes = documented_codes()
    assert len(codes) == len(set(codes)), "a code is documented twice"
    assert {r.value for r in Reason} <= set(codes)


def test_every_documented_code_exists_in_code() -> None:
    assert set(documented_codes()) <= {r.value for r in Reason} | {n.value for n in Note}


def test_notes_are_documented_kebab_case_and_no_reason_code() -> None:
    assert {n.value for n in Note} <= set(documented_codes())
    assert not {n.value for n in Note} & {r.value for r in Reason}
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n.value) for n in Note)


def test_reason_codes_are_kebab_case() -> None:
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.value) for r in Reason)
