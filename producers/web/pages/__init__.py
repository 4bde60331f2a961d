"""The staff web console: sign-in, templates, sending, the clinic's cases, operations (queues,
dead letters, stuck cases, dispatches).

``router`` holds every page, with CSRF protection on every POST; ``install_console`` adds it
to the application with its static files, its error pages and its security headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from producers.web import problems
from producers.web.auth import (
    CsrfRefused,
    Forbidden,
    LoginRequired,
    NotFound,
    csrf_protect,
    login_url,
    render,
)
from producers.web.console_settings import WebSettings
from producers.web.i18n import LanguageMiddleware
from producers.web.i18n import gettext as _
from producers.web.oidc import build_oauth
from producers.web.pages import cases, dead_letters, login, operations, send, templates
from producers.web.services import build_console, static_folder
from workers.settings import Settings

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])
router.include_router(login.router)
router.include_router(templates.router)
router.include_router(send.router)
router.include_router(cases.router)
router.include_router(operations.router)
router.include_router(dead_letters.router)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Everything the pages load ships in the package: no CDN, no inline script."""

NOT_CONSOLE = ("/v1", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message}, status_code=status)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(login_url(exc.next_url), status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return _error_page(request, 403, _("Ingen behörighet"), exc.message)


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return _error_page(request, 404, _("Finns inte"), exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    """A path the console has no page for (``/nope``, ``/%2e%2e/...``, a static file that is
    not there) gets the console's own error page; the API and the probes keep theirs."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(NOT_CONSOLE) or exc.status_code not in (404, 405):
        return await problems.http_error(request, exc)
    if exc.status_code == 404:
        return _error_page(request, 404, _("Finns inte"), _("Sidan finns inte."))
    page = _error_page(
        request, 405, _("Fel sorts begäran"), _("Sidan tar inte emot den sortens begäran.")
    )
    page.headers.update(dict(exc.headers or {}))
    return page


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return _error_page(
        request,
        403,
        _("Formuläret kunde inte skickas"),
        _(
            "Sidan var för gammal eller kom inte från Omvänt (CSRF-skydd). Ladda om sidan och "
            "försök igen."
        ),
    )


def install_console(
    app: FastAPI,
    settings: Settings,
    *,
    engine: sa.Engine | None = None,
    broker_factory: Callable[[], dramatiq.Broker] | None = None,
    web: WebSettings | None = None,
) -> None:
    """Add the console to ``app``: pages, static files, error pages, security headers."""
    services = build_console(settings, web, engine=engine, broker_factory=broker_factory)
    app.state.console = services
    app.state.oidc = build_oauth(services.web)
    if app.state.oidc is not None:  # authlib keeps the state and nonce of a sign-in here
        from starlette.middleware.sessions import SessionMiddleware

        app.add_middleware(
            SessionMiddleware,
            secret_key=services.web.web_secret,
            session_cookie="omvant_oidc",
            max_age=600,
            same_site="lax",
            https_only=services.web.web_cookie_secure == "always",
        )
    app.include_router(router)
    app.add_middleware(LanguageMiddleware)
    app.mount("/static", StaticFiles(directory=static_folder()), name="static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Any]]
    ) -> Response:
        response: Response = await call_next(request)
        if not request.url.path.startswith(NOT_CONSOLE):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response
