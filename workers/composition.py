"""Stage 2, message composition: template + fragments + free text + signature + date.

Consumes ``RecipientValidated``; emits ``MessageComposed`` (to the attachment check) or rejects
the case; a case without attachments is cleared here too and its ``AttachmentsCleared`` goes
straight to inbox delivery (``past_the_attachment_check``).

The message format
------------------
``subject``, ``body`` and ``signature`` are plain text with the HTML special characters
(``& < > " '``) escaped, lines separated by ``\\n``: an inbox may put them into a page as they
are, and a plain-text reader gets the text back with ``html.unescape``. The body is the
template's text, then the case's fragments in the order given (repeats allowed), then the
sender's free text, then the template's contact information and contact-card link, each
separated by a blank line. The signature and the date (Europe/Stockholm) travel beside it.

Personalisation fields ``{{ name }}`` are replaced in the template's text and fragments only,
in one pass, by the case's values as plain text: a value is never searched for fields again,
no expression syntax exists (``{% %}``, ``{0.__class__}`` and the like are just characters),
and no code runs. A value is one line. A field the chosen text uses but the case does not give
rejects the case rather than show the resident a placeholder.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts import recipient_validated
from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.common import Channel
from contracts.message_composed import MessageComposedV1
from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import Parsed
from workers.adapters.staff_catalogue import StaffCatalogue
from workers.answer_seal import AnswerSeal, answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, Reject, settle
from workers.store import case_notes
from workers.store.cases import Transition
from workers.store.engine import reads
from workers.templates.library import TemplateLibrary
from workers.templates.model import FIELD_PATTERN, Template

STAGE = ROUTES[recipient_validated.NAME].stage

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control and bidirectional-override characters: they hide or reorder text, so they go."""
_SPACES = re.compile(r"\s+")


class CompositionError(ValueError):
    """The case cannot be composed; ``reason`` is a stable reason code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Draft(Protocol):
    """What a sender chooses: the template, fragments, free text and field values."""

    @property
    def clinic_hsa_id(self) -> str: ...
    @property
    def sender_hsa_id(self) -> str: ...
    @property
    def template_id(self) -> str: ...
    @property
    def fragments(self) -> Sequence[str]: ...
    @property
    def free_text(self) -> str | None: ...
    @property
    def fields(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Composed:
    """A message exactly as the resident will receive it (see the module's format notes)."""

    subject: str
    body: str
    signature: str
    sent_on: dt.date
    template_version: int
    answerable: bool
    channels: tuple[Channel, ...]


@dataclass(frozen=True)
class Pin:
    """What the system of record knows of a case: when it arrived, and any pinned version."""

    received_at: dt.datetime | None
    template_version: int | None = None


def clean(text: str) -> str:
    """``text`` without control and bidirectional-override characters (line breaks stay)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def substitute(text: str, fields: Mapping[str, str], template_id: str = "") -> str:
    """Replace each ``{{ name }}`` in ``text`` by the field's value as one line of plain text.

    Raises
    ------
    CompositionError
        ``field-missing`` when ``text`` uses a field that ``fields`` does not give.
    """
    if "{{" not in text:
        return text

    def value(match: object) -> str:
        name = match.group(1)  # type: ignore[attr-defined]
        found = fields.get(name)
        if found is None:
            raise CompositionError(
                Reason.FIELD_MISSING, f"{template_id or 'the text'} uses the field {name!r}"
            )
        text = _SPACES.sub(" ", clean(str(found))).strip()
        if not text:
            raise CompositionError(
                Reason.FIELD_MISSING,
                f"{template_id or 'the text'} uses the field {name!r}, which is empty",
            )
        return text

    return FIELD_PATTERN.sub(value, text)


def signature_for(sender_hsa_id: str, clinic_hsa_id: str, catalogue: StaffCatalogue) -> str:
    """The sender's name and title from HSA (then the clinic's name), or only the clinic's
    name when the sender's signature setting says so.

    Raises
    ------
    CompositionError
        ``sender-unknown`` or ``clinic-unknown`` when the HSA catalogue does not know them.
    """
    unit = catalogue.unit(clinic_hsa_id)
    if unit is None:
        raise CompositionError(Reason.CLINIC_UNKNOWN, f"{clinic_hsa_id} is not in HSA")
    staff = catalogue.staff(sender_hsa_id)
    if staff is None:
        raise CompositionError(Reason.SENDER_UNKNOWN, f"{sender_hsa_id} is not in HSA")
    if staff.signature == "clinic":
        return unit.name
    return f"{staff.name}, {staff.title}\n{unit.name}"


def channels_for(resolved: Sequence[Channel], template: Template) -> tuple[Channel, ...]:
    """The resident's channels, narrowed by the template's ``resident_channels`` if it has them.

    Raises
    ------
    CompositionError
        ``template-channel-unavailable`` when the setting leaves none of the resident's.
    """
    if template.resident_channels is None:
        return tuple(resolved)
    allowed = template.resident_channels.channels
    chosen = tuple(channel for channel in resolved if channel in allowed)
    if resolved and not chosen:
        raise CompositionError(
            Reason.TEMPLATE_CHANNEL_UNAVAILABLE,
            f"{template.id} notifies by {'/'.join(allowed)} only; "
            f"the resident has {'/'.join(resolved)}",
        )
    return chosen


def body_of(draft: Draft, template: Template) -> str:
    """The body as the resident reads it, before escaping (see the module's format notes)."""
    fields = draft.fields
    parts: list[str] = []
    if template.text:
        parts.append(substitute(template.text, fields, template.id))
    for name in draft.fragments:
        fragment = template.fragments.get(name)
        if fragment is None:
            raise CompositionError(
                Reason.FRAGMENT_UNKNOWN, f"{template.id} has no fragment {name[:80]!r}"
            )
        parts.append(substitute(fragment, fields, template.id))
    if draft.free_text and draft.free_text.strip():
        parts.append(draft.free_text.strip())
    if template.contact:
        parts.append(template.contact)
    if template.contact_card_url:
        parts.append(f"Kontaktkort: {template.contact_card_url}")
    cleaned = (clean(part).strip() for part in parts)
    return "\n\n".join(part for part in cleaned if part)


def compose(
    draft: Draft,
    template: Template | None,
    catalogue: StaffCatalogue,
    *,
    today: dt.date,
    max_body_chars: int,
    channels: Sequence[Channel] = (),
    signature: str | None = None,
) -> Composed:
    """Compose one message: the one function the worker and ``omvant templates preview`` use.

    ``signature`` may be given when the caller has already looked it up for the sender.

    Raises
    ------
    CompositionError
        Unknown, inactive or another clinic's template; unknown fragment; missing field; body
        too long; unknown sender or clinic; no channel left by the template's setting.
    """
    if template is None or not template.usable_by(draft.clinic_hsa_id):
        raise CompositionError(Reason.TEMPLATE_UNKNOWN, f"no template {draft.template_id!r}")
    if not template.active:
        raise CompositionError(Reason.TEMPLATE_INACTIVE, f"{template.id} is not active")
    body = body_of(draft, template)
    if len(body) > max_body_chars:
        raise CompositionError(
            Reason.BODY_TOO_LONG, f"{len(body)} characters, limit {max_body_chars}"
        )
    chosen = channels_for(channels, template)
    if signature is None:
        signature = signature_for(draft.sender_hsa_id, draft.clinic_hsa_id, catalogue)
    return Composed(
        subject=html.escape(template.name),
        body=html.escape(body),
        signature=html.escape(signature),
        sent_on=today,
        template_version=template.version,
        answerable=template.answerable,
        channels=chosen,
    )


def pick_template(
    draft: Draft, templates: TemplateLibrary, pin: Pin | None = None
) -> Template | None:
    """The template version a case composes with: the one pinned on the case, else the one
    current when the case arrived, else the current one."""
    version = pin.template_version if pin else None
    if version is None and pin is not None and pin.received_at is not None:
        version = templates.version_at(draft.template_id, pin.received_at)
    return templates.get(draft.template_id, version)


def handle(
    items: Sequence[RecipientValidatedV1],
    templates: TemplateLibrary,
    catalogue: StaffCatalogue,
    today: dt.date,
    max_body_chars: int,
    *,
    pins: Mapping[str, Pin] | None = None,
) -> list[Decision]:
    """Compose every case of the chunk, or say why not."""
    decisions: list[Decision] = []
    signatures: dict[tuple[str, str], str | CompositionError] = {}
    for item in items:
        try:
            template = pick_template(item, templates, (pins or {}).get(item.case_id))
            key = (item.sender_hsa_id, item.clinic_hsa_id)
            signature = signatures.get(key)
            if signature is None:
                try:
                    signature = signature_for(key[0], key[1], catalogue)
                except CompositionError as exc:
                    signature = exc
                signatures[key] = signature
            composed = compose(
                item,
                template,
                catalogue,
                today=today,
                max_body_chars=max_body_chars,
                channels=item.channels,
                signature=signature if isinstance(signature, str) else None,
            )
        except CompositionError as exc:
            decisions.append(Reject(item.case_id, exc.reason, exc.detail))
            continue
        decisions.append(_advance(item, composed, template))
    return decisions


def _advance(item: RecipientValidatedV1, composed: Composed, template: Template | None) -> Advance:
    name = template.name if template else composed.subject
    return Advance(
        item.case_id,
        (
            Transition(
                item.case_id,
                CaseState.COMPOSED,
                {"template_version": composed.template_version, "subject": name[:200]},
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
            channels=list(composed.channels),
            attachments=list(item.attachments),
        ),
    )


def pins_of(ctx: Context, case_ids: Sequence[str]) -> dict[str, Pin]:
    """When each case arrived and which template version it is pinned to, if any: as the actor
    shell read them with its ownership check (``Context.chunk_cases``), else read now."""
    known = ctx.chunk_cases
    if known is not None and known.asked.issuperset(case_ids):
        found: Mapping[str, case_notes.Arrival] = known.arrivals
    else:
        with reads(ctx.engine).connect() as conn:
            found = case_notes.arrivals(conn, case_ids)
    return {case_id: Pin(*found[case_id]) for case_id in case_ids if case_id in found}


def with_sealed_content(decisions: list[Decision], seal: AnswerSeal) -> list[Decision]:
    """Keep what each composed case will show the resident, sealed (``cases show --content``)."""
    kept: list[Decision] = []
    for decision in decisions:
        message = decision.next_item if isinstance(decision, Advance) else None
        if not isinstance(message, MessageComposedV1) or not isinstance(decision, Advance):
            kept.append(decision)
            continue
        content = json.dumps(
            {  # what model_dump(mode="json", include=...) gives, without its cost per case
                "subject": message.subject,
                "body": message.body,
                "signature": message.signature,
                "sent_on": message.sent_on.isoformat(),
            },
            ensure_ascii=False,
        )
        first, *rest = decision.transitions
        sealed = Transition(
            first.case_id,
            first.state,
            {**first.values, "content": seal.seal(content)},
            first.reason,
            first.detail,
        )
        kept.append(Advance(decision.case_id, (sealed, *rest), decision.next_item))
    return kept


def process(parsed: Parsed, ctx: Context) -> None:
    """Compose the chunk with the template versions its cases are pinned to, record, emit."""
    items = [item for item in parsed.items if isinstance(item, RecipientValidatedV1)]
    decisions = handle(
        items,
        ctx.templates,
        ctx.catalogue,
        today=ctx.today(),
        max_body_chars=ctx.settings.max_body_chars,
        pins=pins_of(ctx, [item.case_id for item in items]),
    )
    decisions = with_sealed_content(decisions, answer_seal(ctx.settings))
    decisions = [past_the_attachment_check(d) for d in decisions]
    settle(ctx, stage=STAGE, decisions=decisions, correlation_id=parsed.envelope.correlation_id)


def past_the_attachment_check(decision: Decision) -> Decision:
    """A composed case without attachments is cleared here, in the same transaction, and goes
    to inbox delivery: the attachment check has nothing to check for it, and its decision
    would be this one (``cleared``, the same ``AttachmentsCleared``) at the cost of a stage's
    hop per chunk. Its content is sealed already (the sweep rebuilds it from there)."""
    if not isinstance(decision, Advance):
        return decision
    message = decision.next_item
    if not isinstance(message, MessageComposedV1) or message.attachments:
        return decision
    return Advance(
        decision.case_id,
        (*decision.transitions, Transition(decision.case_id, CaseState.CLEARED)),
        AttachmentsClearedV1(**message.model_dump(exclude={"attachments"})),
    )
