"""``omvant dispatch`` and ``omvant batches``: high-volume dispatches and their live progress."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from producers.cli.options import BrokerOption, DatabaseOption, JsonOption, settings_from
from producers.client import OmvantClient
from producers.dispatch_file import DispatchFileError, RowError, count_rows, read_recipients
from producers.precheck import REACHABLE, precheck
from workers.identity import parse_identity
from workers.log import configure, mask_identity_numbers
from workers.store.batches import BatchExists, BatchNotFound, BatchTransitionRefused

batches_app = typer.Typer(help="Dispatches (batches): progress, pause, resume, cancel.")

TemplateOption = Annotated[str, typer.Option("--template", help="Template id to send.")]
ClinicOption = Annotated[str, typer.Option("--clinic", help="HSA-id of the sending clinic.")]
SenderOption = Annotated[str, typer.Option("--sender", help="HSA-id of the sender.")]


def _bar(console: Console, transient: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


class RepeatCounter:
    """Counts the lines that name a resident an earlier line named already (each line becomes
    a case of its own, so the resident would get the message once per line)."""

    def __init__(self) -> None:
        self.count = 0
        self._seen: set[str] = set()

    def watch(self, rows: Iterable[Any]) -> Iterator[Any]:
        """Pass ``rows`` through, counting repeated residents."""
        for row in rows:
            number = getattr(row, "personnummer", None)
            if isinstance(number, str):
                key = parse_identity(number.strip()).normalized or number.strip()
                if key in self._seen:
                    self.count += 1
                else:
                    self._seen.add(key)
            yield row


def dispatch(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSONL list.")],
    template: TemplateOption,
    clinic: ClinicOption,
    sender: SenderOption,
    name: Annotated[str | None, typer.Option("--name", help="Name of the dispatch.")] = None,
    batch_id: Annotated[
        str | None, typer.Option("--batch-id", help="Choose the batch id (default: new).")
    ] = None,
    fragment: Annotated[
        list[str] | None, typer.Option("--fragment", help="Template fragment (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Pre-check every recipient; send nothing.")
    ] = False,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one template to every resident in FILE as one batch, with a progress bar."""
    settings = settings_from(broker, database)
    configure("WARNING")
    console = Console(stderr=True)
    try:
        total = count_rows(file)
        rows = read_recipients(file)
        if dry_run:
            from workers.bootstrap import build_context
            from workers.broker import build_broker

            ctx = build_context(settings, build_broker("memory://"))
            repeats = RepeatCounter()
            with _bar(console, as_json) as bar:
                task = bar.add_task("pre-checking recipients", total=total)
                counts = precheck(
                    repeats.watch(rows),
                    ctx.directory,
                    template_id=template,
                    clinic_hsa_id=clinic,
                    sender_hsa_id=sender,
                    progress=lambda n: bar.advance(task, n),
                )
            reachable = counts.pop(REACHABLE, 0)
            result: dict[str, Any] = {
                "recipients": sum(counts.values()) + reachable,
                "reachable": reachable,
                "not_reachable": dict(sorted(counts.items())),
                "listed_again": repeats.count,
            }
            if as_json:
                typer.echo(json.dumps(result))
                return
            table = Table(title=f"dry run of {file.name}: nothing was sent")
            table.add_column("recipients")
            table.add_column("count", justify="right")
            table.add_row("reachable", str(result["reachable"]))
            for reason, count in result["not_reachable"].items():
                table.add_row(reason, str(count))
            table.add_row("total", str(result["recipients"]))
            table.add_row("of them listed more than once (each line is a case)", str(repeats.count))
            Console().print(table)
            return
        if settings.broker_url.startswith("memory"):
            typer.echo("dispatch needs a real broker: --broker amqp://... or redis://...", err=True)
            raise typer.Exit(2)
        errors: list[RowError] = []

        def recipients() -> Any:
            for row in rows:
                if isinstance(row, RowError):
                    errors.append(row)
                else:
                    yield row

        with OmvantClient(settings) as client, _bar(console, as_json) as bar:
            task = bar.add_task("enqueuing", total=total)
            started = time.monotonic()
            batch = client.dispatch(
                recipients(),
                template_id=template,
                clinic_hsa_id=clinic,
                sender_hsa_id=sender,
                total=total,
                name=name,
                batch_id=batch_id,
                fragments=fragment or [],
                progress=lambda n: bar.advance(task, n),
                on_invalid=lambda i, d: errors.append(RowError(i + 1, "invalid-payload", d)),
            )
            seconds = time.monotonic() - started
    except (DispatchFileError, BatchExists) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for error in errors[:50]:
        typer.echo(
            f"line {error.line}: {error.reason}: {mask_identity_numbers(error.detail)}", err=True
        )
    summary = {
        "batch_id": batch.id,
        "enqueued": batch.enqueued,
        "invalid_lines": len(errors),
        "seconds": round(seconds, 3),
        "cases_per_s": round(batch.enqueued / seconds, 1) if seconds > 0 else None,
        "lane": batch.lane,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"batch {batch.id}: {batch.enqueued} cases enqueued in {summary['seconds']} s "
            f"({summary['cases_per_s']} cases/s), {len(errors)} invalid lines; "
            f"follow it with: omvant batches show {batch.id} --follow"
        )


def _client(broker: str | None, database: str | None) -> OmvantClient:
    configure("WARNING")
    settings = settings_from(broker, database)
    from workers.broker import build_broker

    return OmvantClient(settings, broker=build_broker("memory://"))


def _progress_table(figures: dict[str, Any]) -> Table:
    running_done = figures["finished"] and figures["status"] == "running"
    status = "finished" if running_done else figures["status"]
    table = Table(title=f"batch {figures['id']} ({figures['name']}): {status}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("total", str(figures["total"]))
    table.add_row("enqueued", str(figures["enqueued"]))
    table.add_row("received", str(figures["received"]))
    for what in ("validated", "delivered", "notified", "read"):
        table.add_row(what, str(figures["reached"][what]))
    for reason, count in figures["rejected"].items():
        table.add_row(f"rejected: {reason}", str(count))
    table.add_row("failed", str(figures["failed"]))
    table.add_row("in flight", str(figures["in_flight"]))
    return table


@batches_app.command("list")
def list_batches(
    broker: BrokerOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """The newest dispatches with their progress."""
    with _client(broker, database) as client:
        figures = [client.batch(b.id) for b in client.batches()]
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table(title="dispatches")
    for column in ("id", "name", "status", "total", "settled", "notified", "rejected"):
        table.add_column(column)
    for f in figures:
        table.add_row(
            f["id"],
            f["name"],
            "finished" if f["finished"] and f["status"] == "running" else f["status"],
            str(f["total"]),
            str(f["settled"]),
            str(f["reached"]["notified"]),
            str(sum(f["rejected"].values())),
        )
    Console().print(table)


@batches_app.command("show")
def show(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Refresh live until every case is settled.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Stop following after this many s.")] = 3600.0,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """One dispatch's counts per state and per rejection reason (live with --follow, which
    also waits for a batch that is about to be created)."""
    with _client(broker, database) as client:
        deadline = time.monotonic() + timeout
        while True:
            try:
                figures = client.batch(batch_id)
                break
            except BatchNotFound:
                if not follow or time.monotonic() > deadline:
                    typer.echo(f"no batch {batch_id}", err=True)
                    raise typer.Exit(1) from None
                time.sleep(interval)
        if follow and as_json:
            while True:
                typer.echo(json.dumps(figures))
                if _done(figures) or time.monotonic() > deadline:
                    return
                time.sleep(interval)
                figures = client.batch(batch_id)
        if as_json:
            typer.echo(json.dumps(figures))
            return
        if not follow:
            Console().print(_progress_table(figures))
            return
        with Live(_progress_table(figures), refresh_per_second=4) as live:
            while not _done(figures) and time.monotonic() < deadline:
                time.sleep(interval)
                figures = client.batch(batch_id)
                live.update(_progress_table(figures))


def _done(figures: dict[str, Any]) -> bool:
    return bool(
        (figures["in_flight"] <= 0 and figures["enqueued"] >= figures["total"])
        or (
            (figures["status"] == "cancelled" and figures["received"] >= figures["enqueued"])
            and figures["settled"] >= figures["received"]
        )
    )


def _steer(batch_id: str, action: str, broker: str | None, database: str | None) -> None:
    with _client(broker, database) as client:
        try:
            batch = getattr(client, action)(batch_id)
        except BatchNotFound:
            typer.echo(f"no batch {batch_id}", err=True)
            raise typer.Exit(1) from None
        except BatchTransitionRefused as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    typer.echo(f"batch {batch.id}: {batch.status.value}")


BatchArg = Annotated[str, typer.Argument(help="The batch id.")]


@batches_app.command("pause")
def pause(batch_id: BatchArg, broker: BrokerOption = None, database: DatabaseOption = None) -> None:
    """Hold the batch's cases in flight (they wait on their lane) until resumed."""
    _steer(batch_id, "pause", broker, database)


@batches_app.command("resume")
def resume(
    batch_id: BatchArg, broker: BrokerOption = None, database: DatabaseOption = None
) -> None:
    """Let a paused batch move on."""
    _steer(batch_id, "resume", broker, database)


@batches_app.command("cancel")
def cancel(
    batch_id: BatchArg, broker: BrokerOption = None, database: DatabaseOption = None
) -> None:
    """Reject every case of the batch not yet delivered, with reason batch-cancelled."""
    _steer(batch_id, "cancel", broker, database)
