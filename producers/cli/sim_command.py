"""``omvant sim ...``: the shipped simulators of outside systems, served on their own."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from workers.adapters.http_simulator import ServedInThread

app = typer.Typer(help="Simulators of outside systems, for tests and load tests.")

Port = Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")]
Host = Annotated[str, typer.Option(help="Address to bind (loopback by default).")]
Store = Annotated[
    Path | None,
    typer.Option(
        help="Keep what it takes in this SQLite file (survives a restart; shared by processes)."
    ),
]


def _serve(simulator: ServedInThread, name: str, *, stop_on_sigterm: bool = True) -> None:
    """Print where ``simulator`` listens, serve it in this thread until interrupted (Ctrl-C, or
    SIGTERM when ``stop_on_sigterm``), then stop it and release the port."""
    typer.echo(f"{name} simulator on {simulator.base_url}")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    if stop_on_sigterm:
        signal.signal(signal.SIGTERM, interrupt)
    try:
        simulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


@app.command("directory")
def directory(
    port: Port = 0,
    host: Host = "127.0.0.1",
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated population.")] = None,
    delay: Annotated[float, typer.Option(min=0, help="Seconds before each answer.")] = 0.0,
    fail_status: Annotated[
        int | None, typer.Option(help="Answer every look-up with this HTTP status.")
    ] = None,
) -> None:
    """Serve the simulated 1177 account directory over HTTP (HttpAccountDirectory's JSON)."""
    from producers.cli.options import settings_from
    from workers.adapters.account_directory import SimulatedAccountDirectory
    from workers.adapters.directory_server import DirectoryServer, Faults

    chosen_seed = settings_from().seed if seed is None else seed
    server = DirectoryServer(
        SimulatedAccountDirectory(chosen_seed),
        host=host,
        port=port,
        faults=Faults(delay=delay, status=fail_status),
    )
    _serve(server, "account directory", stop_on_sigterm=False)


@app.command("inbox")
def inbox(
    port: Port = 0,
    host: Host = "127.0.0.1",
    store: Store = None,
) -> None:
    """Serve the simulated 1177 inbox over HTTP (HttpInbox's API, idempotent on the key).

    The API is in workers/adapters/inbox_server.py: POST /v1/messages with an Idempotency-Key,
    GET /v1/stats, GET /v1/messages?key=K, GET/POST /v1/control. Prints its URL on stdout.
    """
    from workers.adapters.inbox_records import SqliteInboxRecords
    from workers.adapters.inbox_server import InboxSimulator

    simulator = InboxSimulator(host, port, SqliteInboxRecords(store) if store else None)
    _serve(simulator, "inbox")


@app.command("email-api")
def email_api(
    port: Port = 0,
    host: Host = "127.0.0.1",
    store: Store = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="OMVANT_EMAIL_API_TOKEN", help="Bearer token clients must send."),
    ] = None,
) -> None:
    """Serve the simulated e-mail provider API over HTTP (HttpEmailApi's, deduping by key).

    The API is in workers/adapters/email_api_server.py: POST /v1/messages with an
    Idempotency-Key, GET /v1/messages?idempotency_key=K, GET /v1/stats, GET/POST /v1/control
    (fail_for=N: answer 503 for N seconds). Prints its URL on stdout.
    """
    from workers.adapters.email_api_server import EmailApiSimulator

    simulator = EmailApiSimulator(host, port, store=store, token=token)
    _serve(simulator, "e-mail API")
