"""A case being written in the console, step by step (the seed's "Skicka ärende").

Choose a template; add residents (each checked at once with the pipeline's recipient check,
``recipient_validation.check_recipients``, so the verdict and its reason are the pipeline's);
plus in phrase fragments in any order, add free text and field values; attach files (checked
on upload with the attachment stage's ``check_file``; refused files are not kept); preview
with the composition stage's ``compose``; send as ``SendCase`` records on the intake queue.

The draft lives in ``send_drafts`` (its residents, texts and checked attachments), belongs to
the user and clinic that began it, and is gone once sent. Sending it twice sends nothing new:
each resident's case has the idempotency key ``web:<draft>:<personnummer>``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from contracts.common import AttachmentRef
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from producers.web.explained import words_for
from producers.web.i18n import gettext as _
from producers.web.i18n import translate
from producers.web.services import Console
from producers.web.wording import reason_text
from workers.adapters.account_directory import DirectoryUnavailable
from workers.attachments import ownership
from workers.attachments.checker import check_file
from workers.attachments.scanner import ScannerUnavailable
from workers.composition import Composed, CompositionError, compose
from workers.enqueue import push_chunk
from workers.queues import queue_name
from workers.recipient_validation import check_recipients
from workers.routes import ROUTES, lane_for
from workers.store.cases import utcnow
from workers.store.schema import send_drafts
from workers.templates import store as template_store
from workers.templates.model import FIELD_PATTERN, Template

_SEPARATORS = re.compile(r"[\s,;]+")
MAX_RESIDENTS = 100
"""Residents one draft may name (larger sends are dispatches: ``omvant dispatch``)."""


class DraftNotFound(LookupError):
    """No such draft for this user and clinic."""


class DraftRefused(ValueError):
    """The step cannot be done; ``message`` says why, for the sender."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass
class Resident:
    """One resident added to the draft, with the recipient check's verdict."""

    input: str
    normalized: str | None
    reachable: bool
    channels: list[str] = field(default_factory=list)
    reason: str | None = None
    detail: str | None = None


@dataclass
class Attached:
    """A file that passed the attachment check on upload, stored by sha256."""

    sha256: str
    filename: str
    declared_type: str
    size: int
    type: str | None
    pages: int | None = None


@dataclass
class Refusal:
    """A file the check refused on upload: not stored, its reason shown."""

    filename: str
    reason: str
    detail: str


@dataclass
class Draft:
    """The draft's content (``send_drafts.content``)."""

    id: str
    user_id: int
    clinic_hsa_id: str
    sender_hsa_id: str
    template_id: str
    residents: list[Resident] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    free_text: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    attachments: list[Attached] = field(default_factory=list)
    urgent: bool = False

    def content(self) -> str:
        """The JSON kept in ``send_drafts.content``."""
        data = asdict(self)
        for key in ("id", "user_id", "clinic_hsa_id", "template_id"):
            data.pop(key)
        return json.dumps(data, ensure_ascii=False)


@dataclass(frozen=True)
class ComposerInput:
    """What ``compose`` takes from a draft (its ``Draft`` protocol)."""

    clinic_hsa_id: str
    sender_hsa_id: str
    template_id: str
    fragments: tuple[str, ...]
    free_text: str | None
    fields: Mapping[str, str]


def _from_row(row: Any) -> Draft:
    data = json.loads(row.content)
    return Draft(
        id=row.id,
        user_id=row.user_id,
        clinic_hsa_id=row.clinic_hsa_id,
        template_id=row.template_id,
        sender_hsa_id=data["sender_hsa_id"],
        residents=[Resident(**r) for r in data.get("residents", [])],
        fragments=list(data.get("fragments", [])),
        free_text=data.get("free_text", ""),
        fields=dict(data.get("fields", {})),
        attachments=[Attached(**a) for a in data.get("attachments", [])],
        urgent=bool(data.get("urgent", False)),
    )


def sendable_templates(
    conn: sa.Connection, clinic_hsa_id: str, query: str | None
) -> list[Template]:
    """The active templates the clinic can send with (its own and the shared ones)."""
    found = template_store.listing(
        conn, clinic_hsa_id=clinic_hsa_id, query=query, include_inactive=False
    )
    return sorted(found, key=lambda t: (t.scope != "local", t.name.casefold()))


def begin(
    conn: sa.Connection, *, user_id: int, clinic_hsa_id: str, sender_hsa_id: str, template_id: str
) -> Draft:
    """Start a draft with a template the clinic may send with.

    Raises
    ------
    DraftRefused
        The template is unknown to the clinic or not active.
    """
    try:
        template = template_store.visible(conn, template_id, clinic_hsa_id)
    except template_store.TemplateNotFound:
        raise DraftRefused(_("Välj en mall i listan."), "template-unknown") from None
    if not template.active:
        raise DraftRefused(
            _("Mallen %(name)s är inte aktiverad.", name=template.name), "template-inactive"
        )
    draft = Draft(
        id=secrets.token_hex(16),
        user_id=user_id,
        clinic_hsa_id=clinic_hsa_id,
        sender_hsa_id=sender_hsa_id,
        template_id=template_id,
    )
    now = utcnow()
    conn.execute(
        send_drafts.insert().values(
            id=draft.id,
            user_id=user_id,
            clinic_hsa_id=clinic_hsa_id,
            template_id=template_id,
            content=draft.content(),
            created_at=now,
            updated_at=now,
        )
    )
    return draft


def load(conn: sa.Connection, draft_id: str, *, user_id: int, clinic_hsa_id: str) -> Draft:
    """The user's draft for the clinic.

    Raises
    ------
    DraftNotFound
        No such draft, or another user's or clinic's.
    """
    row = conn.execute(
        sa.select(send_drafts).where(
            send_drafts.c.id == draft_id[:32],
            send_drafts.c.user_id == user_id,
            send_drafts.c.clinic_hsa_id == clinic_hsa_id,
        )
    ).first()
    if row is None:
        raise DraftNotFound(draft_id)
    return _from_row(row)


def save(conn: sa.Connection, draft: Draft) -> None:
    """Keep the draft's content."""
    conn.execute(
        sa.update(send_drafts)
        .where(send_drafts.c.id == draft.id)
        .values(content=draft.content(), updated_at=utcnow())
    )


def template_of(conn: sa.Connection, draft: Draft) -> Template:
    """The draft's template as it is now (current version and activation).

    Raises
    ------
    DraftRefused
        It is no longer visible to the clinic.
    """
    try:
        return template_store.visible(conn, draft.template_id, draft.clinic_hsa_id)
    except template_store.TemplateNotFound:
        raise DraftRefused(_("Mallen finns inte längre."), "template-unknown") from None


def add_residents(draft: Draft, text: str, services: Console) -> list[Resident]:
    """Check and add the numbers in ``text`` (one or several, separated by blanks, commas or
    lines); a resident already added is not added again. Returns the new ones.

    Raises
    ------
    DraftRefused
        No number given, too many, or the account directory cannot answer now.
    """
    numbers = [n for n in _SEPARATORS.split(text.strip()) if n]
    if not numbers:
        raise DraftRefused(_("Skriv invånarens personnummer (ÅÅÅÅMMDD-NNNN)."))
    if len(draft.residents) + len(numbers) > MAX_RESIDENTS:
        raise DraftRefused(
            _(
                "Högst %(n)s mottagare per ärende; större utskick görs som utskick "
                "(omvant dispatch).",
                n=MAX_RESIDENTS,
            )
        )
    try:
        checks = check_recipients(numbers, services.directory)
    except DirectoryUnavailable:
        raise DraftRefused(
            _("Kontokatalogen på 1177 svarar inte just nu; försök igen om en stund.")
        ) from None
    known = {r.normalized for r in draft.residents if r.normalized}
    added: list[Resident] = []
    for check in checks:
        if check.normalized and check.normalized in known:
            continue
        resident = Resident(
            input=check.input,
            normalized=check.normalized,
            reachable=check.reachable,
            channels=list(check.channels),
            reason=check.reason.value if check.reason else None,
            detail=check.detail,
        )
        added.append(resident)
        if check.normalized:
            known.add(check.normalized)
    draft.residents.extend(added)
    return added


def remove_resident(draft: Draft, index: int) -> None:
    """Take the resident at ``index`` off the draft."""
    if 0 <= index < len(draft.residents):
        del draft.residents[index]


def plus_in(draft: Draft, template: Template, name: str) -> None:
    """Plus in one of the template's fragments, after those already in (repeats allowed).

    Raises
    ------
    DraftRefused
        The template has no such fragment (``fragment-unknown``).
    """
    if name not in template.fragments:
        raise DraftRefused(_("Mallen har ingen fras %(name)r.", name=name[:80]), "fragment-unknown")
    draft.fragments.append(name)


def move_fragment(draft: Draft, index: int, step: int) -> None:
    """Move the plussed-in fragment at ``index`` up (-1) or down (+1)."""
    target = index + step
    if 0 <= index < len(draft.fragments) and 0 <= target < len(draft.fragments):
        items = draft.fragments
        items[index], items[target] = items[target], items[index]


def remove_fragment(draft: Draft, index: int) -> None:
    """Take the plussed-in fragment at ``index`` out."""
    if 0 <= index < len(draft.fragments):
        del draft.fragments[index]


def fields_used(draft: Draft, template: Template) -> list[str]:
    """The personalisation fields the template's text and the chosen fragments use."""
    texts = [template.text, *(template.fragments.get(n, "") for n in draft.fragments)]
    names: dict[str, None] = {}
    for text in texts:
        for match in FIELD_PATTERN.finditer(text):
            names[match.group(1)] = None
    return list(names)


def attach(
    draft: Draft, services: Console, *, filename: str, declared_type: str, data: bytes
) -> Attached | Refusal:
    """Check one uploaded file as the attachment stage would; store it if it passes.

    Raises
    ------
    DraftRefused
        The message has as many files as it may, or the virus scanner cannot answer now.
    """
    limits = services.limits
    if len(draft.attachments) >= limits.max_files:
        raise DraftRefused(
            _("Högst %(n)s bilagor per meddelande.", n=limits.max_files), "too-many-attachments"
        )
    name = (filename or "bilaga").replace("\\", "/").rsplit("/", 1)[-1][:255] or "bilaga"
    if len(data) > limits.max_bytes:
        return Refusal(
            name,
            "attachment-too-large",
            _("över gränsen på %(n)s byte", n=f"{limits.max_bytes:,}".replace(",", " ")),
        )
    try:
        verdict = check_file(
            data,
            filename=name,
            declared_type=declared_type or "application/octet-stream",
            limits=limits,
            scanner=services.scanner,
        )
    except ScannerUnavailable:
        raise DraftRefused(
            _("Virusskanningen svarar inte just nu; försök bifoga filen igen om en stund.")
        ) from None
    if not verdict.ok:
        return Refusal(name, verdict.reason.value if verdict.reason else "", verdict.detail or "")
    stored = services.blobs.put(data)
    with services.begin() as conn:
        ownership.record_owner(conn, stored, draft.clinic_hsa_id)  # the clinic's own file
    attached = Attached(
        sha256=stored,
        filename=name,
        declared_type=(declared_type or "application/octet-stream")[:127],
        size=len(data),
        type=verdict.type,
        pages=verdict.pages,
    )
    draft.attachments.append(attached)
    return attached


def remove_attachment(draft: Draft, index: int) -> None:
    """Take the attached file at ``index`` off the draft."""
    if 0 <= index < len(draft.attachments):
        del draft.attachments[index]


def composer_input(draft: Draft) -> ComposerInput:
    """The draft as the composition stage reads a case."""
    return ComposerInput(
        clinic_hsa_id=draft.clinic_hsa_id,
        sender_hsa_id=draft.sender_hsa_id,
        template_id=draft.template_id,
        fragments=tuple(draft.fragments),
        free_text=draft.free_text or None,
        fields=dict(draft.fields),
    )


def preview(draft: Draft, template: Template, services: Console) -> Composed:
    """Exactly what the resident will receive: the composition stage's own ``compose``.

    Raises
    ------
    CompositionError
        What the stage would reject the case for (inactive template, missing field ...).
    """
    reachable = [r for r in draft.residents if r.reachable]
    channels = tuple(reachable[0].channels) if reachable else ("sms", "email")
    return compose(
        composer_input(draft),
        template,
        services.catalogue,
        today=services.today(),
        max_body_chars=services.settings.max_body_chars,
        channels=channels,  # type: ignore[arg-type]
    )


def send_requests(draft: Draft) -> list[SendCaseV2]:
    """One ``SendCase`` per reachable resident of the draft."""
    refs = [
        AttachmentRef(
            sha256=a.sha256, filename=a.filename, declared_type=a.declared_type, size=a.size
        )
        for a in draft.attachments
    ]
    return [
        SendCaseV2(
            clinic_hsa_id=draft.clinic_hsa_id,
            sender_hsa_id=draft.sender_hsa_id,
            template_id=draft.template_id,
            fragments=list(draft.fragments),
            free_text=draft.free_text or None,
            fields=dict(draft.fields),
            personnummer=r.normalized or r.input,
            attachments=refs,
            priority="urgent" if draft.urgent else "normal",
            idempotency_key=f"web:{draft.id}:{r.normalized}",
        )
        for r in draft.residents
        if r.reachable
    ]


def send(conn: sa.Connection, draft: Draft, template: Template, services: Console) -> list[str]:
    """Send the draft: every resident reachable, the message composes; returns the case ids.

    Raises
    ------
    DraftRefused
        No resident, a resident who cannot be reached (remove them first), or a message the
        composition stage would reject (with its reason).
    """
    if not draft.residents:
        raise DraftRefused(_("Lägg till minst en mottagare."))
    unreachable = [r for r in draft.residents if not r.reachable]
    if unreachable:
        raise DraftRefused(
            _(
                "Någon av mottagarna kan inte nås via 1177. "
                "Ta bort dem som inte kan nås innan du skickar."
            ),
            unreachable[0].reason,
        )
    try:
        preview(draft, template, services)
    except CompositionError as exc:
        why = words_for(exc.detail) or translate(reason_text(exc.reason.value))
        raise DraftRefused(
            _("Meddelandet kan inte skickas: %(why)s", why=why), exc.reason.value
        ) from None
    requests = send_requests(draft)
    broker = services.send_broker()
    for priority in {r.priority for r in requests}:
        queue, _actor = ROUTES[SEND_CASE].lane(lane_for(priority, None))
        broker.declare_queue(queue_name(queue, services.settings.queue_prefix))
    push_chunk(
        broker,
        requests,
        correlation_id=f"web-{draft.id}",
        prefix=services.settings.queue_prefix,
    )
    conn.execute(sa.delete(send_drafts).where(send_drafts.c.id == draft.id))
    return [r.resolved_case_id() for r in requests]


def discard(conn: sa.Connection, draft: Draft) -> None:
    """Throw the draft away."""
    conn.execute(sa.delete(send_drafts).where(send_drafts.c.id == draft.id))
