"""Templates for the clinic's administrator ("Mallar för invånarärenden"): search national and
regional templates, "Använd mall" (adopt), adapt, activate, deactivate, create a local one,
version history. The rules and messages are the template store's, as in ``omvant templates``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from producers.web.auth import Acting, AsAdmin, NotFound, console, render
from producers.web.explained import explained
from producers.web.i18n import gettext as _
from producers.web.template_form import (
    FormValues,
    blank_values,
    changes_of,
    read_form,
    values_of,
)
from producers.web.wording import TEMPLATE_NOTICE
from workers.templates import store
from workers.templates.model import Template, TemplateInvalid, validated

router = APIRouter()


def _notice(key: str | None) -> str | None:
    found = TEMPLATE_NOTICE.get(key or "")
    return _(found) if found else None


@router.get("/mallar")
def template_list(request: Request, acting: AsAdmin) -> Response:
    """The clinic's own templates, and a search among the national and regional ones."""
    services = console(request)
    query = (request.query_params.get("q") or "").strip()[:200]
    with services.begin() as conn:
        visible = store.listing(conn, clinic_hsa_id=acting.clinic_hsa_id)
        found = store.listing(conn, clinic_hsa_id=acting.clinic_hsa_id, query=query or None)
    own = [t for t in visible if t.scope == "local"]
    shared = [t for t in found if t.scope != "local"]
    adopted = {t.adopted_from.split("@", 1)[0] for t in own if t.adopted_from}
    return render(
        request,
        "templates_list.html",
        {
            "own": own,
            "shared": shared,
            "adopted": adopted,
            "q": query,
            "error": request.query_params.get("fel"),
        },
    )


@router.post("/mallar/{template_id}/anvand")
def adopt(request: Request, template_id: str, acting: AsAdmin) -> Response:
    """ "Använd mall": the clinic's own (inactive) copy of a national or regional template."""
    services = console(request)
    try:
        with services.begin() as conn:
            store.visible(conn, template_id, acting.clinic_hsa_id)
            copy = store.adopt(conn, template_id, acting.clinic_hsa_id)
    except (store.TemplateNotFound, store.TemplateConflict, TemplateInvalid) as exc:
        return _list_with_error(request, acting, str(exc))
    return RedirectResponse(f"/mallar/{copy.id}?info=adopted", status_code=303)


def _list_with_error(request: Request, acting: Acting, message: str) -> Response:
    services = console(request)
    with services.begin() as conn:
        visible = store.listing(conn, clinic_hsa_id=acting.clinic_hsa_id)
    own = [t for t in visible if t.scope == "local"]
    return render(
        request,
        "templates_list.html",
        {
            "own": own,
            "shared": [t for t in visible if t.scope != "local"],
            "adopted": {t.adopted_from.split("@", 1)[0] for t in own if t.adopted_from},
            "q": "",
            "error": message,
        },
        status_code=409,
    )


def _page(
    request: Request,
    acting: Acting,
    template: Template,
    *,
    values: FormValues | None = None,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    services = console(request)
    with services.begin() as conn:
        versions = store.history(conn, template.id)
        try:
            store.changeable(conn, template.id, acting.clinic_hsa_id)
            changeable, why_not = True, None
        except (store.TemplateNotFound, store.TemplateNotChangeable) as exc:
            changeable, why_not = False, str(exc)
        current = store.load(conn, template.id)
    return render(
        request,
        "template_edit.html",
        {
            "template": template,
            "current_version": current.version if current else template.version,
            "values": values or values_of(template),
            "problems": problems or [],
            "versions": list(reversed(versions)),
            "changeable": changeable and (current is None or current.version == template.version),
            "why_not": why_not,
            "notice": _notice(request.query_params.get("info")),
            "new": False,
        },
        status_code=status_code,
    )


@router.get("/mallar/ny")
def new_template_form(request: Request, acting: AsAdmin) -> Response:
    """ "Skapa mall med information / med frågor": a blank local template ("Tom mall")."""
    kind = "questions" if request.query_params.get("typ") == "questions" else "information"
    return render(
        request,
        "template_edit.html",
        {
            "template": None,
            "kind": kind,
            "values": blank_values(kind),
            "problems": [],
            "versions": [],
            "changeable": True,
            "new": True,
            "suggested_id": "",
        },
    )


@router.post("/mallar/ny")
async def create_template(request: Request, acting: AsAdmin) -> Response:
    """Create the clinic's local template from the form."""
    services = console(request)
    form = await request.form()
    kind = "questions" if form.get("kind") == "questions" else "information"
    template_id = str(form.get("template_id") or "").strip()
    values = read_form(form)
    changes, problems = changes_of(values, kind)
    data: dict[str, Any] = {
        "id": template_id,
        "kind": kind,
        "scope": "local",
        "owner": acting.clinic_hsa_id,
        "active": values.active,
        **changes,
    }
    if not problems:
        try:
            template = validated(data)
            with services.begin() as conn:
                saved = store.create(conn, template)
            return RedirectResponse(f"/mallar/{saved.id}?info=created", status_code=303)
        except TemplateInvalid as exc:
            problems = exc.problems
        except store.TemplateConflict as exc:
            problems = [str(exc)]
    return render(
        request,
        "template_edit.html",
        {
            "template": None,
            "kind": kind,
            "values": values,
            "problems": problems,
            "versions": [],
            "changeable": True,
            "new": True,
            "suggested_id": template_id,
        },
        status_code=422,
    )


@router.get("/mallar/{template_id}")
def template_page(request: Request, template_id: str, acting: AsAdmin) -> Response:
    """A template (or one of its versions): its content, history and, if the clinic's own,
    the form to adapt it."""
    services = console(request)
    version_text = request.query_params.get("version")
    version = int(version_text) if version_text and version_text.isdigit() else None
    try:
        with services.begin() as conn:
            template = store.visible(conn, template_id, acting.clinic_hsa_id, version)
    except store.TemplateNotFound as exc:
        raise NotFound(explained(exc)) from None
    return _page(request, acting, template)


@router.post("/mallar/{template_id}")
async def save_template(request: Request, template_id: str, acting: AsAdmin) -> Response:
    """Save the form: a new version (cases in flight keep theirs), and the activation."""
    services = console(request)
    form = await request.form()
    values = read_form(form)
    base = str(form.get("base_version") or "")
    with services.begin() as conn:
        try:
            current = store.changeable(conn, template_id, acting.clinic_hsa_id)
        except store.TemplateNotFound as exc:
            raise NotFound(explained(exc)) from None
        except store.TemplateNotChangeable as exc:
            return _page(
                request,
                acting,
                store.visible(conn, template_id, acting.clinic_hsa_id),
                problems=[str(exc)],
                status_code=409,
            )
    if base and base != str(current.version):
        return _page(
            request,
            acting,
            current,
            values=values,
            problems=[
                _(
                    "%(id)s ändrades under tiden (nu version %(version)s); titta på den igen "
                    "och spara en gång till.",
                    id=template_id,
                    version=current.version,
                )
            ],
            status_code=409,
        )
    changes, problems = changes_of(values, current.kind)
    if problems:
        return _page(request, acting, current, values=values, problems=problems, status_code=422)
    try:
        candidate = store.edited(current, changes)
        with services.begin() as conn:
            if candidate.content() == current.content():
                if values.active == current.active:
                    return RedirectResponse(
                        f"/mallar/{template_id}?info=unchanged", status_code=303
                    )
                store.set_active(conn, template_id, values.active)
                notice = "activated" if values.active else "deactivated"
                return RedirectResponse(f"/mallar/{template_id}?info={notice}", status_code=303)
            store.revise(conn, candidate, active=values.active)
    except TemplateInvalid as exc:
        return _page(
            request, acting, current, values=values, problems=exc.problems, status_code=422
        )
    except store.TemplateConflict as exc:
        return _page(request, acting, current, values=values, problems=[str(exc)], status_code=409)
    return RedirectResponse(f"/mallar/{template_id}?info=saved", status_code=303)


def _set_active(request: Request, template_id: str, acting: Acting, active: bool) -> Response:
    services = console(request)
    with services.begin() as conn:
        try:
            store.changeable(conn, template_id, acting.clinic_hsa_id)
        except store.TemplateNotFound as exc:
            raise NotFound(explained(exc)) from None
        except store.TemplateNotChangeable as exc:
            return _page(
                request,
                acting,
                store.visible(conn, template_id, acting.clinic_hsa_id),
                problems=[str(exc)],
                status_code=409,
            )
        store.set_active(conn, template_id, active)
    notice = "activated" if active else "deactivated"
    return RedirectResponse(f"/mallar/{template_id}?info={notice}", status_code=303)


@router.post("/mallar/{template_id}/aktivera")
def activate(request: Request, template_id: str, acting: AsAdmin) -> Response:
    """Activate: staff can send with it."""
    return _set_active(request, template_id, acting, True)


@router.post("/mallar/{template_id}/avaktivera")
def deactivate(request: Request, template_id: str, acting: AsAdmin) -> Response:
    """Deactivate: cases naming it are rejected (template-inactive)."""
    return _set_active(request, template_id, acting, False)
