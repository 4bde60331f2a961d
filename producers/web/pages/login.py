"""Sign in (local accounts, and OIDC when configured), sign out, the start page, the clinic
the user acts for."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from producers.web import i18n, throttle
from producers.web.auth import NotFound, SignedIn, console, current_session, render, safe_next
from producers.web.i18n import gettext as _
from producers.web.passwords import hash_password, needs_rehash, verify_password
from workers.store import users

router = APIRouter()


def home_of(user: users.User) -> str:
    """Where a user lands after sign-in: their main page by role."""
    if user.has("staff"):
        return "/arenden"
    if user.has("admin"):
        return "/mallar"
    return "/drift"


@router.get("/")
def start(
    session: SignedIn,
) -> Response:
    """The start page is the user's main page."""
    return RedirectResponse(home_of(session.user), status_code=303)


@router.get("/sprak/{language}")
def choose_language(language: str, next: str | None = None) -> Response:
    """Switch the console's language (a cookie for a year; no sign-in needed) and go back."""
    if language not in i18n.LANGUAGES:
        raise NotFound(_("Språket finns inte."))
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        i18n.COOKIE, language, max_age=365 * 86400, httponly=True, samesite="lax", path="/"
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or on, if already signed in)."""
    session = current_session(request)
    if session is not None:
        return RedirectResponse(safe_next(next) if next else home_of(session.user), status_code=303)
    return render(
        request,
        "login.html",
        {"next": safe_next(next), "oidc": console(request).web.oidc_enabled},
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the password under the brute-force limits; on success a fresh session."""
    services = console(request)
    limits = throttle.Limits(services.web.web_account_failures, services.web.web_ip_failures)
    with services.begin() as conn:
        user = users.by_username(conn, username) if username.strip() else None

        def check() -> bool:
            known = user is not None and user.active
            return (
                verify_password(user.password_hash if known and user else None, password) and known
            )

        outcome = throttle.attempt(conn, username, _client_address(request), limits, check)
        if outcome.ok and user is not None:
            assert user.password_hash is not None
            if needs_rehash(user.password_hash):
                users.set_password_hash(conn, user.id, hash_password(password))
            users.signed_in(conn, user.id)
            target = safe_next(next) if next and next != "/" else home_of(user)
            response = RedirectResponse(target, status_code=303)
            services.sessions.start(conn, request, response, user)
            return response
    if outcome.locked_until is not None:
        until = outcome.locked_until.astimezone(ZoneInfo(services.settings.timezone))
        error = _(
            "För många misslyckade inloggningar. Kontot eller datorn är spärrad till "
            "%(until)s; försök igen då.",
            until=f"{until:%H:%M:%S}",
        )
        status = 429
    else:
        error = _("Fel användarnamn eller lösenord.")
        status = 401
    return render(
        request,
        "login.html",
        {
            "error": error,
            "username": username,
            "next": safe_next(next),
            "oidc": services.web.oidc_enabled,
        },
        status_code=status,
    )


@router.get("/login/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    """Off to the organisation's sign-in (OIDC), returning to ``next``."""
    services = console(request)
    oauth = request.app.state.oidc
    if oauth is None:
        raise NotFound(_("Inloggning via organisationen är inte konfigurerad."))
    request.session["omvant_next"] = safe_next(next)
    del services
    redirect: Response = await oauth.oidc.authorize_redirect(
        request, str(request.url_for("oidc_callback"))
    )
    return redirect


@router.get("/login/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """Back from the provider: the linked, active user is signed in, anyone else is not."""
    from authlib.integrations.base_client import OAuthError

    services = console(request)
    oauth = request.app.state.oidc
    if oauth is None:
        raise NotFound(_("Inloggning via organisationen är inte konfigurerad."))
    try:
        token = await oauth.oidc.authorize_access_token(request)
    except OAuthError as exc:
        return _oidc_refused(request, _("Inloggningen avbröts (%(why)s).", why=exc.error))
    claims = token.get("userinfo") or {}
    subject = str(claims.get("sub") or "")
    with services.begin() as conn:
        user = users.by_oidc_subject(conn, subject) if subject else None
        if user is None or not user.active:
            return _oidc_refused(
                request,
                _(
                    "Inloggningen lyckades, men inget aktivt konto i Omvänt är kopplat till "
                    "den. Be en administratör koppla kontot (omvant users add --oidc-subject)."
                ),
            )
        users.signed_in(conn, user.id)
        target = safe_next(request.session.pop("omvant_next", None))
        response = RedirectResponse(target if target != "/" else home_of(user), status_code=303)
        services.sessions.start(conn, request, response, user)
        return response


def _oidc_refused(request: Request, message: str) -> Response:
    return render(
        request,
        "login.html",
        {"error": message, "next": "/", "oidc": True},
        status_code=403,
    )


@router.post("/logout")
def logout(request: Request) -> Response:
    """Sign out: the session ends in the database, not only in the browser."""
    services = console(request)
    response = RedirectResponse("/login", status_code=303)
    with services.begin() as conn:
        services.sessions.end(conn, request, response)
    return response


@router.post("/mottagning")
def choose_clinic(
    request: Request,
    clinic: Annotated[str, Form(max_length=48)],
    session: SignedIn,
) -> Response:
    """Act for another of the user's clinics."""
    services = console(request)
    with services.begin() as conn:
        services.sessions.choose_clinic(conn, session, clinic)
    return RedirectResponse(home_of(session.user), status_code=303)
