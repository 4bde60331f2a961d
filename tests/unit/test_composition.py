"""Composition: fragments, free text, fields (safely), signature, date, and every rejection."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from pydantic import ValidationError

from contracts.message_composed import MessageComposedV1
from contracts.recipient_validated import RecipientValidatedV1
from workers.adapters import population
from workers.adapters.staff_catalogue import StaffCatalogue, StaffMember, Unit
from workers.composition import CompositionError, Pin, compose, handle
from workers.reasons import Reason
from workers.stage import Advance, Reject
from workers.templates.library import InMemoryTemplateLibrary, starter_templates
from workers.templates.model import Template

CLINIC = "SE2321000016-VC01"
OTHER_CLINIC = "SE2321000016-VC02"
NURSE = "SE2321000016-S101"
PRIVATE_NURSE = "SE2321000016-S102"
TODAY = dt.date(2026, 3, 14)


class FixedStaffCatalogue(StaffCatalogue):
    """An HSA catalogue with two members of staff and two units."""

    def staff(self, hsa_id: str) -> StaffMember | None:
        return {
            NURSE: StaffMember(NURSE, "Anna Berg", "Sjuksköterska"),
            PRIVATE_NURSE: StaffMember(PRIVATE_NURSE, "Per Holm", "Läkare", "clinic"),
        }.get(hsa_id)

    def unit(self, hsa_id: str) -> Unit | None:
        return {
            CLINIC: Unit(CLINIC, "Vårdcentral Norrmalm"),
            OTHER_CLINIC: Unit(OTHER_CLINIC, "Vårdcentral Söder"),
        }.get(hsa_id)


CATALOGUE = FixedStaffCatalogue()


def template(**changes: object) -> Template:
    data: dict[str, object] = {
        "id": "lokal-mall",
        "kind": "information",
        "scope": "local",
        "owner": CLINIC,
        "name": "Meddelande från mottagningen",
        "instruction": ".",
        "text": "Hej {{ fornamn }}!",
        "fragments": {"a": "Första.", "b": "Andra.", "tid": "Tid: {{ tid }}."},
        "active": True,
        **changes,
    }
    return Template.model_validate(data)


def case(**changes: object) -> RecipientValidatedV1:
    data: dict[str, object] = {
        "case_id": "case-1",
        "clinic_hsa_id": CLINIC,
        "sender_hsa_id": NURSE,
        "template_id": "lokal-mall",
        "fragments": [],
        "fields": {"fornamn": "Eva"},
        "personnummer": population.test_personnummer()[0],
        "channels": ["sms", "email"],
        **changes,
    }
    return RecipientValidatedV1.model_validate(data)


def composed(item: RecipientValidatedV1, tmpl: Template | None = None, limit: int = 10_000):
    return compose(
        item,
        tmpl if tmpl is not None else template(),
        CATALOGUE,
        today=TODAY,
        max_body_chars=limit,
        channels=item.channels,
    )


def rejection(item: RecipientValidatedV1, tmpl: Template | None = None, limit: int = 10_000):
    with pytest.raises(CompositionError) as caught:
        composed(item, tmpl, limit)
    return caught.value.reason


def test_fragments_are_plussed_in_after_the_text_in_the_order_given_with_repeats() -> None:
    message = composed(case(fragments=["b", "a", "b"]))
    assert message.body.split("\n\n") == ["Hej Eva!", "Andra.", "Första.", "Andra."]


def test_free_text_comes_after_the_fragments_and_contact_details_last() -> None:
    tmpl = template(
        contact="Ring 010-123 45 67",
        contact_card_url="https://www.1177.se/kontaktkort/norrmalm",
    )
    message = composed(case(fragments=["a"], free_text="  Välkommen!  "), tmpl)
    assert message.body.split("\n\n") == [
        "Hej Eva!",
        "Första.",
        "Välkommen!",
        "Ring 010-123 45 67",
        "Kontaktkort: https://www.1177.se/kontaktkort/norrmalm",
    ]


def test_subject_is_the_template_name_and_the_date_is_the_day_given() -> None:
    message = composed(case())
    assert message.subject == "Meddelande från mottagningen"
    assert message.sent_on == TODAY
    assert message.template_version == 1


def test_signature_is_name_and_title_from_hsa_by_default() -> None:
    assert composed(case()).signature == "Anna Berg, Sjuksköterska\nVårdcentral Norrmalm"


def test_signature_is_the_clinic_name_when_the_sender_signs_so() -> None:
    assert composed(case(sender_hsa_id=PRIVATE_NURSE)).signature == "Vårdcentral Norrmalm"


def test_unknown_sender_or_clinic_cannot_be_signed() -> None:
    assert rejection(case(sender_hsa_id="SE2321000016-NOBODY")) == Reason.SENDER_UNKNOWN
    national = template(scope="national", owner="SE2321000016-NATL")
    assert rejection(case(clinic_hsa_id="SE2321000016-GONE"), national) == Reason.CLINIC_UNKNOWN


def test_inactive_template_is_rejected() -> None:
    assert rejection(case(), template(active=False)) == Reason.TEMPLATE_INACTIVE


def test_unknown_template_and_another_clinics_local_template_are_unknown() -> None:
    with pytest.raises(CompositionError) as caught:
        compose(case(), None, CATALOGUE, today=TODAY, max_body_chars=100)
    assert caught.value.reason == Reason.TEMPLATE_UNKNOWN
    assert rejection(case(clinic_hsa_id=OTHER_CLINIC)) == Reason.TEMPLATE_UNKNOWN


def test_national_template_serves_every_clinic() -> None:
    national = template(scope="national", owner="SE2321000016-NATL")
    assert composed(case(clinic_hsa_id=OTHER_CLINIC), national).subject


def test_unknown_fragment_is_rejected() -> None:
    assert rejection(case(fragments=["a", "finns-inte"])) == Reason.FRAGMENT_UNKNOWN


def test_field_the_text_uses_but_the_case_lacks_is_rejected() -> None:
    assert rejection(case(fragments=["tid"])) == Reason.FIELD_MISSING


def test_body_over_the_limit_is_rejected_and_at_the_limit_accepted() -> None:
    item = case(free_text="x" * 50)
    length = len(composed(item).body)
    assert composed(item, limit=length).body
    assert rejection(item, limit=length - 1) == Reason.BODY_TOO_LONG


@pytest.mark.parametrize(
    "value",
    [
        "<script>alert(1)</script>",
        "{{ fornamn }}",
        "{% for x in y %}{{ x }}{% endfor %}",
        "{0.__class__.__mro__}",
        "%(fornamn)s %s ${fornamn}",
        '" onmouseover="alert(1)',
    ],
)
def test_field_values_are_plain_text_never_markup_or_syntax(value: str) -> None:
    message = composed(case(fields={"fornamn": value}))
    assert message.body == html.escape(f"Hej {value}!")
    assert "<" not in message.body
    assert '"' not in message.body


@pytest.mark.parametrize(
    "free_text",
    [
        "<img src=x onerror=alert(1)>",
        "Hej {{ fornamn }}, {% if 1 %}ja{% endif %}",
        "{0.__init__.__globals__} %s %(x)s",
        "<a href='javascript:alert(1)'>klicka</a>",
    ],
)
def test_free_text_is_literal_and_escaped(free_text: str) -> None:
    body = composed(case(free_text=free_text)).body
    assert body.split("\n\n")[-1] == html.escape(free_text)
    assert html.unescape(body).endswith(free_text)


def test_markup_in_the_template_itself_is_escaped_too() -> None:
    tmpl = template(name="Prov <b>svar</b> & mer", text="<i>Hej</i> {{ fornamn }}")
    message = composed(case(), tmpl)
    assert message.subject == "Prov &lt;b&gt;svar&lt;/b&gt; &amp; mer"
    assert message.body == "&lt;i&gt;Hej&lt;/i&gt; Eva"


@pytest.mark.parametrize("free_text", ["\u202e \u2066", " \u2067\n\u2069 "])
def test_free_text_of_only_hiding_characters_leaves_no_empty_paragraph(free_text: str) -> None:
    tmpl = template(contact="Ring 010-123 45 67")
    message = composed(case(fragments=["a"], free_text=free_text), tmpl)
    assert message.body.split("\n\n") == ["Hej Eva!", "Första.", "Ring 010-123 45 67"]


@pytest.mark.parametrize("free_text", ["\x00\x01", " \x7f\n\x0b "])
def test_control_characters_in_free_text_are_refused_by_the_contract(free_text: str) -> None:
    with pytest.raises(ValidationError, match="control character"):
        case(fragments=["a"], free_text=free_text)
    with pytest.raises(ValidationError, match="control character"):
        case(fields={"fornamn": f"Eva{free_text}"})


def test_a_field_value_is_one_line_and_hiding_characters_go() -> None:
    value = "Eva\n\nMed vänlig hälsning\nDoktor X\u202e"
    assert composed(case(fields={"fornamn": value})).body == (
        "Hej Eva Med vänlig hälsning Doktor X!"
    )


def test_an_empty_field_value_is_field_missing_never_a_hole_in_the_text() -> None:
    for empty in ("", "   ", "\u200e"):
        assert rejection(case(fields={"fornamn": empty})) == Reason.FIELD_MISSING


def test_a_version_stored_with_channels_in_its_notification_reads_them_as_resident_channels() -> (
    None
):
    old = template(kind="questions", questions=["?"], notification={"channels": ["sms"]})
    assert old.notification is None
    assert old.resident_channels is not None and old.resident_channels.channels == ("sms",)


def test_resident_channels_of_a_question_template_narrow_the_channels() -> None:
    questions = template(
        kind="questions", questions=["Hur mår du?"], resident_channels={"channels": ["sms"]}
    )
    assert composed(case(), questions).channels == ("sms",)
    assert composed(case(), template()).channels == ("sms", "email")
    reason = rejection(case(channels=["email"]), questions)
    assert reason == Reason.TEMPLATE_CHANNEL_UNAVAILABLE


def test_handle_pins_each_case_to_the_version_current_when_it_arrived() -> None:
    created = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
    edited = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    library = InMemoryTemplateLibrary(
        [
            template(created_at=created),
            template(version=2, name="Ny rubrik", created_at=edited),
        ]
    )
    early, late, named = case(case_id="early"), case(case_id="late"), case(case_id="named")
    pins = {
        "early": Pin(edited - dt.timedelta(minutes=1)),
        "late": Pin(edited + dt.timedelta(minutes=1)),
        "named": Pin(edited + dt.timedelta(minutes=1), template_version=1),
    }
    decisions = handle(
        [early, late, named], library, CATALOGUE, today=TODAY, max_body_chars=10_000, pins=pins
    )
    records = {}
    for decision in decisions:
        assert isinstance(decision, Advance)
        assert isinstance(decision.next_item, MessageComposedV1)
        records[decision.case_id] = decision.next_item
    assert (records["early"].template_version, records["early"].subject) == (1, template().name)
    assert (records["late"].template_version, records["late"].subject) == (2, "Ny rubrik")
    assert records["named"].template_version == 1


def test_handle_rejects_one_case_and_composes_its_chunk_mates() -> None:
    library = InMemoryTemplateLibrary([template()])
    decisions = handle(
        [case(case_id="ok"), case(case_id="bad", fragments=["zz"]), case(case_id="ok2")],
        library,
        CATALOGUE,
        today=TODAY,
        max_body_chars=10_000,
    )
    assert [type(d).__name__ for d in decisions] == ["Advance", "Reject", "Advance"]
    bad = decisions[1]
    assert isinstance(bad, Reject)
    assert bad.reason == Reason.FRAGMENT_UNKNOWN


def test_the_starter_library_composes_every_fragment_of_every_active_template() -> None:
    library = InMemoryTemplateLibrary()
    fields = {"fornamn": "Eva", "datum": "3 april", "klockslag": "09.30"}
    fields |= {"provdatum": "1 april", "svara_senast": "10 april"}
    for tmpl in starter_templates():
        if not tmpl.active:
            continue
        item = case(
            template_id=tmpl.id,
            fragments=list(tmpl.fragments),
            fields=fields,
        )
        message = composed(item, library.get(tmpl.id))
        assert "{{" not in message.body
        assert message.subject == html.escape(tmpl.name)
        assert message.answerable == (tmpl.kind == "questions")


@pytest.mark.parametrize("urgent", [False, True])
def test_a_case_cleared_at_composition_is_emitted_as_a_valid_attachments_cleared(
    urgent: bool,
) -> None:
    """The AttachmentsCleared record of a case without attachments is the composed message's:
    the envelope emitted validates against its published JSON Schemas and reads back (through
    the message JSON), record for record, as the contract's model."""
    import json
    from pathlib import Path

    import jsonschema

    from contracts.attachments_cleared import AttachmentsClearedV1
    from contracts.registry import envelope_data, parse
    from workers.composition import past_the_attachment_check
    from workers.message_json import dumps, loads

    library = InMemoryTemplateLibrary([template()])
    items = [
        case(case_id=f"c{n}", priority="urgent" if urgent else "normal", batch_id="b-1")
        for n in range(3)
    ]
    decisions = handle(items, library, CATALOGUE, today=TODAY, max_body_chars=10_000)
    onward = []
    for decision in decisions:
        moved = past_the_attachment_check(decision)
        assert isinstance(moved, Advance)
        onward.append(moved.next_item)
        assert isinstance(decision.next_item, MessageComposedV1)
        assert moved.next_item == AttachmentsClearedV1.model_validate(
            decision.next_item.model_dump(exclude={"attachments"})
        )
    envelope = loads(dumps(envelope_data(onward, correlation_id="corr-1")))
    snapshots = Path(__file__).parent / "schema_snapshots"
    schema = json.loads((snapshots / "AttachmentsCleared.v1.schema.json").read_text())
    for record in envelope["payload"]:
        jsonschema.validate(record, schema)
    jsonschema.validate(envelope, json.loads((snapshots / "Envelope.v1.schema.json").read_text()))
    parsed = parse(envelope)
    assert parsed.items == onward
    assert envelope["case_ids"] == ["c0", "c1", "c2"]
