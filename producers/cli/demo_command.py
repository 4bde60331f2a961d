"""``omvant demo``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from producers.demo import run_demo
from workers import server_probe as servers
from workers.log import configure


def demo(
    cases: Annotated[int, typer.Option("--cases", min=1, help="How many cases to send.")] = 1000,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated population.")] = None,
) -> None:
    """Run the whole pipeline on a realistic dispatch and print a summary.

    With no options it needs no servers: the in-process broker and SQLite, in the data folder
    OMVANT_HOME (default ~/.local/share/omvant).
    """
    settings = settings_from(broker, database, require=(servers.BROKER, servers.DATABASE))
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    configure("WARNING")
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as bar:
        task = bar.add_task("cases through the pipeline", total=cases)
        summary = run_demo(
            settings, count=cases, progress=lambda done, _total: bar.update(task, completed=done)
        )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(Console(), summary)
    if summary["in_flight"]:
        raise typer.Exit(1)


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title=f"Omvänt demo: {summary['cases']} cases in {summary['seconds']} s")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("delivered to the inbox", str(summary["delivered"]))
    table.add_row("notified by SMS", str(summary["notified"]["sms"]))
    table.add_row("notified by e-mail", str(summary["notified"]["email"]))
    table.add_row("read by the resident", str(summary["read"]))
    table.add_row("unread", str(summary["unread"]))
    table.add_row("answered (question templates)", str(summary.get("answered", 0)))
    for reason, count in summary["rejected"].items():
        table.add_row(f"rejected: {reason}", str(count))
    table.add_row("failed", str(summary["failed"]))
    table.add_row("dead-lettered messages", str(summary["dead_lettered"]))
    console.print(table)
    console.print(f"broker {summary['broker']}, database {summary['database']}")
    if summary["database"] == "sqlite":
        console.print(f"data folder (OMVANT_HOME): {summary['home']}")
