"""``omvant serve``: the HTTP API and the web console, served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from producers.cli.errors import note
from producers.cli.options import BrokerOption, DatabaseOption, checked_engine, settings_from
from workers import server_probe as servers
from workers.log import configure
from workers.reasons import Note


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = 8000,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Serve the HTTP API (/v1, /openapi.json), the probes and the web console until stopped.

    Says where on stderr (``omvant serve on http://HOST:PORT``), the port the socket got when
    ``--port 0`` asks for any free one."""
    import uvicorn

    from producers.web.app import create_app

    settings = settings_from(broker, database)
    configure(settings.log_level, json=settings.log_json)
    # a server that accepts cases it cannot enqueue is worse than none: refuse, like its database
    servers.require(settings, (servers.BROKER, servers.DATABASE))
    checked_engine(settings.database_url).dispose()  # only omvant db upgrade migrates
    app = create_app(settings)
    if is_in_process(settings.broker_url):
        note(Note.MEMORY_BROKER, MEMORY_BROKER_WARNING)
        app.state.console.isolated_broker = True  # the pages say it too
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    listening = config.bind_socket()  # bound here: with --port 0, the port is known before serving
    bound = listening.getsockname()[1]
    note(Note.LISTENING, f"omvant serve on http://{host}:{bound}", url=f"http://{host}:{bound}")
    uvicorn.Server(config).run(sockets=[listening])


MEMORY_BROKER_WARNING = (
    "warning: the broker is memory:// (the embedded default): cases sent from this server "
    "stay in this process and no `omvant worker` will ever see them, and the operations pages "
    "show only this process's queues. Set OMVANT_BROKER_URL (or --broker) to amqp://... or "
    "redis://..., or run `omvant demo --serve`, which runs the workers in this process."
)


def is_in_process(broker_url: str) -> bool:
    """Whether ``broker_url`` is the in-process broker, which no other process can reach."""
    return broker_url.strip().lower().startswith("memory:")
