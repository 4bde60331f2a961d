"""``omvant loadtest record|replay``: send bursts recorded and replayed (producers/loadtest.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.errors import fail
from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from producers.loadtest import (
    RecordingError,
    read_recording,
    record_from_database,
    record_synthetic,
    replay,
    write_recording,
)
from workers import server_probe as servers
from workers.log import configure
from workers.reasons import Reason
from workers.store.sql import aware_utc

app = typer.Typer(help="Record send bursts and replay them against a test environment.")


@app.command("record")
def record(
    out: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    synthetic: Annotated[
        int | None, typer.Option(min=1, help="Make a realistic burst of this many sends.")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Length of a synthetic burst.")] = 10.0,
    since: Annotated[
        dt.datetime | None, typer.Option(help="Record cases received from (UTC).")
    ] = None,
    until: Annotated[dt.datetime | None, typer.Option(help="... until (UTC).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of a synthetic burst.")] = 1177,
    database: DatabaseOption = None,
) -> None:
    """Record a burst: from the cases table (--since/--until) or synthetic (--synthetic N)."""
    if synthetic:
        sends = record_synthetic(synthetic, seconds, seed=seed)
    elif since is not None:
        settings = settings_from(
            None, database, require=(servers.DATABASE,), existing_database=True
        )
        end = until or dt.datetime.now(dt.UTC)
        sends = record_from_database(
            settings.database_url,
            since=aware_utc(since),
            until=aware_utc(end),
        )
    else:
        fail(
            Reason.USAGE_ERROR,
            "say what to record: --synthetic N, or --since TIME [--until TIME]",
        )
    written = write_recording(out, sends)
    span = sends[-1].t if sends else 0.0
    typer.echo(f"recorded {written} sends over {span:.1f} s to {out}")


@app.command("replay")
def replay_command(
    recording: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    speedup: Annotated[float, typer.Option(min=0.001, help="Replay this many times faster.")] = 1.0,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Replay at this many sends/s instead.")
    ] = None,
    latency_ms: Annotated[float, typer.Option(min=0, help="Simulated provider latency.")] = 0.0,
    failure_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Simulated provider failures (0..1).")
    ] = 0.0,
    processes: Annotated[int, typer.Option(min=1)] = 2,
    threads: Annotated[int, typer.Option(min=1)] = 8,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            help="Replay through the HTTP API at this URL (a running omvant serve) instead.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="OMVANT_API_TOKEN", help="API key token for --http."),
    ] = None,
    clinic: Annotated[
        str | None, typer.Option("--clinic", help="With --http: send every case for this clinic.")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the cases to settle.")
    ] = 1800.0,
    as_json: JsonOption = False,
) -> None:
    """Replay a recording against worker processes with simulated providers, or through a
    running HTTP API (--http URL --token TOKEN); report figures."""
    say = None if as_json else (lambda m: typer.echo(m, err=True))
    if http is not None:
        if not token:
            fail(Reason.USAGE_ERROR, "--http needs an API key token: --token or OMVANT_API_TOKEN")
        from producers.http_replay import replay_http

        try:
            sends = read_recording(recording)
        except RecordingError as exc:
            fail(Reason.MALFORMED_MESSAGE, str(exc), coded=True)
        figures = replay_http(
            http,
            token,
            sends,
            speedup=speedup,
            rate=rate,
            clinic=clinic,
            concurrency=threads,
            timeout=timeout,
            say=say,
        )
        _report(figures, as_json)
        return
    settings = settings_from(broker, database, require=(servers.BROKER, servers.DATABASE))
    if settings.broker_url.startswith("memory"):
        fail(Reason.USAGE_ERROR, "replay needs a real broker: --broker amqp://... or redis://...")
    settings = settings.model_copy(
        update={"sim_latency_ms": latency_ms, "sim_failure_rate": failure_rate}
    )
    configure("WARNING")
    try:
        sends = read_recording(recording)
    except RecordingError as exc:
        fail(Reason.MALFORMED_MESSAGE, str(exc), coded=True)
    figures = replay(
        settings,
        sends,
        speedup=speedup,
        rate=rate,
        processes=processes,
        threads=threads,
        timeout=timeout,
        say=say,
    )
    _report(figures, as_json)


def _report(figures: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        typer.echo(f"{key}: {value}")
