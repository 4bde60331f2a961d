"""Templates in the system of record: create, version, activate, adopt, list, seed.

Every edit inserts a new row in ``template_versions`` and moves ``templates.current_version``;
old versions are never changed, so a case can always be read with the version it was sent
with. Activation belongs to the template, not to a version.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from workers.store.schema import template_versions, templates
from workers.store.sql import aware_utc, insert_ignoring_conflicts
from workers.templates.model import Template, TemplateInvalid, validated

Outcome = Literal["created", "new-version", "unchanged"]


class TemplateNotFound(LookupError):
    """No such template (or, seen from a clinic, another clinic's local template)."""


class TemplateConflict(ValueError):
    """The change contradicts what is stored (an id taken, an owner that differs ...)."""


class TemplateNotChangeable(TemplateConflict):
    """A clinic asked to change a template that is not its own local one."""


@dataclass(frozen=True)
class Head:
    """What is true of a template now: its activation, current version, and when each
    version was made (to find the version current at a given time)."""

    template_id: str
    scope: str
    owner: str
    active: bool
    current_version: int
    created: tuple[tuple[int, dt.datetime], ...]

    def version_at(self, at: dt.datetime) -> int:
        """The version current at ``at``; the first one if ``at`` is earlier than all."""
        earlier = [version for version, made in self.created if made <= at]
        return max(earlier) if earlier else min(version for version, _ in self.created)


def utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


def _from_row(row: Any, head: Any) -> Template:
    data: dict[str, Any] = json.loads(row.content)
    data.update(
        id=row.template_id,
        version=row.version,
        scope=head.scope,
        owner=head.owner,
        active=bool(head.active),
        created_at=aware_utc(row.created_at),
    )
    return validated(data)


def head(conn: sa.Connection, template_id: str) -> Head | None:
    """The template's head, or None if there is no such template."""
    row = conn.execute(sa.select(templates).where(templates.c.id == template_id)).first()
    if row is None:
        return None
    made = conn.execute(
        sa.select(template_versions.c.version, template_versions.c.created_at)
        .where(template_versions.c.template_id == template_id)
        .order_by(template_versions.c.version)
    ).all()
    return Head(
        template_id=row.id,
        scope=row.scope,
        owner=row.owner,
        active=bool(row.active),
        current_version=row.current_version,
        created=tuple((v, aware_utc(at)) for v, at in made),
    )


def load(conn: sa.Connection, template_id: str, version: int | None = None) -> Template | None:
    """One version of a template (the current one by default), or None."""
    top = conn.execute(sa.select(templates).where(templates.c.id == template_id)).first()
    if top is None:
        return None
    wanted = top.current_version if version is None else version
    row = conn.execute(
        sa.select(template_versions).where(
            template_versions.c.template_id == template_id,
            template_versions.c.version == wanted,
        )
    ).first()
    return None if row is None else _from_row(row, top)


def history(conn: sa.Connection, template_id: str) -> list[Template]:
    """Every version of a template, oldest first."""
    top = conn.execute(sa.select(templates).where(templates.c.id == template_id)).first()
    if top is None:
        return []
    rows = conn.execute(
        sa.select(template_versions)
        .where(template_versions.c.template_id == template_id)
        .order_by(template_versions.c.version)
    )
    return [_from_row(row, top) for row in rows]


def visible_to(template: Template, clinic_hsa_id: str | None) -> bool:
    """Whether a clinic (or an administrator, ``None``) may see the template."""
    return clinic_hsa_id is None or template.usable_by(clinic_hsa_id)


def visible(
    conn: sa.Connection, template_id: str, clinic_hsa_id: str | None, version: int | None = None
) -> Template:
    """The template (the current version, or ``version``) as the clinic may see it: national,
    regional and its own local ones (every template for an administrator, ``None``).

    The one rule the CLI, the web console and the API apply.

    Raises
    ------
    TemplateNotFound
        No such template or version, or another clinic's local template (the same answer).
    """
    found = load(conn, template_id, version)
    if found is None or not visible_to(found, clinic_hsa_id):
        where = f" in version {version}" if version else ""
        raise TemplateNotFound(
            f"template-unknown: no template {template_id!r}{where}"
            + (f" for {clinic_hsa_id}" if clinic_hsa_id else "")
        )
    return found


def changeable(conn: sa.Connection, template_id: str, clinic_hsa_id: str | None) -> Template:
    """The template, if the clinic may change it (edit, activate, deactivate): only its own
    local templates; a national or regional one it adapts by adopting a copy.

    Raises
    ------
    TemplateNotFound
        The clinic cannot see such a template.
    TemplateNotChangeable
        It is a national or regional template.
    """
    found = visible(conn, template_id, clinic_hsa_id)
    if clinic_hsa_id is not None and found.scope != "local":
        raise TemplateNotChangeable(
            f"{template_id} is a {found.scope} template; a clinic adapts it by adopting it "
            f"(omvant templates adopt {template_id} --clinic {clinic_hsa_id})"
        )
    return found


def creator_scope(
    clinic_hsa_id: str | None, scope: str | None, owner: str | None
) -> tuple[str, str]:
    """The scope and owner of a template someone creates: a clinic creates only its own local
    templates; a national or regional one needs its scope and owner (a national editor).

    Raises
    ------
    ValueError
        A clinic asked for another scope, or neither a clinic nor a scope and owner was given.
    """
    if clinic_hsa_id is not None:
        if scope not in (None, "local"):
            raise ValueError("a clinic creates local templates; leave out --scope")
        return "local", clinic_hsa_id
    if scope is None or owner is None:
        raise ValueError("give --clinic for a local template, or --scope and --owner")
    return scope, owner


def check_importable(templates_: Sequence[Template], clinic_hsa_id: str | None) -> None:
    """Refuse an import by a clinic of anything but its own local templates.

    Raises
    ------
    TemplateNotChangeable
        Naming the templates that are not the clinic's own local ones.
    """
    if clinic_hsa_id is None:
        return
    foreign = [t.id for t in templates_ if t.scope != "local" or t.owner != clinic_hsa_id]
    if foreign:
        raise TemplateNotChangeable(
            f"{clinic_hsa_id} may import only its own local templates, not {', '.join(foreign)}"
        )


def listing(
    conn: sa.Connection,
    *,
    clinic_hsa_id: str | None = None,
    query: str | None = None,
    include_inactive: bool = True,
) -> list[Template]:
    """Current versions: national and regional, plus the clinic's own local ones (every
    template when no clinic is given); ``query`` matches the name, id, type or text."""
    statement = (
        sa.select(template_versions, templates.c.scope, templates.c.owner, templates.c.active)
        .join(
            templates,
            sa.and_(
                templates.c.id == template_versions.c.template_id,
                templates.c.current_version == template_versions.c.version,
            ),
        )
        .order_by(templates.c.scope, template_versions.c.name)
    )
    if clinic_hsa_id is not None:
        statement = statement.where(
            sa.or_(templates.c.scope != "local", templates.c.owner == clinic_hsa_id)
        )
    if not include_inactive:
        statement = statement.where(templates.c.active.is_(True))
    found = [_from_row(row, row) for row in conn.execute(statement)]
    if query:
        needle = query.casefold()
        found = [t for t in found if needle in _haystack(t)]
    return found


def _haystack(template: Template) -> str:
    return " ".join(
        [
            template.id,
            template.name,
            template.template_type,
            template.text,
            template.contact,
            *template.fragments.values(),
            *template.questions,
        ]
    ).casefold()


def _insert_version(conn: sa.Connection, template: Template, version: int) -> Template:
    now = utcnow()
    conn.execute(
        template_versions.insert().values(
            template_id=template.id,
            version=version,
            kind=template.kind,
            name=template.name,
            content=json.dumps(template.content(), ensure_ascii=False),
            created_at=now,
        )
    )
    return template.model_copy(update={"version": version, "created_at": now})


def create(conn: sa.Connection, template: Template) -> Template:
    """Store a new template as version 1.

    Raises
    ------
    TemplateConflict
        The id is taken.
    """
    if conn.execute(sa.select(templates.c.id).where(templates.c.id == template.id)).first():
        raise TemplateConflict(f"a template {template.id!r} exists already; edit it instead")
    conn.execute(
        templates.insert().values(
            id=template.id,
            scope=template.scope,
            owner=template.owner,
            active=template.active,
            current_version=1,
            updated_at=utcnow(),
        )
    )
    return _insert_version(conn, template, 1)


def revise(conn: sa.Connection, template: Template, *, active: bool | None = None) -> Template:
    """Store ``template`` as the next version of its id (activation kept unless given).

    Raises
    ------
    TemplateNotFound
        No template has that id.
    TemplateConflict
        The scope or owner differs from the stored template's, or another edit came first.
    """
    top = conn.execute(sa.select(templates).where(templates.c.id == template.id)).first()
    if top is None:
        raise TemplateNotFound(template.id)
    if (top.scope, top.owner) != (template.scope, template.owner):
        raise TemplateConflict(
            f"{template.id} is {top.scope} owned by {top.owner}; scope and owner do not change"
        )
    version = top.current_version + 1
    now_active = bool(top.active) if active is None else active
    moved = conn.execute(
        sa.update(templates)
        .where(templates.c.id == template.id, templates.c.current_version == version - 1)
        .values(current_version=version, active=now_active, updated_at=utcnow())
    )
    if moved.rowcount != 1:
        raise TemplateConflict(f"{template.id} was changed meanwhile; try again")
    saved = _insert_version(conn, template, version)
    return saved.model_copy(update={"active": now_active})


def set_active(conn: sa.Connection, template_id: str, active: bool) -> None:
    """Activate or deactivate a template (all its versions: activation is the template's).

    Raises
    ------
    TemplateNotFound
        No template has that id.
    """
    done = conn.execute(
        sa.update(templates)
        .where(templates.c.id == template_id)
        .values(active=active, updated_at=utcnow())
    )
    if done.rowcount != 1:
        raise TemplateNotFound(template_id)


def adopted_id(source_id: str, clinic_hsa_id: str) -> str:
    """The id a clinic's copy of a template gets unless another is chosen."""
    suffix = clinic_hsa_id.split("-", 1)[-1].lower()
    return f"{suffix}.{source_id}"[:80]


def adopt(
    conn: sa.Connection,
    source_id: str,
    clinic_hsa_id: str,
    *,
    new_id: str | None = None,
    changes: dict[str, Any] | None = None,
) -> Template:
    """Take up a national or regional template as the clinic's own local copy (inactive until
    the clinic activates it), with ``changes`` (contact, contact card, answer options ...).

    Raises
    ------
    TemplateNotFound
        No such template.
    TemplateConflict
        The source is a local template, or the new id is taken.
    TemplateInvalid
        The changes break a rule.
    """
    source = load(conn, source_id)
    if source is None:
        raise TemplateNotFound(source_id)
    if source.scope == "local":
        raise TemplateConflict(
            f"{source_id} is a local template; only national and regional ones can be adopted"
        )
    data: dict[str, Any] = {
        **source.definition(),
        "id": new_id or adopted_id(source_id, clinic_hsa_id),
        "scope": "local",
        "owner": clinic_hsa_id,
        "active": False,
        "adopted_from": f"{source.id}@{source.version}",
    }
    data.pop("version", None)
    data.update(changes or {})
    return create(conn, validated(data))


def store(conn: sa.Connection, template: Template) -> tuple[Outcome, Template]:
    """Create ``template``, or make it the next version when its content or activation
    differs from the current one (an import); the same content twice changes nothing."""
    current = load(conn, template.id)
    if current is None:
        return "created", create(conn, template)
    if current.content() == template.content():
        if current.active != template.active:
            set_active(conn, template.id, template.active)
            return "unchanged", current.model_copy(update={"active": template.active})
        return "unchanged", current
    return "new-version", revise(conn, template, active=template.active)


def seed(conn: sa.Connection, starter: Iterable[Template]) -> list[str]:
    """Insert the starter templates that are not stored yet; return their ids. A template that
    exists is left as it is, so an administrator's edits win. Safe to run concurrently."""
    added: list[str] = []
    for template in starter:
        claimed = conn.execute(
            insert_ignoring_conflicts(conn, templates)
            .values(
                id=template.id,
                scope=template.scope,
                owner=template.owner,
                active=template.active,
                current_version=1,
                updated_at=utcnow(),
            )
            .returning(templates.c.id)
        ).first()
        if claimed is not None:
            _insert_version(conn, template, 1)
            added.append(template.id)
    return added


def edited(template: Template, changes: dict[str, Any]) -> Template:
    """``template`` with ``changes`` applied, validated as a whole.

    Raises
    ------
    TemplateInvalid
        The result breaks a rule.
    """
    data = {**template.definition(), **changes}
    return validated(data)


__all__: Sequence[str] = (
    "Head",
    "TemplateConflict",
    "TemplateInvalid",
    "TemplateNotChangeable",
    "TemplateNotFound",
    "adopt",
    "changeable",
    "check_importable",
    "create",
    "creator_scope",
    "edited",
    "head",
    "history",
    "listing",
    "load",
    "revise",
    "seed",
    "set_active",
    "store",
    "visible",
)
