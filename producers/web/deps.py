"""FastAPI dependencies: the request's view of the application's ``WebContext``."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from producers.web.context import WebContext
from workers.settings import Settings


def get_context(request: Request) -> WebContext:
    """The application's shared connections and settings."""
    context: WebContext = request.app.state.omvant
    return context


def get_settings(context: Annotated[WebContext, Depends(get_context)]) -> Settings:
    """The application's settings."""
    return context.settings


def get_engine(context: Annotated[WebContext, Depends(get_context)]) -> sa.Engine:
    """The system of record."""
    return context.engine


Context = Annotated[WebContext, Depends(get_context)]
Engine = Annotated[sa.Engine, Depends(get_engine)]
AppSettings = Annotated[Settings, Depends(get_settings)]
