"""``omvant rejects``: what the intake and the stages refused, and its retention."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from workers import rejections
from workers.intake_sources import open_source
from workers.queues import unprefixed
from workers.store import deliveries
from workers.store.engine import make_engine

app = typer.Typer(help="Rejected messages (rejected_messages and the intake's rejects queue).")


@app.command("purge")
def purge(
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than", min=0, help="Days to keep; default OMVANT_REJECT_RETENTION_DAYS (30)."
        ),
    ] = None,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete rejects older than the retention from rejected_messages and the rejects queue."""
    settings = settings_from(broker, database)
    days = settings.reject_retention_days if older_than is None else older_than
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            rows = rejections.purge(conn, older_than=cutoff)
            deliveries.purge(conn, older_than=cutoff)  # starts of messages that never came back
    finally:
        engine.dispose()
    queued = 0
    if not settings.broker_url.startswith("memory"):
        source = open_source(settings.broker_url, prefix=settings.queue_prefix)
        try:
            queued = source.purge_rejects(cutoff)
        finally:
            source.close()
    if as_json:
        typer.echo(json.dumps({"rows": rows, "queued": queued, "before": cutoff.isoformat()}))
    else:
        typer.echo(
            f"purged {rows} rejected_messages rows and {queued} queued rejects older than "
            f"{cutoff:%Y-%m-%d %H:%M} UTC"
        )


@app.command("list")
def list_(
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Only rejects of this producer message id."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason code.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest rejected messages: when, where, why, who signed and the producer's id."""
    settings = settings_from(None, database, existing_database=True)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = rejections.newest(conn, reference=reference, reason=reason, limit=limit)
    finally:
        engine.dispose()
    for row in rows:  # as dlq and status show them: without the deployment's prefix
        row["queue"] = unprefixed(str(row["queue"]), settings.queue_prefix)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        typer.echo(
            f"R{row['id']}  {row['at']}  {row['queue']}  {row['reason']}  "
            f"reference={row['reference'] or '-'}  sender={row['sender'] or '-'}  "
            f"sha256={row['sha256'] or '-'}  {row['detail'] or ''}"
        )
    if not rows:
        typer.echo("no rejected messages")
