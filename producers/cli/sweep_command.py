"""``omvant sweep``: the periodic job that re-drives what has stalled (``workers.sweep``)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer

from producers.cli.options import DatabaseOption, settings_from
from workers import server_probe as servers


def sweep(
    database: DatabaseOption = None,
    every: Annotated[
        float | None,
        typer.Option(min=1, help="Run every SECONDS until stopped (a service); else once."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each run's counts as JSON.")] = (
        False
    ),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what has stalled; change nothing.")
    ] = False,
) -> None:
    """Re-drive stalled notifications and cases from their last recorded step and run the due
    unread follow-ups; print the counts of what it found and did (one line per run)."""
    from workers import sweep as sweeping
    from workers.bootstrap import build_context
    from workers.broker import build_broker
    from workers.log import configure

    settings = settings_from(None, database)
    # its own counts are the output: its INFO lines (``sweep``, ``unread follow-ups run``) are
    # for OMVANT_LOG_LEVEL=DEBUG, as with the other one-shot commands
    quiet = "WARNING" if settings.log_level.upper() == "INFO" else settings.log_level
    configure(quiet, json=settings.log_json)
    servers.require(settings, (servers.BROKER, servers.DATABASE))
    # the real broker: a case stalled at cleared is sent to inbox delivery on it (redrive)
    ctx = build_context(settings, build_broker(settings.broker_url))
    stop = threading.Event()
    if every is not None:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while True:
            counts = dict(sweeping.findings(ctx) if dry_run else sweeping.run(ctx))
            shown = {k: v for k, v in sorted(counts.items()) if v}
            typer.echo(
                json.dumps(shown)
                if as_json
                else ", ".join(f"{k}: {v}" for k, v in shown.items()) or "nothing stalled"
            )
            if every is None or stop.wait(every):
                break
    finally:
        ctx.engine.dispose()
        ctx.broker.close()
