"""``omvant templates ...``: the local administrator's and the national editor's tools.

List and search, show, adopt a national or regional template into a clinic, create, edit (a
new version), activate, deactivate, import and export YAML or JSON files, preview exactly what
a resident would receive, and benchmark composition. ``--clinic HSA-ID`` acts as that clinic:
it sees national, regional and its own local templates, and may change only its own.

Exit status: 0 done, 1 refused (invalid template, unknown template, conflict), 2 usage error.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer

from producers.cli import errors
from producers.cli.options import DatabaseOption, JsonOption, settings_from
from workers import server_probe as servers
from workers.reasons import Reason
from workers.templates import store
from workers.templates.files import format_of, parse_templates, render_templates
from workers.templates.model import Template, TemplateInvalid

app = typer.Typer(
    help="Message templates: list, adopt, edit, activate, preview.", no_args_is_help=True
)

ClinicOption = Annotated[
    str | None,
    typer.Option("--clinic", help="Act as this clinic (HSA-id): its own and shared templates."),
]
VersionOption = Annotated[int | None, typer.Option("--version", min=1, help="A given version.")]


def fail(message: str, code: int = 1, reason: str = Reason.USAGE_ERROR) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``; under ``--json`` the one
    ``{"error": ...}`` object with ``reason`` (a message that begins with its code, as the
    template store's ``template-unknown: ...`` do, gives it without)."""
    if errors.json_asked():
        errors.fail(reason, message.removeprefix(f"{reason}: "), code)
    typer.echo(f"omvant: {message}", err=True)  # as every command says its refusals
    raise typer.Exit(code)


def refuse(reason: str, message: str, code: int, *, as_json: bool) -> NoReturn:
    """Refuse with ``reason``: under --json the one ``{"error": ...}`` line, else as ``fail``."""
    if as_json:
        errors.fail(reason, message, code, as_json=True)
    fail(message if reason == Reason.USAGE_ERROR else f"{reason}: {message}", code, reason)


def reason_of(error: Exception) -> str:
    """The reason code of the template store's refusal ``error``."""
    if isinstance(error, store.TemplateNotFound):
        return Reason.TEMPLATE_UNKNOWN
    if isinstance(error, store.TemplateNotChangeable):
        return Reason.TEMPLATE_NOT_CHANGEABLE
    if isinstance(error, store.TemplateConflict):
        return Reason.TEMPLATE_CONFLICT
    return Reason.USAGE_ERROR


def refuse_store(error: Exception, code: int = 1) -> NoReturn:
    """Refuse with what the template store said, and its reason code."""
    fail(str(error), code, reason_of(error))


@contextmanager
def opened(database: str | None) -> Iterator[sa.Engine]:
    """The system of record (its schema up to date), with the starter library seeded."""
    from workers.store.engine import check_schema, make_engine
    from workers.templates.library import starter_templates

    settings = settings_from(None, database, require=(servers.DATABASE,), existing_database=True)
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        with engine.begin() as conn:
            store.seed(conn, starter_templates())
        yield engine
    finally:
        engine.dispose()


def _visible(
    conn: sa.Connection, template_id: str, clinic: str | None, version: int | None = None
) -> Template:
    try:
        return store.visible(conn, template_id, clinic, version)
    except store.TemplateNotFound as exc:
        refuse_store(exc)


def _changeable(conn: sa.Connection, template_id: str, clinic: str | None) -> Template:
    try:
        return store.changeable(conn, template_id, clinic)
    except (store.TemplateNotFound, store.TemplateNotChangeable) as exc:
        refuse_store(exc)


def _summary(template: Template) -> dict[str, Any]:
    return {
        "id": template.id,
        "version": template.version,
        "name": template.name,
        "kind": template.kind,
        "scope": template.scope,
        "owner": template.owner,
        "template_type": template.template_type,
        "active": template.active,
    }


def _print_list(templates: Sequence[Template], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([_summary(t) for t in templates], ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("id", "v", "scope", "owner", "kind", "active", "name"):
        table.add_column(column)
    for t in templates:
        table.add_row(
            t.id, str(t.version), t.scope, t.owner, t.kind, "yes" if t.active else "no", t.name
        )
    Console(width=200).print(table)


@app.command("list")
def list_templates(
    clinic: ClinicOption = None,
    search: Annotated[str | None, typer.Option("--search", "-s", help="Text to look for.")] = None,
    active_only: Annotated[bool, typer.Option("--active-only", help="Only active ones.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List templates: national, regional and, with --clinic, the clinic's own (all without)."""
    with opened(database) as engine, engine.connect() as conn:
        found = store.listing(
            conn, clinic_hsa_id=clinic, query=search, include_inactive=not active_only
        )
    _print_list(found, as_json)


@app.command("search")
def search_templates(
    text: Annotated[str, typer.Argument(help="Words in the name, type or text.")],
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the templates a clinic can use (all without --clinic) by name, type or text."""
    with opened(database) as engine, engine.connect() as conn:
        found = store.listing(conn, clinic_hsa_id=clinic, query=text)
    _print_list(found, as_json)


@app.command("show")
def show(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    version: VersionOption = None,
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one template (the current version, or --version N) and its version history."""
    with opened(database) as engine, engine.connect() as conn:
        template = _visible(conn, template_id, clinic, version)
        versions = store.history(conn, template_id)
    data = template.definition()
    data["created_at"] = template.created_at.isoformat() if template.created_at else None
    data["versions"] = history_rows = [
        {
            "version": v.version,
            "name": v.name,
            "created_at": v.created_at.isoformat() if v.created_at else None,
        }
        for v in versions
    ]
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    typer.echo(render_templates([template]).rstrip())
    typer.echo(
        "versions: " + ", ".join(f"{v['version']} ({v['created_at']})" for v in history_rows)
    )


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or ():
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            fail(f"{what} must be NAME=TEXT, not {value!r}", 2)
        pairs[name.strip()] = text
    return pairs


@dataclass
class Changes:
    """The template fields given on the command line (unset ones stay as they are)."""

    values: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self.values[key] = value


NameOption = Annotated[str | None, typer.Option("--name", help="Case type = inbox subject.")]
InstructionOption = Annotated[
    str | None, typer.Option("--instruction", help='To the case handler ("." if none).')
]
TypeOption = Annotated[str | None, typer.Option("--type", help="Template type.")]
TextOption = Annotated[str | None, typer.Option("--text", help="The information text.")]
FragmentOption = Annotated[
    list[str] | None, typer.Option("--fragment", help="A phrase fragment NAME=TEXT (repeatable).")
]
QuestionOption = Annotated[
    list[str] | None, typer.Option("--question", help="A question (repeatable; replaces all).")
]
AnswerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--answer-option",
        help="KIND=LABEL, KIND one of answer, partial-answer, counter-question (repeatable).",
    ),
]
NotifyOption = Annotated[
    str | None,
    typer.Option(
        "--resident-channels",
        help="Notify residents on sms, email or both only; 'all' for every channel they have.",
    ),
]
AnswerAlertOption = Annotated[
    str | None,
    typer.Option(
        "--answer-alert",
        help="Alert the clinic of answers: none, email (with --answer-mailbox), or default "
        "(the clinic's setting).",
    ),
]
MailboxOption = Annotated[
    str | None, typer.Option("--answer-mailbox", help="Functional mailbox for answer alerts.")
]
UnreadAfterOption = Annotated[
    int | None,
    typer.Option("--unread-after", min=0, help="Follow up unread after N hours (0: never)."),
]
UnreadActionOption = Annotated[
    str | None, typer.Option("--unread-action", help="notify-again or flag.")
]
ContactOption = Annotated[str | None, typer.Option("--contact", help="Contact information.")]
ContactCardOption = Annotated[
    str | None, typer.Option("--contact-card", help="https:// link to the clinic's contact card.")
]
ActivateOption = Annotated[bool, typer.Option("--activate", help="Activate it now.")]


def _changes(
    base: Template | None,
    *,
    name: str | None,
    instruction: str | None,
    template_type: str | None,
    text: str | None,
    fragments: Sequence[str] | None,
    remove_fragments: Sequence[str] | None = None,
    questions: Sequence[str] | None,
    answer_options: Sequence[str] | None,
    notify: str | None,
    answer_alert: str | None,
    answer_mailbox: str | None,
    unread_after: int | None,
    unread_action: str | None,
    contact: str | None,
    contact_card: str | None,
) -> dict[str, Any]:
    changes = Changes()
    changes.set("name", name)
    changes.set("instruction", instruction)
    changes.set("template_type", template_type)
    changes.set("text", text)
    changes.set("contact", contact)
    if contact_card is not None:
        changes.values["contact_card_url"] = contact_card or None
    if fragments or remove_fragments:
        merged = dict(base.fragments) if base else {}
        merged.update(_pairs(fragments, "--fragment"))
        for gone in remove_fragments or ():
            if gone not in merged:
                fail(
                    f"fragment-unknown: no fragment {gone!r} to remove", 1, Reason.FRAGMENT_UNKNOWN
                )
            del merged[gone]
        changes.values["fragments"] = merged
    if questions:
        changes.values["questions"] = list(questions)
    if answer_options:
        options: dict[str, str] = {o.kind: o.label for o in base.answer_options} if base else {}
        options.update(_pairs(answer_options, "--answer-option"))
        changes.values["answer_options"] = [{"kind": k, "label": v} for k, v in options.items()]
    if notify is not None:
        choices = {"sms": ["sms"], "email": ["email"], "both": ["sms", "email"]}
        if notify == "all":
            changes.values["resident_channels"] = None
        elif notify in choices:
            changes.values["resident_channels"] = {"channels": choices[notify]}
        else:
            fail("--resident-channels takes sms, email, both or all", 2)
    if answer_alert is not None or answer_mailbox is not None:
        chosen = answer_alert or ("email" if answer_mailbox else None)
        if chosen == "default":
            changes.values["notification"] = None
        elif chosen in ("none", "email"):
            changes.values["notification"] = {"alert": chosen, "mailbox": answer_mailbox}
        else:
            fail("--answer-alert takes none, email or default", 2)
    if unread_after is not None or unread_action is not None:
        if unread_after == 0:
            changes.values["unread_followup"] = None
        else:
            current = base.unread_followup if base else None
            changes.values["unread_followup"] = {
                "after_hours": unread_after or (current.after_hours if current else None),
                "action": unread_action or (current.action if current else "flag"),
            }
    return changes.values


def _refuse_invalid(exc: TemplateInvalid) -> NoReturn:
    lines = "\n".join(f"  - {problem}" for problem in exc.problems)
    where = f"template {exc.template_id!r}" if exc.template_id else "the template"
    fail(f"{where} is not valid:\n{lines}", 1, Reason.TEMPLATE_INVALID)


def _echo_saved(template: Template, verb: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_summary(template), ensure_ascii=False))
    else:
        state = "active" if template.active else "inactive"
        typer.echo(f"{verb} {template.id} version {template.version} ({state})")


@app.command("adopt")
def adopt(
    source: Annotated[str, typer.Argument(help="The national or regional template to take up.")],
    *,
    clinic: Annotated[str, typer.Option("--clinic", help="The clinic adopting it (HSA-id).")],
    new_id: Annotated[str | None, typer.Option("--id", help="Id of the clinic's copy.")] = None,
    name: NameOption = None,
    contact: ContactOption = None,
    contact_card: ContactCardOption = None,
    answer_options: AnswerOption = None,
    notify: NotifyOption = None,
    answer_alert: AnswerAlertOption = None,
    answer_mailbox: MailboxOption = None,
    activate: ActivateOption = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take up a national or regional template as the clinic's own copy to adapt.

    The copy is inactive until activated (here with --activate, or later).
    """
    with opened(database) as engine, engine.begin() as conn:
        original = _visible(conn, source, clinic)
        changes = _changes(
            original,
            name=name,
            instruction=None,
            template_type=None,
            text=None,
            fragments=None,
            questions=None,
            answer_options=answer_options,
            notify=notify,
            answer_alert=answer_alert,
            answer_mailbox=answer_mailbox,
            unread_after=None,
            unread_action=None,
            contact=contact,
            contact_card=contact_card,
        )
        changes["active"] = activate
        try:
            saved = store.adopt(conn, source, clinic, new_id=new_id, changes=changes)
        except TemplateInvalid as exc:
            _refuse_invalid(exc)
        except (store.TemplateConflict, store.TemplateNotFound) as exc:
            refuse_store(exc)
    _echo_saved(saved, f"adopted {source} as", as_json)


@app.command("create")
def create(
    template_id: Annotated[str, typer.Argument(help="Id of the new template (a-z, 0-9, .-_).")],
    *,
    kind: Annotated[str, typer.Option("--kind", help="information or questions.")] = "information",
    clinic: Annotated[
        str | None, typer.Option("--clinic", help="The clinic owning a local template.")
    ] = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="national or regional (needs --owner).")
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="HSA-id of the owner.")] = None,
    name: NameOption = None,
    instruction: InstructionOption = None,
    template_type: TypeOption = None,
    text: TextOption = None,
    fragments: FragmentOption = None,
    questions: QuestionOption = None,
    answer_options: AnswerOption = None,
    notify: NotifyOption = None,
    answer_alert: AnswerAlertOption = None,
    answer_mailbox: MailboxOption = None,
    unread_after: UnreadAfterOption = None,
    unread_action: UnreadActionOption = None,
    contact: ContactOption = None,
    contact_card: ContactCardOption = None,
    activate: ActivateOption = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a template: a clinic's local one (--clinic), or a national/regional one."""
    try:
        scope, owner = store.creator_scope(clinic, scope, owner)
    except ValueError as exc:
        fail(str(exc), 2)
    data: dict[str, Any] = {
        "id": template_id,
        "kind": kind,
        "scope": scope,
        "owner": owner,
        "active": activate,
        **_changes(
            None,
            name=name,
            instruction=instruction,
            template_type=template_type,
            text=text,
            fragments=fragments,
            questions=questions,
            answer_options=answer_options,
            notify=notify,
            answer_alert=answer_alert,
            answer_mailbox=answer_mailbox,
            unread_after=unread_after,
            unread_action=unread_action,
            contact=contact,
            contact_card=contact_card,
        ),
    }
    from workers.templates.model import validated

    try:
        template = validated(data)
    except TemplateInvalid as exc:
        _refuse_invalid(exc)
    with opened(database) as engine, engine.begin() as conn:
        try:
            saved = store.create(conn, template)
        except store.TemplateConflict as exc:
            refuse_store(exc)
    _echo_saved(saved, "created", as_json)


@app.command("edit")
def edit(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    *,
    clinic: ClinicOption = None,
    name: NameOption = None,
    instruction: InstructionOption = None,
    template_type: TypeOption = None,
    text: TextOption = None,
    fragments: FragmentOption = None,
    remove_fragments: Annotated[
        list[str] | None, typer.Option("--remove-fragment", help="Drop a fragment (repeatable).")
    ] = None,
    questions: QuestionOption = None,
    answer_options: AnswerOption = None,
    notify: NotifyOption = None,
    answer_alert: AnswerAlertOption = None,
    answer_mailbox: MailboxOption = None,
    unread_after: UnreadAfterOption = None,
    unread_action: UnreadActionOption = None,
    contact: ContactOption = None,
    contact_card: ContactCardOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a template: the change is a new version; cases in flight keep theirs."""
    with opened(database) as engine, engine.begin() as conn:
        current = _changeable(conn, template_id, clinic)
        changes = _changes(
            current,
            name=name,
            instruction=instruction,
            template_type=template_type,
            text=text,
            fragments=fragments,
            remove_fragments=remove_fragments,
            questions=questions,
            answer_options=answer_options,
            notify=notify,
            answer_alert=answer_alert,
            answer_mailbox=answer_mailbox,
            unread_after=unread_after,
            unread_action=unread_action,
            contact=contact,
            contact_card=contact_card,
        )
        if not changes:
            fail("nothing to change: give at least one option (see --help)", 2)
        try:
            saved = store.revise(conn, store.edited(current, changes))
        except TemplateInvalid as exc:
            _refuse_invalid(exc)
        except store.TemplateConflict as exc:
            refuse_store(exc)
    _echo_saved(saved, "saved", as_json)


def _set_active(template_id: str, clinic: str | None, database: str | None, active: bool) -> None:
    with opened(database) as engine, engine.begin() as conn:
        _changeable(conn, template_id, clinic)
        store.set_active(conn, template_id, active)
    typer.echo(f"{template_id} {'activated' if active else 'deactivated'}")


@app.command("activate")
def activate(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
) -> None:
    """Activate a template: staff can send with it."""
    _set_active(template_id, clinic, database, True)


@app.command("deactivate")
def deactivate(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
) -> None:
    """Deactivate a template: cases naming it are rejected (template-inactive)."""
    _set_active(template_id, clinic, database, False)


@app.command("export")
def export(
    template_ids: Annotated[
        list[str] | None, typer.Argument(help="Templates to export (default: all visible).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (.yaml/.yml or .json); stdout if none.")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="yaml or json (default: from --out).")
    ] = None,
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write templates (their current versions) to a YAML or JSON file."""
    chosen = file_format or (format_of(out) if out else "yaml")
    if chosen not in ("yaml", "json"):
        fail("--format takes yaml or json", 2)
    with opened(database) as engine, engine.connect() as conn:
        if template_ids:
            templates = [_visible(conn, t, clinic) for t in template_ids]
        else:
            templates = store.listing(conn, clinic_hsa_id=clinic)
    text = render_templates(templates, "json" if chosen == "json" else "yaml")
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", 2)
    typer.echo(f"wrote {len(templates)} templates to {out}")


@app.command("import")
def import_templates(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON file.")],
    clinic: ClinicOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update templates from a file: changed content becomes a new version.

    Nothing is stored unless every template in the file is valid.
    """
    try:
        templates = parse_templates(file.read_text(encoding="utf-8"), format_of(file))
    except TemplateInvalid as exc:
        _refuse_invalid(exc)
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text")
    try:
        store.check_importable(templates, clinic)
    except store.TemplateNotChangeable as exc:
        refuse_store(exc)
    results: list[dict[str, Any]] = []
    with opened(database) as engine, engine.begin() as conn:
        for template in templates:
            try:
                outcome, saved = store.store(conn, template)
            except store.TemplateConflict as exc:
                fail(f"{template.id}: {exc}", 1, reason_of(exc))
            results.append({**_summary(saved), "outcome": outcome})
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False))
        return
    for result in results:
        typer.echo(f"{result['outcome']}: {result['id']} version {result['version']}")


@dataclass(frozen=True)
class PreviewDraft:
    """A sender's choices on the command line (the ``Draft`` the composer takes)."""

    clinic_hsa_id: str
    sender_hsa_id: str
    template_id: str
    fragments: tuple[str, ...]
    free_text: str | None
    fields: Mapping[str, str]


@app.command("preview")
def preview(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    *,
    sender: Annotated[str, typer.Option("--sender", help="The sender's HSA-id (signature).")],
    fragments: Annotated[
        list[str] | None, typer.Option("--fragment", help="A fragment to plus in (in order).")
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="Free text to add.")] = None,
    fields: Annotated[
        list[str] | None, typer.Option("--field", help="A personalisation field NAME=VALUE.")
    ] = None,
    clinic: Annotated[
        str | None,
        typer.Option("--clinic", help="Sending clinic (default: the owner of a local template)."),
    ] = None,
    version: VersionOption = None,
    template_file: Annotated[
        Path | None,
        typer.Option("--file", exists=True, dir_okay=False, help="Preview from a template file."),
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show exactly what the resident would receive: subject, body, signature, date.

    Nothing is sent. The same composition as the worker's; --json prints the fields as they
    travel (HTML special characters escaped), the plain view shows them as the resident reads.
    """
    from dramatiq.brokers.stub import StubBroker

    from workers.bootstrap import build_context
    from workers.composition import CompositionError, compose
    from workers.hsa import is_hsa_id
    from workers.templates.library import InMemoryTemplateLibrary, TemplateLibrary

    if not is_hsa_id(sender):
        refuse(
            Reason.SENDER_UNKNOWN,
            f"--sender must be an HSA-id like SE2321000016-ABCD: {sender!r}",
            2,
            as_json=as_json,
        )
    settings = settings_from(None, database)
    library: TemplateLibrary
    if template_file is not None:
        try:
            library = InMemoryTemplateLibrary(
                parse_templates(template_file.read_text(encoding="utf-8"), format_of(template_file))
            )
        except TemplateInvalid as exc:
            _refuse_invalid(exc)
        ctx = build_context(settings, StubBroker())
        ctx.templates = library
        template = library.get(template_id, version)
    else:
        with opened(database):
            pass
        ctx = build_context(settings, StubBroker())
        template = ctx.templates.get(template_id, version)
    if clinic is None:
        if template is None or template.scope != "local":
            refuse(
                Reason.USAGE_ERROR,
                "give --clinic: the sending clinic signs the message",
                2,
                as_json=as_json,
            )
        clinic = template.owner
    draft = PreviewDraft(
        clinic_hsa_id=clinic,
        sender_hsa_id=sender,
        template_id=template_id,
        fragments=tuple(fragments or ()),
        free_text=text,
        fields=_pairs(fields, "--field"),
    )
    try:
        composed = compose(
            draft,
            template,
            ctx.catalogue,
            today=ctx.today(),
            max_body_chars=settings.max_body_chars,
            channels=("sms", "email"),
        )
    except CompositionError as exc:
        refuse(exc.reason, exc.detail, 1, as_json=as_json)
    finally:
        ctx.engine.dispose()
    assert template is not None
    result = {
        "template_id": template.id,
        "template_version": composed.template_version,
        "format": "text/plain, HTML special characters escaped",
        "subject": composed.subject,
        "body": composed.body,
        "signature": composed.signature,
        "date": composed.sent_on.isoformat(),
        "answerable": composed.answerable,
        "questions": list(template.questions),
        "answer_options": [o.model_dump() for o in template.answer_options],
        "notify_on": list(composed.channels),
    }
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"Ämne: {html.unescape(composed.subject)}")
    typer.echo(f"(mall {template.id} version {composed.template_version})")
    typer.echo("")
    typer.echo(html.unescape(composed.body))
    typer.echo("")
    typer.echo(html.unescape(composed.signature))
    typer.echo(composed.sent_on.isoformat())
    if template.questions:
        typer.echo("")
        typer.echo("Frågor:")
        for question in template.questions:
            typer.echo(f"  - {question}")
        typer.echo("Svarsalternativ: " + ", ".join(o.label for o in template.answer_options))


@app.command("bench")
def bench(
    messages: Annotated[
        int, typer.Option("--messages", min=100, help="Messages to compose per round.")
    ] = 50_000,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Rounds (median given).")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Composition throughput on one core for a typical template (target >= 20,000 msgs/s)."""
    from producers.template_bench import run_bench

    result = run_bench(messages, rounds)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"composition of {result['template']} ({result['fragments']} fragments, a field, free "
        f"text, signature, date), {result['messages']:,} messages x {result['rounds']} rounds:\n"
        f"  stage handle (contract records included): {result['messages_per_s']:,}/s median, "
        f"{result['messages_per_s_best']:,}/s best, {result['messages_per_cpu_s']:,} per CPU "
        f"second\n"
        f"  compose alone: {result['compose_only_per_s']:,}/s median\n"
        f"  target: {result['target_per_s']:,}/s on one core"
    )
