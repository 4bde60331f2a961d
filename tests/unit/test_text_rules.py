"""The contracts' text rules: one set of allowed characters each, the same in the validator,
in the pattern the OpenAPI and AsyncAPI documents state, and (for identifiers) in Unicode."""

from __future__ import annotations

import re
import unicodedata

import pytest
from pydantic import ValidationError

from contracts.identifier_characters import IDENTIFIER_RANGES, UNICODE_VERSION
from contracts.send_case import SendCaseV2
from contracts.text import FreeText, Identifier, LineText, TextRule, stating_text_rules

RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "19121212-1212",
    "idempotency_key": "k-1",
}


def _allowed(rule: TextRule, char: str) -> bool:
    try:
        rule.check(char)
    except ValueError:
        return False
    return True


@pytest.mark.skipif(
    unicodedata.unidata_version != UNICODE_VERSION, reason="the table is of another Unicode"
)
def test_the_identifier_table_is_unicode_less_controls_formats_private_and_unassigned() -> None:
    refused = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    inside = {c for low, high in IDENTIFIER_RANGES for c in range(low, high + 1)}
    assert inside == {c for c in range(0x110000) if unicodedata.category(chr(c)) not in refused}


@pytest.mark.parametrize("rule", [Identifier, LineText, FreeText], ids=lambda r: r.name)
def test_the_stated_pattern_and_the_validator_agree_on_every_code_point(rule: TextRule) -> None:
    # the pattern as a JSON Schema validator reads it: ECMA-262, where $ is the end of the text
    stated = re.compile(rule.pattern.removesuffix("$") + r"\Z")
    disagree = [
        hex(c) for c in range(0x110000) if bool(stated.match(chr(c))) != _allowed(rule, chr(c))
    ]
    assert disagree == []
    assert stated.match("Åsa Öberg-Ünal 19121212-1212") and stated.match("")
    assert bool(stated.match("ok\n")) is (rule is FreeText)


def test_each_rule_refuses_what_it_says_and_names_the_rule_and_position() -> None:
    assert _allowed(FreeText, "\n") and _allowed(FreeText, "\u202e")
    assert not _allowed(LineText, "\n") and not _allowed(LineText, "\u202e")
    assert _allowed(LineText, "\u200d") and not _allowed(Identifier, "\u200d")  # a joiner
    assert not _allowed(Identifier, "\ue000") and not _allowed(Identifier, "\U000e0001")
    with pytest.raises(ValidationError) as caught:
        SendCaseV2(**{**RECORD, "personnummer": "1912\u202e1212"})
    error = caught.value.errors()[0]
    assert error["type"] == "bidi-control" and "U+202E at position 4" in error["msg"]
    with pytest.raises(ValueError, match="unpaired surrogate"):
        FreeText.check("hej\ud800")


def test_only_the_documents_state_the_rules_the_published_schemas_stay_frozen() -> None:
    plain = SendCaseV2.model_json_schema()["properties"]
    assert "pattern" not in plain["personnummer"]
    with stating_text_rules():
        stated = SendCaseV2.model_json_schema()["properties"]
    assert stated["personnummer"]["pattern"] == Identifier.pattern
    assert stated["clinic_hsa_id"] == plain["clinic_hsa_id"]  # its own pattern is stricter
    free_text = next(s for s in stated["free_text"]["anyOf"] if s.get("type") == "string")
    assert free_text["pattern"] == FreeText.pattern
