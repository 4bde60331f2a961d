"""Sending a case ("Skicka ärende"), the seed's steps: choose a template, add residents and
see at once whether each can be reached, plus in fragments, write, attach, preview, send.

One form per step, every button a submit: the flow works without JavaScript; with it
(``static/console.js``) the page is updated in place. The decisions are ``drafts``'.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import RedirectResponse, Response

from producers.web import drafts
from producers.web.auth import Acting, AsStaff, NotFound, console, render
from producers.web.i18n import gettext as _
from workers.composition import CompositionError

router = APIRouter()


@router.get("/skicka")
def choose_template(request: Request, acting: AsStaff) -> Response:
    """Step 1: the clinic's active templates to choose from."""
    services = console(request)
    query = (request.query_params.get("q") or "").strip()[:200]
    with services.begin() as conn:
        found = drafts.sendable_templates(conn, acting.clinic_hsa_id, query or None)
    return render(request, "send_choose.html", {"templates": found, "q": query, "error": None})


@router.post("/skicka")
async def begin(request: Request, acting: AsStaff) -> Response:
    """ "Gå vidare": a draft with the chosen template."""
    services = console(request)
    form = await request.form()
    template_id = str(form.get("template_id") or "")
    try:
        with services.begin() as conn:
            draft = drafts.begin(
                conn,
                user_id=acting.session.user.id,
                clinic_hsa_id=acting.clinic_hsa_id,
                sender_hsa_id=acting.user_hsa_id,
                template_id=template_id,
            )
    except drafts.DraftRefused as exc:
        with services.begin() as conn:
            found = drafts.sendable_templates(conn, acting.clinic_hsa_id, None)
        return render(
            request,
            "send_choose.html",
            {"templates": found, "q": "", "error": exc.message},
            status_code=422,
        )
    return RedirectResponse(f"/skicka/{draft.id}", status_code=303)


def _draft_page(
    request: Request,
    draft: drafts.Draft,
    acting: Acting,
    *,
    notices: list[str] | None = None,
    errors: list[str] | None = None,
    refused_files: list[drafts.Refusal] | None = None,
    show_preview: bool = False,
    status_code: int = 200,
) -> Response:
    services = console(request)
    with services.begin() as conn:
        template = drafts.template_of(conn, draft)
    composed = None
    compose_error = None
    if show_preview:
        try:
            composed = drafts.preview(draft, template, services)
        except CompositionError as exc:
            compose_error = exc
    context: dict[str, Any] = {
        "draft": draft,
        "template": template,
        "fields_used": drafts.fields_used(draft, template),
        "notices": notices or [],
        "errors": errors or [],
        "refused_files": refused_files or [],
        "composed": composed,
        "compose_error": compose_error,
        "limits": services.limits,
        "unreachable": [r for r in draft.residents if not r.reachable],
    }
    return render(request, "send_draft.html", context, status_code=status_code)


def _load(request: Request, draft_id: str, acting: Acting) -> drafts.Draft:
    services = console(request)
    try:
        with services.begin() as conn:
            return drafts.load(
                conn, draft_id, user_id=acting.session.user.id, clinic_hsa_id=acting.clinic_hsa_id
            )
    except drafts.DraftNotFound:
        raise NotFound(_("Utkastet finns inte (det kan redan vara skickat).")) from None


@router.get("/skicka/{draft_id}")
def draft_page(request: Request, draft_id: str, acting: AsStaff) -> Response:
    """Step 2: residents, text, attachments, preview and send."""
    return _draft_page(request, _load(request, draft_id, acting), acting)


def _index(action: str) -> int:
    try:
        return int(action.rsplit(":", 1)[-1])
    except ValueError:
        return -1


def _take_form(draft: drafts.Draft, form: FormData) -> None:
    """The fields every post of the page carries: free text, field values, urgency."""
    text = form.get("free_text")
    if isinstance(text, str):
        draft.free_text = text[:100_000]
    draft.urgent = form.get("urgent") == "on"
    values = {}
    for key, value in form.multi_items():
        if key.startswith("field_") and isinstance(value, str):
            values[key.removeprefix("field_")[:40]] = value[:500]
    if values or "fields_present" in form:
        draft.fields = {k: v for k, v in values.items() if v.strip()}


@router.post("/skicka/{draft_id}")
async def draft_action(request: Request, draft_id: str, acting: AsStaff) -> Response:
    """One step on the draft: the button pressed says which."""
    services = console(request)
    draft = _load(request, draft_id, acting)
    form = await request.form()
    action = str(form.get("action") or "save")
    _take_form(draft, form)
    notices: list[str] = []
    errors: list[str] = []
    refused: list[drafts.Refusal] = []
    upload = form.get("file")
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(services.limits.max_bytes + 1)
            outcome = drafts.attach(
                draft,
                services,
                filename=upload.filename,
                declared_type=upload.content_type or "application/octet-stream",
                data=data,
            )
            if isinstance(outcome, drafts.Refusal):
                refused.append(outcome)
            else:
                notices.append(_("%(file)s är kontrollerad och bifogad.", file=outcome.filename))
        elif action == "attach":
            errors.append(_("Välj en fil att bifoga."))
        with services.begin() as conn:
            template = drafts.template_of(conn, draft)
        if action == "add-residents":
            added = drafts.add_residents(draft, str(form.get("personnummer") or ""), services)
            if not added:
                notices.append(_("Invånaren finns redan bland mottagarna."))
        elif action.startswith("remove-resident:"):
            drafts.remove_resident(draft, _index(action))
        elif action.startswith("plus:"):
            drafts.plus_in(draft, template, action.removeprefix("plus:"))
        elif action.startswith("up:"):
            drafts.move_fragment(draft, _index(action), -1)
        elif action.startswith("down:"):
            drafts.move_fragment(draft, _index(action), +1)
        elif action.startswith("drop:"):
            drafts.remove_fragment(draft, _index(action))
        elif action.startswith("remove-file:"):
            drafts.remove_attachment(draft, _index(action))
        elif action == "discard":
            with services.begin() as conn:
                drafts.discard(conn, draft)
            return RedirectResponse("/skicka", status_code=303)
        elif action == "send":
            with services.begin() as conn:
                drafts.save(conn, draft)
                case_ids = drafts.send(conn, draft, template, services)
            first = case_ids[0] if len(case_ids) == 1 else ""
            return RedirectResponse(
                f"/arenden?skickat={len(case_ids)}" + (f"&arende={first}" if first else ""),
                status_code=303,
            )
    except drafts.DraftRefused as exc:
        errors.append(exc.message)
    with services.begin() as conn:
        drafts.save(conn, draft)
    return _draft_page(
        request,
        draft,
        acting,
        notices=notices,
        errors=errors,
        refused_files=refused,
        show_preview=action in ("preview", "send"),
        status_code=422 if errors or refused else 200,
    )
