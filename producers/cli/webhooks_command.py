"""``omvant webhooks send|status`` and ``omvant sim webhook-receiver``: status callbacks."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from producers.cli.options import DatabaseOption, checked_engine, settings_from
from workers.log import configure

app = typer.Typer(help="Status callbacks (webhooks) to integrations.", no_args_is_help=True)


@app.command("send")
def send(
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between idle rounds.")] = 1.0,
    database: DatabaseOption = None,
) -> None:
    """Collect case state changes into the webhook outbox and deliver them, signed, with
    retries, until stopped (SIGTERM / Ctrl-C); prints the counts at the end."""
    from workers.webhooks import WebhookSender

    settings = settings_from(None, database)
    configure(settings.log_level, json=settings.log_json)
    engine = checked_engine(settings.database_url)
    sender = WebhookSender(engine, settings)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if once:
            sender.run_once()
        else:
            sender.run(stop, poll=poll)
    finally:
        sender.close()
        engine.dispose()
    typer.echo(json.dumps(sender.counts.__dict__))


@app.command("status")
def status(database: DatabaseOption = None) -> None:
    """Callbacks in the outbox by status (pending, sent, gave-up), as JSON."""
    from workers.store import webhooks

    settings = settings_from(None, database, existing_database=True)
    engine = checked_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            typer.echo(json.dumps(webhooks.counts(conn)))
    finally:
        engine.dispose()


def webhook_receiver(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    signing_key: Annotated[
        str | None, typer.Option("--signing-key", help="Check signatures with this key.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Append each new event to this JSONL file.")
    ] = None,
    fail_first: Annotated[
        int, typer.Option(min=0, help="Answer the first N callbacks 503 (to see retries).")
    ] = 0,
) -> None:
    """Serve a simulated integration's webhook endpoint: checks signatures, keeps each event
    once, and prints its URL."""
    from workers.adapters.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver(
        signing_key=signing_key, host=host, port=port, fail_first=fail_first, out=out
    )
    typer.echo(f"webhook receiver on {receiver.url}")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        typer.echo(
            json.dumps(
                {
                    "events": len(receiver.events),
                    "deliveries": receiver.deliveries,
                    "bad_signatures": receiver.bad_signatures,
                }
            )
        )
