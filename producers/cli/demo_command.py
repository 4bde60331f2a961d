"""``omvant demo``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from producers.cli.errors import note
from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from producers.demo import demo_settings, run_demo
from workers import server_probe as servers
from workers.log import configure
from workers.reasons import Note


def demo(
    cases: Annotated[int, typer.Option("--cases", min=1, help="How many cases to send.")] = 1000,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated population.")] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Then serve the web console on the demo's data (Ctrl-C)."),
    ] = False,
    host: Annotated[str, typer.Option(help="With --serve: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="With --serve: port.")] = 8000,
) -> None:
    """Run the whole pipeline on a realistic dispatch and print a summary.

    With no options it needs no servers: the in-process broker and SQLite, in the data folder
    OMVANT_HOME (default ~/.local/share/omvant).
    With --serve the pipeline keeps running and the web console serves the demo's cases.
    """
    settings = settings_from(broker, database, require=(servers.BROKER, servers.DATABASE))
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    settings, ignored = demo_settings(settings)
    if ignored:
        note(
            Note.DEMO_OWNS_SETTINGS,
            f"the demo ignores {', '.join(ignored)}: it runs its own inbox events, queue prefix "
            "and simulators",
            ignored=ignored,
        )
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
        then = None
        if serve:
            from producers.web.demo_console import DemoLogin, serve_console

            def announce(url: str, logins: list[DemoLogin]) -> None:
                bar.stop()
                if as_json:  # stdout the summary, stderr one note: both machine-readable
                    if summary_holder:
                        typer.echo(json.dumps(summary_holder[0]))
                    note(
                        Note.LISTENING,
                        f"the web console runs at {url} (Ctrl-C ends it)",
                        url=url,
                        logins=[
                            {"username": x.username, "password": x.password, "roles": list(x.roles)}
                            for x in logins
                        ],
                    )
                    return
                if summary_holder:
                    _print_summary(Console(), summary_holder[0])
                console.print(f"\nThe web console runs at [bold]{url}[/bold] (Ctrl-C ends it).")
                for login in logins:
                    console.print(
                        f"  sign in as [bold]{login.username}[/bold] / {login.password}"
                        f"  ({', '.join(login.roles)})"
                    )

            summary_holder: list[dict[str, Any]] = []
            serving = serve_console(host, port, announce)

            def then(ctx: Any, summary: dict[str, Any]) -> None:
                summary_holder.append(summary)
                serving(ctx, summary)

        summary = run_demo(
            settings,
            count=cases,
            progress=lambda done, _total: bar.update(task, completed=done),
            then=then,
        )
    if serve:
        return
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
