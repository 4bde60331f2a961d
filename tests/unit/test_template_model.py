"""The template model, the starter library and template files."""

from __future__ import annotations

import datetime as dt

import pytest

from workers.templates.files import parse_templates, render_templates
from workers.templates.library import InMemoryTemplateLibrary, starter_templates
from workers.templates.model import Template, TemplateInvalid, validated

NAMED_IN_THE_DOMAIN = {
    "bifoga-bild-till-varden": "Bifoga bild till vården",
    "meddelande-till-invanare": "Meddelande till invånare",
    "fragor-infor-vardkontakt-sjukskrivning": "Frågor inför vårdkontakt om sjukskrivning",
    "meddelande-om-provsvar": "Meddelande om provsvar",
}


def definition(**changes: object) -> dict[str, object]:
    return {
        "id": "lokal",
        "kind": "information",
        "scope": "local",
        "owner": "SE2321000016-VC01",
        "name": "Meddelande",
        "instruction": ".",
        "text": "Hej!",
        **changes,
    }


def problems_of(**changes: object) -> str:
    with pytest.raises(TemplateInvalid) as caught:
        validated(definition(**changes))
    return " ".join(caught.value.problems)


def test_the_four_starter_templates_exist_in_swedish_with_fragments() -> None:
    by_id = {t.id: t for t in starter_templates()}
    for template_id, name in NAMED_IN_THE_DOMAIN.items():
        template = by_id[template_id]
        assert template.name == name
        assert template.active
        assert template.scope in ("national", "regional")
        assert template.fragments
    assert by_id["bifoga-bild-till-varden"].kind == "questions"
    assert by_id["fragor-infor-vardkontakt-sjukskrivning"].questions
    assert not by_id["gammal-kallelse"].active


def test_the_fragment_names_producers_use_stay() -> None:
    by_id = {t.id: t for t in starter_templates()}
    assert {"halsning", "tid-bokad", "aterkom"} <= set(by_id["meddelande-till-invanare"].fragments)
    assert {"normalt", "journal"} <= set(by_id["meddelande-om-provsvar"].fragments)
    assert {"hud"} <= set(by_id["bifoga-bild-till-varden"].fragments)
    assert {"tid", "avboka"} <= set(by_id["kallelse-screening"].fragments)
    sick_leave = by_id["fragor-infor-vardkontakt-sjukskrivning"]
    assert {"arbete", "tidigare"} <= set(sick_leave.fragments)


def test_a_template_without_a_name_is_refused() -> None:
    assert "needs a name" in problems_of(name="  ")
    assert "needs a name" in problems_of(name=None) or "name" in problems_of(name=None)
    data = definition()
    del data["name"]
    with pytest.raises(TemplateInvalid, match="needs a name"):
        validated(data)


def test_the_instruction_is_mandatory_but_a_single_dot_will_do() -> None:
    assert "instruction" in problems_of(instruction="")
    assert validated(definition(instruction=".")).instruction == "."


def test_a_question_template_needs_questions_and_gets_the_standard_answer_form() -> None:
    assert "at least one question" in problems_of(kind="questions")
    template = validated(definition(kind="questions", questions=["Hur mår du?"]))
    assert [o.kind for o in template.answer_options] == [
        "answer",
        "partial-answer",
        "counter-question",
    ]
    assert template.answerable


def test_questions_and_notification_settings_belong_to_question_templates() -> None:
    assert "question template" in problems_of(questions=["Varför?"])
    assert "question template" in problems_of(notification={"channels": ["sms"]})


def test_a_template_needs_some_text() -> None:
    assert "text or at least one phrase fragment" in problems_of(text="")
    assert validated(definition(text="", fragments={"a": "A."})).fragments == {"a": "A."}


def test_malformed_parts_are_named() -> None:
    assert "contact_card_url" in problems_of(contact_card_url="javascript:alert(1)")
    assert "fragments" in problems_of(fragments={"Bad Name!": "x"})
    assert "unread_followup" in problems_of(unread_followup={"after_hours": 0, "action": "flag"})
    assert "resident_channels" in problems_of(
        kind="questions", questions=["?"], resident_channels={"channels": ["sms", "sms"]}
    )
    assert "mailbox" in problems_of(
        kind="questions", questions=["?"], notification={"alert": "email"}
    )
    assert "mailbox" in problems_of(
        kind="questions", questions=["?"], notification={"alert": "email", "mailbox": "not a mail"}
    )


def test_unread_followup_is_read_as_issue_6_expects() -> None:
    template = validated(definition(unread_followup={"after_hours": 48, "action": "notify-again"}))
    assert template.unread_followup is not None
    assert (template.unread_followup.after_hours, template.unread_followup.action) == (
        48,
        "notify-again",
    )


@pytest.mark.parametrize("file_format", ["yaml", "json"])
def test_a_file_round_trips_every_field(file_format: str) -> None:
    templates = starter_templates()
    text = render_templates(templates, file_format)  # type: ignore[arg-type]
    assert parse_templates(text, file_format) == templates  # type: ignore[arg-type]


def test_a_file_reports_every_broken_template() -> None:
    text = "templates:\n  - {id: a, kind: information, scope: local, owner: SE2321000016-VC01}\n"
    text += "  - {id: b, kind: questions, scope: national, owner: SE2321000016-NATL,"
    text += " name: B, instruction: '.', text: x}\n"
    with pytest.raises(TemplateInvalid) as caught:
        parse_templates(text)
    joined = "\n".join(caught.value.problems)
    assert "a: name: " in joined
    assert "a: instruction: " in joined
    assert "b: " in joined and "at least one question" in joined


@pytest.mark.parametrize("text", ["templates: [", "{}", "templates: []", "- 1\n- 2\n"])
def test_a_file_that_is_not_a_template_list_is_refused(text: str) -> None:
    with pytest.raises(TemplateInvalid):
        parse_templates(text)


def test_in_memory_library_gives_old_versions_with_todays_activation() -> None:
    first = validated(definition(active=True, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    second = validated(
        definition(
            version=2, name="Ny", active=False, created_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
        )
    )
    library = InMemoryTemplateLibrary([first, second])
    old = library.get("lokal", 1)
    assert old is not None and old.name == "Meddelande" and not old.active
    assert library.version_at("lokal", dt.datetime(2026, 1, 15, tzinfo=dt.UTC)) == 1
    assert library.version_at("lokal", dt.datetime(2026, 2, 15, tzinfo=dt.UTC)) == 2
    assert library.version_at("lokal", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == 1
    assert library.version_at("finns-inte", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) is None


def test_content_excludes_identity_so_versions_compare_by_what_they_say() -> None:
    a = validated(definition(version=1))
    b = validated(definition(version=7, active=True, id="annan"))
    assert a.content() == b.content()
    assert isinstance(a, Template)
