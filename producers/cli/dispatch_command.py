"""``omvant dispatch`` and ``omvant batches``: high-volume dispatches and their live progress."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from producers.cli.errors import fail, note
from producers.cli.options import (
    BrokerOption,
    DatabaseOption,
    JsonOption,
    WideOption,
    folding_table,
    settings_from,
    table_console,
)
from producers.client import OmvantClient
from producers.dispatch_attachments import predict_problems, read_files, store_and_check
from producers.dispatch_file import (
    DispatchFileError,
    RowError,
    check_header,
    count_rows,
    read_recipients,
)
from producers.dispatch_records import DispatchRecords
from producers.precheck import DispatchTerms, Prediction, predict
from workers import server_probe as servers
from workers.hsa import is_hsa_id
from workers.identity import parse_identity
from workers.log import configure, mask_identity_numbers
from workers.reasons import Note, Reason
from workers.settings import Settings
from workers.store.batches import BatchExists, BatchNotFound, BatchTransitionRefused
from workers.store.engine import check_schema

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
        # under --json (transient) stderr carries only JSON lines: no bar at all; without it a
        # bar off a terminal is drawn once, at the end
        disable=transient,
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


AttachmentOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--attachment",
        exists=True,
        dir_okay=False,
        help="A pdf/jpg/png for every case (repeatable): stored and checked once.",
    ),
]


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
    attachment: AttachmentOption = None,
    urgent: Annotated[
        bool, typer.Option("--urgent", help="Send on the urgent lanes (ahead of bulk).")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Predict what each line would come to; send nothing."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Send even when the dry run says every case is rejected."),
    ] = False,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one template to every resident in FILE as one batch, with a progress bar.

    Before sending, the list is run through the pipeline's own checks (what --dry-run prints);
    when not one case would be sent, the dispatch does not start (exit 1) unless --force.
    """
    configure("WARNING")
    for option, value in (("--clinic", clinic), ("--sender", sender)):
        if not is_hsa_id(value):  # one refusal, not one invalid-payload per line
            fail(
                Reason.INVALID_HSA_ID,
                f"{option} must be an HSA-id like SE2321000016-ABCD",
                as_json=as_json,
                coded=True,
            )
    needs = [servers.DATABASE, servers.DIRECTORY, servers.REDIS]
    if attachment:
        needs += [servers.CLAMD, servers.BLOB_STORE]
    if not dry_run:
        needs.insert(0, servers.BROKER)
    settings = settings_from(broker, database)
    if not dry_run and settings.broker_url.startswith("memory"):
        fail(
            Reason.USAGE_ERROR,
            "dispatch needs a real broker: --broker amqp://... or redis://...",
            as_json=as_json,
        )
    servers.require(settings, needs)
    console = Console(stderr=True)
    from workers.attachments.limits import Limits
    from workers.bootstrap import build_context
    from workers.broker import build_broker

    ctx = build_context(settings, build_broker("memory://"))
    try:
        check_schema(ctx.engine)
        if batch_id is not None:  # before any bar, and the dry run predicts it as well
            _refuse_a_taken_batch_id(ctx.engine, batch_id, clinic, dry_run, as_json)
        check_header(file)  # before the batch is made: a bad header sends nothing, forced or not
        total = count_rows(file)
        if total == 0:  # a header alone: nothing to predict, and nothing to send, forced or not
            fail(
                Reason.LIST_EMPTY,
                f"{file} names no recipients (a header alone, or no lines): nothing to send",
                1,
                as_json=as_json,
            )
        limits = Limits.from_settings(settings)
        files = read_files(attachment or [], limits)
        refs: list[Any] = []
        if dry_run:
            problems = predict_problems(files, limits, ctx)
        else:
            refs, problems = store_and_check(files, limits, ctx, clinic)
        terms = DispatchTerms(template, clinic, sender, tuple(fragment or ()), problems)
        prediction: Prediction | None = None
        repeats = RepeatCounter()
        if dry_run or not force:
            with _bar(console, as_json) as bar:
                task = bar.add_task("checking every line", total=total)
                prediction = predict(
                    repeats.watch(read_recipients(file)),
                    terms,
                    directory=ctx.directory,
                    templates=ctx.templates,
                    catalogue=ctx.catalogue,
                    today=ctx.today(),
                    max_body_chars=settings.max_body_chars,
                    progress=lambda n: bar.advance(task, n),
                )
        if dry_run:
            assert prediction is not None
            _print_prediction(file, prediction, repeats.count, as_json)
            raise typer.Exit(1 if prediction.rejected else 0)
        if prediction is not None and prediction.all_rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in prediction.rejected.most_common(3))
            fail(
                Reason.DISPATCH_WOULD_REJECT_ALL,
                f"not one of the {prediction.lines} lines would be sent ({reasons}); "
                "see omvant dispatch --dry-run, or send anyway with --force",
                1,
                as_json=as_json,
            )
        if prediction is None:  # --force: forced past rejections, never into an empty batch
            _refuse_a_list_with_no_valid_line(file, terms, refs, urgent, batch_id, as_json)
        if prediction is not None and prediction.rejected:
            _warn_of_rejections(prediction, as_json)
        batch, errors, seconds = _send(
            settings, file, total, terms, refs, urgent, name, batch_id, console, as_json
        )
    except DispatchFileError as exc:
        fail(Reason.DISPATCH_LIST_UNREADABLE, str(exc), as_json=as_json)
    except BatchExists as exc:
        fail(exc.reason, str(exc), as_json=as_json, coded=True)
    finally:
        ctx.engine.dispose()
    for error in [] if as_json else errors[:50]:  # with --json: invalid_lines, stderr clean
        note(
            Note.LINE_INVALID,
            f"line {error.line}: {error.reason}: {mask_identity_numbers(error.detail)}",
        )
    summary = {
        "batch_id": batch.id,
        "enqueued": batch.enqueued,
        "invalid_lines": len(errors),
        "seconds": round(seconds, 3),
        "cases_per_s": round(batch.enqueued / seconds, 1) if seconds > 0 else None,
        "lane": batch.lane,
        "priority": "urgent" if urgent else "normal",
        "attachments": [ref.model_dump() for ref in refs],
        "predicted": prediction.as_dict() if prediction else None,
    }
    if summary["predicted"]:
        summary["predicted"].pop("lines", None)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"batch {batch.id}: {batch.enqueued} cases enqueued in {summary['seconds']} s "
            f"({summary['cases_per_s']} cases/s), {len(errors)} invalid lines; "
            f"follow it with: omvant batches show {batch.id} --follow"
        )


def _refuse_a_taken_batch_id(
    engine: Any, batch_id: str, clinic: str, dry_run: bool, as_json: bool
) -> None:
    """``--batch-id`` naming a batch that exists: refused (``batch-exists``, or
    ``batch-not-owned``) before anything is checked or drawn; by the dry run too, with its exit
    status for a refusal (1), the dispatch with 2."""
    from workers.store.batches import clinics_of

    with engine.connect() as conn:
        taken = clinics_of(conn, [batch_id])
    if batch_id in taken:
        exc = BatchExists(batch_id, other_clinic=taken[batch_id] != clinic)
        fail(exc.reason, str(exc), 1 if dry_run else 2, as_json=as_json, coded=True)


def _refuse_a_list_with_no_valid_line(
    file: Path,
    terms: DispatchTerms,
    refs: list[Any],
    urgent: bool,
    batch_id: str | None,
    as_json: bool,
) -> None:
    """``--force`` sends the lines the pipeline will reject, but when not one line of the list
    can be read as a recipient, or make a valid case (the client's own per-line check,
    ``invalid-payload``), there is nothing to send: refused (exit 1) before a batch is made,
    not an empty batch (``enqueued 0``)."""
    made = DispatchRecords(
        clinic_hsa_id=terms.clinic_hsa_id,
        sender_hsa_id=terms.sender_hsa_id,
        template_id=terms.template_id,
        fragments=terms.fragments,
        attachments=refs,
        priority="urgent" if urgent else "normal",
        batch_id=batch_id or "dispatch-0000000000000000",  # the client's own shape of id
    )
    errors: Counter[str] = Counter()
    for index, row in enumerate(read_recipients(file)):
        if isinstance(row, RowError):
            errors[row.reason] += 1
            continue
        try:
            made.record(row.personnummer, row.fields, f"{made.shared['batch_id']}:{index}")
        except ValidationError:
            errors[Reason.INVALID_PAYLOAD] += 1
            continue
        return
    reasons = ", ".join(f"{r} {n}" for r, n in errors.most_common(3))
    fail(
        Reason.DISPATCH_WOULD_REJECT_ALL,
        f"not one of the {sum(errors.values())} lines of {file} can be sent ({reasons}): "
        "nothing to send, forced or not",
        1,
        as_json=as_json,
    )


def _warn_of_rejections(prediction: Prediction, as_json: bool) -> None:
    """One line before enqueuing: how many of the cases the dry run says will be rejected, and
    why (reason codes), so that a dispatch sent anyway does not surprise its operator."""
    rejected = sum(prediction.rejected.values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(prediction.rejected.items()))
    note(
        Note.DISPATCH_WILL_REJECT_SOME,
        f"warning: {rejected} of the {prediction.lines} cases will be rejected ({reasons}); "
        "sending the rest (omvant dispatch --dry-run lists the lines)",
        as_json=as_json,
        rejected=rejected,
        lines=prediction.lines,
        reasons=dict(sorted(prediction.rejected.items())),
    )


def _send(
    settings: Settings,
    file: Path,
    total: int,
    terms: DispatchTerms,
    refs: list[Any],
    urgent: bool,
    name: str | None,
    batch_id: str | None,
    console: Console,
    as_json: bool,
) -> tuple[Any, list[RowError], float]:
    errors: list[RowError] = []

    def recipients() -> Any:
        for row in read_recipients(file):
            if isinstance(row, RowError):
                errors.append(row)
            else:
                yield row

    with OmvantClient(settings) as client, _bar(console, as_json) as bar:
        task = bar.add_task("enqueuing", total=total)
        started = time.monotonic()
        batch = client.dispatch(
            recipients(),
            template_id=terms.template_id,
            clinic_hsa_id=terms.clinic_hsa_id,
            sender_hsa_id=terms.sender_hsa_id,
            total=total,
            name=name,
            batch_id=batch_id,
            fragments=terms.fragments,
            attachments=refs,
            priority="urgent" if urgent else "normal",
            progress=lambda n: bar.advance(task, n),
            on_invalid=lambda i, d: errors.append(RowError(i + 1, "invalid-payload", d)),
        )
        seconds = time.monotonic() - started
    return batch, errors, seconds


def _print_prediction(file: Path, prediction: Prediction, repeats: int, as_json: bool) -> None:
    result = prediction.as_dict()
    result["listed_again"] = repeats
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    table = Table(title=f"dry run of {file.name}: nothing was sent")
    table.add_column("what")
    table.add_column("cases", justify="right")
    table.add_row("would be sent", str(prediction.would_send))
    table.add_row("reachable residents", str(prediction.reachable))
    for reason, count in sorted(prediction.rejected.items()):
        table.add_row(f"rejected: {reason}", str(count))
    table.add_row("total", str(prediction.lines))
    table.add_row("of them listed more than once (each line is a case)", str(repeats))
    Console().print(table)
    for verdict in prediction.refusals[:50]:
        typer.echo(
            f"line {verdict.line}: {verdict.reason}: {mask_identity_numbers(verdict.detail)}"
        )
    if len(prediction.refusals) > 50 or result["lines_left_out"]:
        typer.echo("(more lines would be rejected: --json lists the first 1,000)")


def _client(
    broker: str | None, database: str | None, *, existing_database: bool = False
) -> OmvantClient:
    configure("WARNING")
    settings = settings_from(
        broker, database, require=(servers.DATABASE,), existing_database=existing_database
    )
    from workers.broker import build_broker

    return OmvantClient(settings, broker=build_broker("memory://"))


def _heading(figures: dict[str, Any]) -> str:
    """``batch ID (NAME)``, printed as a line of its own: a table's title would wrap the id at
    the terminal's width, and an operator copies it into the next command."""
    return f"batch {figures['id']} ({figures['name']})"


def _progress_table(figures: dict[str, Any], *, title: str | None = None) -> Table:
    table = Table(title=title)
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
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """The newest dispatches with their progress (status: running, paused, cancelled,
    finished)."""
    with _client(broker, database, existing_database=True) as client:
        figures = [client.batch(b.id) for b in client.batches()]
    if as_json:
        typer.echo(json.dumps(figures))
        return
    rows = folding_table(
        "dispatches", ("id", "name", "status", "total", "settled", "notified", "rejected")
    )
    for f in figures:
        rows.add_row(
            f["id"],
            f["name"],
            f["status"],
            str(f["total"]),
            str(f["settled"]),
            str(f["reached"]["notified"]),
            str(sum(f["rejected"].values())),
        )
    table_console(wide=wide).print(rows)


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
    with _client(broker, database, existing_database=True) as client:
        deadline = time.monotonic() + timeout
        while True:
            try:
                figures = client.batch(batch_id)
                break
            except BatchNotFound:
                if not follow or time.monotonic() > deadline:
                    fail(Reason.NOT_FOUND, f"no batch {batch_id}", 1)
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
            typer.echo(f"{_heading(figures)}: {figures['status']}")
            Console().print(_progress_table(figures))
            return
        typer.echo(_heading(figures))

        def live_table() -> Table:
            return _progress_table(figures, title=f"status: {figures['status']}")

        with Live(live_table(), refresh_per_second=4) as live:
            while not _done(figures) and time.monotonic() < deadline:
                time.sleep(interval)
                figures = client.batch(batch_id)
                live.update(live_table())


def _done(figures: dict[str, Any]) -> bool:
    return bool(
        (figures["in_flight"] <= 0 and figures["enqueued"] >= figures["total"])
        or (
            (figures["status"] == "cancelled" and figures["received"] >= figures["enqueued"])
            and figures["settled"] >= figures["received"]
        )
    )


def _steer(
    batch_id: str, action: str, broker: str | None, database: str | None, as_json: bool
) -> None:
    with _client(broker, database) as client:
        try:
            batch = getattr(client, action)(batch_id)
        except BatchNotFound:
            fail(Reason.NOT_FOUND, f"no batch {batch_id}", 1, as_json=as_json)
        except BatchTransitionRefused as exc:
            fail(Reason.BATCH_TRANSITION_REFUSED, str(exc), 1, as_json=as_json)
    if as_json:
        typer.echo(json.dumps({"id": batch.id, "status": batch.status.value}))
    else:
        typer.echo(f"batch {batch.id}: {batch.status.value}")


BatchArg = Annotated[str, typer.Argument(help="The batch id.")]


STEERING = {
    "pause": "Hold the batch's cases in flight (they wait on their lane) until resumed.",
    "resume": "Let a paused batch move on.",
    "cancel": "Reject every case of the batch not yet delivered, with reason batch-cancelled.",
}
"""``omvant batches ACTION BATCH_ID``: the client's method of that name, and its help."""


def _steering_command(action: str) -> None:
    def steer(
        batch_id: BatchArg,
        broker: BrokerOption = None,
        database: DatabaseOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _steer(batch_id, action, broker, database, as_json)

    batches_app.command(action, help=STEERING[action])(steer)


for _action in STEERING:
    _steering_command(_action)
