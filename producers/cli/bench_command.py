"""``omvant bench``: the benchmark that proves the speed (see ``producers/bench.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from producers.bench import BenchConfig, run_bench
from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from workers import server_probe as servers
from workers.log import configure

KEYS = (
    "noop_msgs_per_s",
    "pipeline_cases_per_s",
    "ratio",
    "pipeline_p99_ms",
    "urgent_p50_ms",
    "urgent_p99_ms",
    "broker",
    "cases",
    "complete",
)


def bench(
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    cases: Annotated[int, typer.Option(min=1, help="Cases in the dispatch (b).")] = 100_000,
    noop_messages: Annotated[
        int | None, typer.Option(min=1, help="Messages for the no-op actor (a); default --cases.")
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker process.")] = 8,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Cases per message.")] = None,
    log_dir: Annotated[Path, typer.Option(help="Where worker logs go.")] = Path("bench-logs"),
    as_json: JsonOption = False,
    details: Annotated[bool, typer.Option(help="With --json: every figure measured.")] = False,
) -> None:
    """Measure dramatiq's no-op rate, the pipeline's rate and latencies, and urgent latency."""
    # the benchmark creates its own database: only the broker must be there already
    settings = settings_from(broker, database, require=(servers.BROKER,))
    if settings.broker_url.startswith("memory"):
        typer.echo("omvant bench needs a real broker: --broker amqp://... or redis://...", err=True)
        raise typer.Exit(2)
    if chunk_size:
        settings = settings.model_copy(update={"chunk_size": chunk_size})
    configure("WARNING")
    config = BenchConfig(
        cases=cases,
        noop_messages=noop_messages or cases,
        processes=processes,
        threads=threads,
        log_dir=log_dir,
    )
    figures = run_bench(
        settings, config, say=None if as_json else lambda m: typer.echo(m, err=True)
    )
    if as_json:
        shown = figures if details else {k: figures[k] for k in KEYS}
        typer.echo(json.dumps(shown))
    else:
        for key, value in figures.items():
            typer.echo(f"{key}: {value}")
    if not figures["complete"]:
        settled = figures["details"]["settled"]
        typer.echo(
            f"incomplete: {settled} of {figures['cases']} cases settled before the timeout; "
            "the rates above are not a measurement of the whole dispatch",
            err=True,
        )
        raise typer.Exit(1)
