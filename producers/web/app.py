"""``create_app``: the one ASGI application of ``omvant serve``.

It holds the HTTP API (``/v1``, ``producers/web/api/``), the probes (``/healthz``,
``/readyz``) and the staff web console's pages. To add a part: write a module with an
``APIRouter`` named ``router`` and include it below; middleware (sessions, CSRF) is added
here too, so the whole application is on one screen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producers.web import api, health, problems
from producers.web.api import callbacks
from producers.web.body_limit import BodyLimitMiddleware, limit_for
from producers.web.context import WebContext
from producers.web.openapi import openapi_for
from producers.web.pages import install_console
from workers.settings import Settings
from workers.store.engine import upgrade

TITLE = "Omvänt"
VERSION = "1"


def create_app(settings: Settings | None = None, *, migrate: bool = False) -> FastAPI:
    """The application for ``settings`` (the environment's when not given).

    ``migrate`` brings the database to the newest schema when the application starts: only
    for an application that owns its database (the tests'); ``omvant serve`` checks the schema
    instead and refuses a stale one, as every command but ``omvant db upgrade`` and the demo
    (which migrates its database itself) does.
    """
    context = WebContext(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            upgrade(context.settings.database_url)
        try:
            yield
        finally:
            context.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        summary="Messages from care staff to residents' 1177 inboxes.",
        lifespan=lifespan,
    )
    app.state.omvant = context
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, limit=limit_for(context.settings))
    app.include_router(health.router)
    app.include_router(api.router)
    app.webhooks.include_router(callbacks.webhooks)
    app.openapi = openapi_for(app)  # type: ignore[method-assign]
    install_console(
        app, context.settings, engine=context.engine, broker_factory=lambda: context.broker
    )
    return app
