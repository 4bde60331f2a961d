"""Who is asking, and may they: the dependencies every page declares.

``signed_in`` sends a browser without a live session to the sign-in page (303 with ``next``);
``staff``, ``admin`` and ``oncall`` add the role (403 without it) and, for the first two, the
clinic the user acts for now. Every POST must carry the CSRF token (``csrf_protect``, on the
whole router): a post without it, or with another browser's, is refused with 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import Response

from producers.web import i18n
from producers.web.i18n import gettext as _
from producers.web.services import Console
from producers.web.sessions import CSRF_FIELD, CSRF_HEADER, Session
from workers.store.users import ROLE_NAMES, Role

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No live session: the answer is the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Forbidden(Exception):
    """Signed in, but without the role or the clinic the page needs."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CsrfRefused(Exception):
    """A POST without this browser's CSRF token."""


class NotFound(Exception):
    """Nothing here for this user (or it belongs to another clinic: the same answer)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def console(request: Request) -> Console:
    """The application's console services (the starter templates seeded on first use)."""
    found: Console = request.app.state.console
    found.ensure_templates()
    return found


def current_session(request: Request) -> Session | None:
    """The request's live session, looked up once per request."""
    if hasattr(request.state, "session"):
        cached: Session | None = request.state.session
        return cached
    services = console(request)
    with services.begin() as conn:
        session = services.sessions.find(conn, request)
    request.state.session = session
    return session


async def csrf_protect(request: Request) -> None:
    """Refuse an unsafe request that does not carry this browser's CSRF token."""
    if request.method not in UNSAFE:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    services = console(request)
    if not services.sessions.csrf_valid(request, current_session(request), sent):
        raise CsrfRefused


def signed_in(request: Request) -> Session:
    """The live session, or off to the sign-in page."""
    session = current_session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return session


@dataclass(frozen=True)
class Acting:
    """A signed-in user acting for one clinic."""

    session: Session
    clinic_hsa_id: str

    @property
    def user_hsa_id(self) -> str:
        """Who the access log records, and who signs what is sent."""
        return self.session.user.hsa_id


def _need(session: Session, role: Role) -> None:
    if not session.user.has(role):
        raise Forbidden(_("Sidan kräver rollen %(role)s.", role=_(ROLE_NAMES[role])))


def _clinic(session: Session) -> str:
    if session.clinic_hsa_id is None:
        raise Forbidden(_("Ditt konto hör inte till någon mottagning."))
    return session.clinic_hsa_id


SignedIn = Annotated[Session, Depends(signed_in)]


def staff(session: SignedIn) -> Acting:
    """A member of staff, acting for a clinic."""
    _need(session, "staff")
    return Acting(session, _clinic(session))


def admin(session: SignedIn) -> Acting:
    """A clinic's local administrator, acting for it."""
    _need(session, "admin")
    return Acting(session, _clinic(session))


def oncall(session: SignedIn) -> Session:
    """On-call staff: operations pages, no case content."""
    _need(session, "oncall")
    return session


AsStaff = Annotated[Acting, Depends(staff)]
AsAdmin = Annotated[Acting, Depends(admin)]
AsOncall = Annotated[Session, Depends(oncall)]


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """A page: the template with the signed-in user, their clinic, the CSRF token and the
    navigation their roles allow."""
    services = console(request)
    session = current_session(request)
    data: dict[str, Any] = {
        "request": request,
        "session": session,
        "user": session.user if session else None,
        "clinic": session.clinic_hsa_id if session else None,
        "clinic_name": _unit_name(services, session.clinic_hsa_id if session else None),
        "csrf_token": services.sessions.csrf_token(request, session),
        "role_names": ROLE_NAMES,
        "lang": i18n.current.get(),
        "isolated_broker": services.isolated_broker,
        "languages": i18n.LANGUAGES,
        "unit_name": lambda hsa: _unit_name(services, hsa),
    }
    data.update(context or {})
    response = services.pages.TemplateResponse(request, name, data, status_code=status_code)
    if session is None:
        services.sessions.remember_anonymous(request, response)
    response.headers["Cache-Control"] = "no-store"
    return response


def _unit_name(services: Console, hsa_id: str | None) -> str | None:
    if hsa_id is None:
        return None
    unit = services.catalogue.unit(hsa_id)
    return unit.name if unit else hsa_id


def login_url(next_url: str) -> str:
    """The sign-in page, returning to ``next_url`` afterwards."""
    return "/login?next=" + quote(next_url, safe="/")


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
