"""Each stage's pure handler, with the shipped simulators."""

from __future__ import annotations

import datetime as dt

from contracts.common import AttachmentRef
from contracts.message_composed import MessageComposedV1
from contracts.read_receipt import ReadReceiptV1
from contracts.recipient_validated import RecipientValidatedV1
from contracts.send_case import SendCaseV2
from producers.scenario import broken_check_digit
from workers import attachment_check, composition, read_receipts, recipient_validation
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.case_states import CaseState
from workers.stage import Advance, Reject
from workers.templates.library import InMemoryTemplateLibrary

SEED = 1177
CLINIC = "SE2321000016-VC01"


def request(number: str, key: str, **extra: object) -> SendCaseV2:
    fields = {
        "clinic_hsa_id": CLINIC,
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": number,
        "idempotency_key": key,
        **extra,
    }
    return SendCaseV2.model_validate(fields)


def resident_with(status: AccountStatus, channels: bool = True) -> str:
    directory = SimulatedAccountDirectory(SEED)
    for number in population.test_personnummer():
        account = directory.account(number)
        if account.status == status and bool(account.channels) == channels:
            return number
    raise AssertionError("the simulated population has every kind of resident")


def test_validation_rejects_each_unreachable_resident_with_its_reason() -> None:
    reachable = resident_with(AccountStatus.ACTIVE)
    items = [
        request(resident_with(AccountStatus.NO_ACCOUNT, channels=False), "1"),
        request(resident_with(AccountStatus.BLOCKED), "2"),
        request(resident_with(AccountStatus.ACTIVE, channels=False), "3"),
        request(resident_with(AccountStatus.DEACTIVATED, channels=False), "4"),
        request(population.test_samordningsnummer()[0], "5"),
        request(broken_check_digit(population.test_personnummer()[0]), "6"),
        request(f"{reachable[:8]}-{reachable[8:]}", "7"),
    ]
    decisions = recipient_validation.handle(items, SimulatedAccountDirectory(SEED))
    reasons = [d.reason if isinstance(d, Reject) else None for d in decisions]
    assert reasons == [
        "no-account",
        "login-blocked",
        "no-notification-channel",
        "account-deactivated",
        "samordningsnummer-not-reachable",
        "invalid-identity-number",
        None,
    ]
    passed = decisions[-1]
    assert isinstance(passed, Advance)
    assert isinstance(passed.next_item, RecipientValidatedV1)
    assert passed.next_item.personnummer == reachable
    expected = sorted(SimulatedAccountDirectory(SEED).account(reachable).channels)
    assert sorted(passed.next_item.channels) == expected


def validated(**extra: object) -> RecipientValidatedV1:
    fields = {
        "case_id": "c1",
        "clinic_hsa_id": CLINIC,
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "meddelande-till-invanare",
        "personnummer": "191212121212",
        "channels": ["sms"],
        **extra,
    }
    return RecipientValidatedV1.model_validate(fields)


class PinnedCatalogue(SimulatedStaffCatalogue):
    """The simulated catalogue with one sender's signature setting pinned."""

    def __init__(self, signature: str) -> None:
        super().__init__(SEED)
        self.setting = signature

    def staff(self, hsa_id: str):  # type: ignore[no-untyped-def]
        member = super().staff(hsa_id)
        assert member is not None
        return type(member)(member.hsa_id, member.name, member.title, self.setting)  # type: ignore[arg-type]


def test_composition_plusses_in_fragments_in_order_and_signs_personally() -> None:
    today = dt.date(2026, 11, 25)
    item = validated(fragments=["aterkom", "halsning", "aterkom"], free_text="Välkommen!")
    catalogue = PinnedCatalogue("personal")
    (decision,) = composition.handle([item], InMemoryTemplateLibrary(), catalogue, today, 10_000)
    assert isinstance(decision, Advance)
    message = decision.next_item
    assert isinstance(message, MessageComposedV1)
    template = InMemoryTemplateLibrary().get("meddelande-till-invanare")
    assert template is not None
    back, hello = template.fragments["aterkom"], template.fragments["halsning"]
    assert message.body == f"{back}\n\n{hello}\n\n{back}\n\nVälkommen!"
    assert message.subject == "Meddelande till invånare"
    staff = catalogue.staff("SE2321000016-S101")
    unit = catalogue.unit(CLINIC)
    assert unit is not None
    assert message.signature == f"{staff.name}, {staff.title}\n{unit.name}"
    assert message.sent_on == today


def test_composition_signs_with_the_clinic_name_when_the_sender_chose_so() -> None:
    (decision,) = composition.handle(
        [validated()], InMemoryTemplateLibrary(), PinnedCatalogue("clinic"), dt.date.today(), 10_000
    )
    assert isinstance(decision, Advance)
    unit = SimulatedStaffCatalogue(SEED).unit(CLINIC)
    assert unit is not None
    assert decision.next_item.signature == unit.name  # type: ignore[union-attr]


def test_composition_rejects_what_it_cannot_compose() -> None:
    items = [
        validated(case_id="a", template_id="finns-inte"),
        validated(case_id="b", template_id="gammal-kallelse"),
        validated(case_id="c", fragments=["saknas"]),
        validated(case_id="d", free_text="x" * 200),
    ]
    decisions = composition.handle(
        items, InMemoryTemplateLibrary(), SimulatedStaffCatalogue(SEED), dt.date.today(), 150
    )
    assert [d.reason for d in decisions if isinstance(d, Reject)] == [
        "template-unknown",
        "template-inactive",
        "fragment-unknown",
        "body-too-long",
    ]


def composed(attachments: list[AttachmentRef]) -> MessageComposedV1:
    return MessageComposedV1(
        case_id="c1",
        clinic_hsa_id=CLINIC,
        personnummer="191212121212",
        template_id="t",
        template_version=1,
        answerable=False,
        subject="s",
        body="b",
        signature="x",
        sent_on=dt.date.today(),
        channels=["sms"],
        attachments=attachments,
    )


def test_attachments_are_identified_by_content_not_name() -> None:
    from producers import attachment_samples
    from workers.attachments.checker import inspect
    from workers.attachments.limits import Limits
    from workers.attachments.scanner import SimulatedVirusScanner

    files = (attachment_samples.png(8, 8), attachment_samples.docx())
    verdicts = {v.sha256: v for v in (inspect(f, Limits(), SimulatedVirusScanner()) for f in files)}
    png, word = (
        AttachmentRef(sha256=v.sha256, filename=name, size=v.size)
        for v, name in zip(verdicts.values(), ("bild.png", "brev.pdf"), strict=True)
    )
    missing = AttachmentRef(sha256="b" * 64, filename="borta.pdf", size=1)
    decisions = attachment_check.handle(
        [composed([png]), composed([png, word]), composed([missing])], verdicts, Limits()
    )
    assert isinstance(decisions[0], Advance)
    assert decisions[0].next_item.attachments[0].type == "png"  # type: ignore[union-attr]
    assert [d.reason for d in decisions[1:] if isinstance(d, Reject)] == [
        "attachment-type-not-allowed",
        "attachment-missing",
    ]


def test_the_earliest_read_event_is_the_first_read() -> None:
    early = dt.datetime(2026, 11, 25, 8, tzinfo=dt.UTC)
    late = early + dt.timedelta(hours=2)
    decisions = read_receipts.handle(
        [
            ReadReceiptV1(case_id="a", event="opened", occurred_at=late),
            ReadReceiptV1(case_id="a", event="opened", occurred_at=early),
        ]
    )
    (decision,) = decisions
    assert isinstance(decision, Advance)
    (transition,) = decision.transitions
    assert transition.state == CaseState.READ
    assert transition.values["read_at"] == early
