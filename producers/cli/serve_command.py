"""``omvant serve``: the HTTP API and the web console, served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from producers.cli.options import BrokerOption, DatabaseOption, settings_from
from workers.log import configure


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Serve the HTTP API (/v1, /openapi.json), the probes and the web console until stopped."""
    import uvicorn

    from producers.web.app import create_app

    settings = settings_from(broker, database)
    configure(settings.log_level, json=settings.log_json)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
