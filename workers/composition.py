"""Stage 2, message composition: template + fragments + free text + signature + date.

Consumes ``RecipientValidated``; emits ``MessageComposed`` or rejects the case.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.message_composed import MessageComposedV1
from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import Parsed
from workers.adapters.staff_catalogue import StaffCatalogue
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.reasons import Reason
from workers.stage import Advance, Decision, Reject, settle
from workers.store.cases import Transition
from workers.templates.library import TemplateLibrary
from workers.templates.model import Template

STAGE = "composition"

_FIELD = re.compile(r"\{\{\s*([a-z][a-z0-9_]{0,39})\s*\}\}")


class CompositionError(ValueError):
    """The case cannot be composed; ``reason`` is a stable reason code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Composed:
    """A message exactly as the resident will read it."""

    subject: str
    body: str
    signature: str
    sent_on: dt.date
    template_version: int
    answerable: bool


def substitute(text: str, fields: dict[str, str]) -> str:
    """Replace ``{{ name }}`` with the case's field values, as plain text: no code runs and a
    value is never itself searched for fields. An unknown field is left as it stands."""
    return _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), text)


def signature_for(sender_hsa_id: str, clinic_hsa_id: str, catalogue: StaffCatalogue) -> str:
    """The sender's name and title from HSA, or the clinic's name if the sender signs so."""
    unit = catalogue.unit(clinic_hsa_id)
    clinic_name = unit.name if unit else clinic_hsa_id
    staff = catalogue.staff(sender_hsa_id)
    if staff is None or staff.signature == "clinic":
        return clinic_name
    return f"{staff.name}, {staff.title}\n{clinic_name}"


def compose(
    item: RecipientValidatedV1,
    template: Template | None,
    catalogue: StaffCatalogue,
    today: dt.date,
    max_body_chars: int,
) -> Composed:
    """Compose one message.

    Raises
    ------
    CompositionError
        Unknown, inactive or another clinic's template; unknown fragment; body too long.
    """
    if template is None or not template.usable_by(item.clinic_hsa_id):
        raise CompositionError(Reason.TEMPLATE_UNKNOWN, f"no template {item.template_id!r}")
    if not template.active:
        raise CompositionError(Reason.TEMPLATE_INACTIVE, f"{template.id} is not active")
    parts = [template.text] if template.text else []
    for name in item.fragments:
        fragment = template.fragments.get(name)
        if fragment is None:
            raise CompositionError(Reason.FRAGMENT_UNKNOWN, f"{template.id} has no {name!r}")
        parts.append(fragment)
    parts = [substitute(part, item.fields) for part in parts]
    if item.free_text:
        parts.append(item.free_text.strip())
    body = "\n\n".join(part for part in parts if part)
    if len(body) > max_body_chars:
        raise CompositionError(
            Reason.BODY_TOO_LONG, f"{len(body)} characters, limit {max_body_chars}"
        )
    return Composed(
        subject=template.name,
        body=body,
        signature=signature_for(item.sender_hsa_id, item.clinic_hsa_id, catalogue),
        sent_on=today,
        template_version=template.version,
        answerable=template.answerable,
    )


def handle(
    items: Sequence[RecipientValidatedV1],
    templates: TemplateLibrary,
    catalogue: StaffCatalogue,
    today: dt.date,
    max_body_chars: int,
) -> list[Decision]:
    """Compose every case of the chunk, or say why not."""
    decisions: list[Decision] = []
    for item in items:
        try:
            composed = compose(
                item, templates.get(item.template_id), catalogue, today, max_body_chars
            )
        except CompositionError as exc:
            decisions.append(Reject(item.case_id, exc.reason, exc.detail))
            continue
        decisions.append(
            Advance(
                item.case_id,
                (
                    Transition(
                        item.case_id,
                        CaseState.COMPOSED,
                        {
                            "template_version": composed.template_version,
                            "subject": composed.subject[:200],
                        },
                    ),
                ),
                MessageComposedV1(
                    case_id=item.case_id,
                    clinic_hsa_id=item.clinic_hsa_id,
                    priority=item.priority,
                    batch_id=item.batch_id,
                    personnummer=item.personnummer,
                    template_id=item.template_id,
                    template_version=composed.template_version,
                    answerable=composed.answerable,
                    subject=composed.subject,
                    body=composed.body,
                    signature=composed.signature,
                    sent_on=composed.sent_on,
                    channels=list(item.channels),
                    attachments=list(item.attachments),
                ),
            )
        )
    return decisions


def process(parsed: Parsed, ctx: Context) -> None:
    """Compose the chunk, record it, emit onward."""
    items = [item for item in parsed.items if isinstance(item, RecipientValidatedV1)]
    decisions = handle(
        items, ctx.templates, ctx.catalogue, ctx.today(), ctx.settings.max_body_chars
    )
    settle(ctx, stage=STAGE, decisions=decisions, correlation_id=parsed.envelope.correlation_id)
