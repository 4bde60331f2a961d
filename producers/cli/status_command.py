"""``omvant status`` (one screen for on-call) and ``omvant exporter`` (Prometheus metrics).

Thin over ``workers/status.py`` and ``workers/exporter.py``.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live

from producers.cli.errors import note
from producers.cli.options import (
    BrokerOption,
    DatabaseOption,
    JsonOption,
    WideOption,
    checked_engine,
    folding_table,
    settings_from,
    table_console,
)
from workers import server_probe as servers
from workers import status as status_module
from workers.broker import build_broker
from workers.reasons import Note


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render(data: dict[str, Any]) -> Group:
    """The status screen."""
    # queue names, reasons and batch ids fold at a narrow terminal, never cut with an
    # ellipsis: on-call copies them into ``dlq replay --queue/--reason`` and ``batches show``
    queues = folding_table(
        f"queues ({data['broker']})",
        ("queue", "lane", "ready", "delayed", "dead letters", "consumers"),
    )
    for lane in data["queues"]:
        consumers = lane["consumers"]
        queues.add_row(
            lane["queue"], lane["lane"], str(lane["ready"]), str(lane["delayed"]),
            str(lane["dead_letters"]), "-" if consumers is None else str(consumers),
        )  # fmt: skip
    dead = folding_table(
        f"failures pending: {data['dead_letters']['total']}",
        ("queue", "reason", "kind", "records", "cases", "oldest"),
    )
    for g in data["dead_letters"]["groups"]:
        dead.add_row(
            g["queue"], g["reason"], g["kind"], str(g["count"]), str(g["cases"]),
            _age(g["oldest_age_seconds"]),
        )  # fmt: skip
    batches = folding_table(
        "dispatches in flight",
        ("batch", "name", "status", "settled", "total", "in flight", "failed"),
    )
    for b in data["batches"]:
        batches.add_row(
            b["id"], b["name"], b["status"], str(b["settled"]), str(b["total"]),
            str(b["in_flight"]), str(b["failed"]),
        )  # fmt: skip
    stuck = data["stuck"]["cases"]
    workers = "" if data["workers"] is None else f"; live workers: {data['workers']}"
    sweep = data["last_sweep"]
    waiting = data.get("oldest_waiting_seconds") or {}
    oldest = ", ".join(f"{queue} {_age(age)}" for queue, age in waiting.items()) or "none"
    footer = (
        f"oldest waiting: {oldest}\n"
        f"stuck cases: {sum(stuck.values())} "
        f"({', '.join(f'{k} {v}' for k, v in stuck.items() if v) or 'none'})"
        f"; last sweep: {sweep['at'] if sweep else 'not recorded'}{workers}; at {data['at'][:19]}"
    )
    return Group(queues, dead, batches, footer)


def status(
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds.")] = 2.0,
    wide: WideOption = False,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Queues and lanes, dead letters, dispatches in flight, stuck cases: one screen.

    Queue names, reasons and batch ids are never cut short: cells wrap at the terminal's
    width, and ``--wide`` prints one line per row.
    """
    # a broker that does not answer is said so, never shown as empty queues
    settings = settings_from(
        broker, database, require=(servers.BROKER, servers.DATABASE), existing_database=True
    )
    engine = checked_engine(settings.database_url)
    live_broker = build_broker(settings.broker_url)

    def read() -> dict[str, Any]:
        return status_module.snapshot(
            live_broker, engine, settings.queue_prefix, sweep_limits=settings.sweep_limits
        )

    try:
        if as_json and not watch:
            typer.echo(json.dumps(read(), indent=2, default=str))
            return
        if as_json:
            while True:
                typer.echo(json.dumps(read(), default=str))
                time.sleep(interval)
        console = table_console(wide=wide)
        if not watch:
            console.print(render(read()))
            return
        with Live(render(read()), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(interval)
                live.update(render(read()))
    except KeyboardInterrupt:
        pass
    finally:
        live_broker.close()


def exporter(
    port: Annotated[
        int, typer.Option("--port", envvar="OMVANT_EXPORTER_PORT", help="0: any free port.")
    ] = 9465,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Serve queue depths, failures, dispatches, stuck cases, notifications and latency."""
    from workers.exporter import build_registry, serve

    # at start a broker or database not there is one line and exit 2 (a supervisor restarts
    # it); once serving, one that goes away is omvant_exporter_up 0 and /healthz 503
    settings = settings_from(
        broker, database, require=(servers.BROKER, servers.DATABASE), existing_database=True
    )
    engine = checked_engine(settings.database_url)
    live_broker = build_broker(settings.broker_url)
    registry = build_registry(live_broker, engine, settings.queue_prefix, settings.sweep_limits)
    server = serve(registry, host, port)
    url = f"http://{host}:{server.server_port}/metrics"
    note(Note.LISTENING, f"omvant exporter on {url}", url=url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        live_broker.close()
