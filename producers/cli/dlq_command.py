"""``omvant dlq``: failed messages you can understand and put right (issue 12).

Thin over ``workers/failures.py`` (the view) and ``workers/replay.py`` (replay and purge): the
web console calls the same functions. Every action is audited (``omvant dlq audit``); ``show``
is also written to the access log, with whether personnummer were shown.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from producers.cli.errors import fail, note
from producers.cli.options import (
    BrokerOption,
    DatabaseOption,
    JsonOption,
    WideOption,
    checked_engine,
    current_settings,
    folding_table,
    settings_from,
    table_console,
)
from workers import failures, replay
from workers.broker import build_broker
from workers.reasons import Note, Reason
from workers.store.cases import utcnow
from workers.store.failures import Selection, canonical_id
from workers.store.sql import aware_utc

app = typer.Typer(
    help="Dead letters and rejected messages: list, show, replay, purge.", no_args_is_help=True
)


def _complete_queue(incomplete: str) -> list[str]:
    """Shell completion of ``--queue``: the pipeline's queues and their lanes."""
    from workers.queues import all_queues

    return [q for q in all_queues() if q.startswith(incomplete)]


def _complete_reason(incomplete: str) -> list[str]:
    """Shell completion of ``--reason``: the documented reason codes."""
    return [r.value for r in Reason if r.value.startswith(incomplete)]


QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue", help="Only this queue (and its lanes).", autocompletion=_complete_queue
    ),
]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", help="Only this reason code.", autocompletion=_complete_reason),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only failures since: an ISO time, or an age like 30m, 2h, 7d."),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user", envvar="OMVANT_USER_HSA_ID", help="Who you are, for the audit (default: login)."
    ),
]

_AGE = re.compile(r"^([0-9]+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(value: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """``--since``: an ISO date or time (UTC unless it says), or an age (``30m``, ``2h``)."""
    if not value:
        return None
    match = _AGE.match(value.strip())
    try:
        if match:
            return (now or utcnow()) - dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        parsed = dt.datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        fail(
            Reason.INVALID_SINCE, "--since takes an ISO time or an age like 30m, 2h, 7d", coded=True
        )
    return aware_utc(parsed)


def _who(user: str | None) -> str:
    return user or f"login:{getpass.getuser()}"


def _prefix() -> str:
    """The queue prefix of the settings the command built (built here if not yet)."""
    return (current_settings() or settings_from()).queue_prefix


def _engine(database: str | None, *, existing_database: bool = False) -> Any:
    settings = settings_from(None, database, existing_database=existing_database)
    return checked_engine(settings.database_url)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@app.command("list")
def list_(
    queue: QueueOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    records: Annotated[
        bool, typer.Option("--records", help="One line per record instead of groups.")
    ] = False,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Pending failures grouped by queue and reason, with counts and the oldest age.

    Queue names, reasons and ids are never cut short (``dlq replay --queue/--reason`` take
    them): cells wrap at the terminal's width, and ``--wide`` prints one line per row.
    """
    engine = _engine(database, existing_database=True)
    selection = Selection(queue=queue, reason=reason, since=since_time(since), prefix=_prefix())
    if records:
        rows = failures.listing(engine, selection)
        if as_json:
            typer.echo(json.dumps({"records": rows}, indent=2))
            return
        table = folding_table(
            "", ("id", "kind", "queue", "reason", "cases", "attempts", "last failed", "status")
        )
        for r in rows:
            table.add_row(
                r["id"], r["kind"], r["queue"], r["reason"], str(r["cases"]),
                str(r["attempts"]), r["last_failed_at"][:19], r["status"],
            )  # fmt: skip
        table_console(wide=wide).print(table)
        return
    found = failures.summary(engine, selection)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found["groups"]:
        typer.echo("no pending failures")
        return
    table = folding_table("", ("queue", "reason", "kind", "records", "cases", "oldest"))
    for g in found["groups"]:
        table.add_row(
            g["queue"], g["reason"], g["kind"], str(g["count"]), str(g["cases"]),
            _age(g["oldest_age_seconds"]),
        )  # fmt: skip
    table_console(wide=wide).print(table)
    typer.echo(f"{found['total']} pending; omvant dlq show ID, omvant dlq replay --reason R")


@app.command("show")
def show(
    failure_id: Annotated[str, typer.Argument(metavar="ID", help="F<n> (or n), or R<n>.")],
    show_personnummer: Annotated[
        bool,
        typer.Option(
            "--show-personnummer",
            help="Show personnummer and message text in full (written to the access log).",
        ),
    ] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """One record in full: where, why, the redacted traceback, the (masked) body."""
    engine = _engine(database, existing_database=True)
    try:
        found = failures.show(
            engine,
            failure_id,
            who=_who(user),
            show_personnummer=show_personnummer,
            prefix=_prefix(),
        )
    except ValueError as exc:
        fail(Reason.INVALID_ID, str(exc), coded=True)
    if found is None:
        fail(Reason.NOT_FOUND, f"no failure {failure_id}", 1)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for key, value in found.items():
        if key in ("traceback", "body"):
            continue
        typer.echo(f"{key:>18}: {value}")
    if found["traceback"]:
        typer.echo("\ntraceback (identity numbers masked):\n" + found["traceback"])
    typer.echo("\nbody:\n" + json.dumps(found["body"], indent=2, ensure_ascii=False))


def _selection(
    ids: list[str] | None, reason: str | None, queue: str | None, every: bool, since: str | None
) -> Selection:
    if ids and (reason or queue or every):
        fail(
            Reason.USAGE_ERROR,
            "name records by ID or select them by --reason/--queue/--all, not both",
        )
    if ids:
        for given in ids:
            try:
                canonical_id(given)
            except ValueError as exc:
                fail(Reason.INVALID_ID, str(exc), coded=True)
        return replace(replay.selected(ids), prefix=_prefix())
    if not (reason or queue or every):
        fail(Reason.USAGE_ERROR, "say which: ID ..., --reason R, --queue Q or --all")
    return Selection(queue=queue, reason=reason, since=since_time(since), prefix=_prefix())


def _rate(value: str | None) -> float | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/s)?\s*", value)
    if not match or float(match[1]) <= 0:
        fail(Reason.INVALID_RATE, "--rate takes messages per second, like 50/s", coded=True)
    return float(match[1])


def _print_report(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    done = "in the dry run" if data["dry_run"] else "done"
    typer.echo(f"{data['action']}: {data['records']} record(s), {data['cases']} case(s) {done}")
    for result, count in sorted(data["totals"].items()):
        typer.echo(f"  {result}: {count}")
    for outcome in data["outcomes"]:
        if outcome["result"] not in ("replayed", "purged", "would-replay", "would-purge"):
            typer.echo(f"  {outcome['id']} {outcome['result']}: {outcome['detail']}")
    if data["dead_letter_copies_removed"]:
        typer.echo(f"  dead-letter queue copies removed: {data['dead_letter_copies_removed']}")


IdsArgument = Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Record ids.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every pending record.")]


@app.command("replay")
def replay_(
    ids: IdsArgument = None,
    reason: ReasonOption = None,
    queue: QueueOption = None,
    every: AllOption = False,
    since: SinceOption = None,
    rate: Annotated[
        str | None, typer.Option("--rate", help="At most N messages per second, like 50/s.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent.")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Put failed messages back on their queue: mark, enqueue, confirm (safe to run twice)."""
    selection = _selection(ids, reason, queue, every, since)
    per_second = _rate(rate)
    settings = settings_from(broker, database)
    engine = _engine(database)
    live = build_broker(settings.broker_url)
    try:
        with Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
            console=Console(stderr=True), disable=as_json,
        ) as bar:  # fmt: skip
            task = bar.add_task("replay", total=None)
            report = replay.replay(
                engine,
                live,
                selection,
                who=_who(user),
                prefix=settings.queue_prefix,
                dry_run=dry_run,
                rate=per_second,
                progress=lambda _o: bar.advance(task),
                settings=settings,
            )
    finally:
        live.close()
    data = report.as_dict()
    _print_report(data, as_json)
    if data["totals"].get("failed") or data["totals"].get("unknown"):
        raise typer.Exit(1)


@app.command("purge")
def purge(
    ids: IdsArgument = None,
    reason: ReasonOption = None,
    queue: QueueOption = None,
    every: AllOption = False,
    since: SinceOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be purged.")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Close failure records for good (and drop their bodies); cases stay as they are."""
    selection = _selection(ids, reason, queue, every, since)
    settings = settings_from(broker, database)
    engine = _engine(database)
    if not dry_run and not yes:
        count = len(failures.listing(engine, selection, limit=100_000))
        if count == 0:
            note(Note.NOTHING_TO_PURGE, "nothing to purge")
            return
        if not typer.confirm(f"purge {count} record(s)? This cannot be undone", err=True):
            fail(Reason.ABORTED, "nothing purged", 1)
    live = build_broker(settings.broker_url)
    try:
        report = replay.purge(
            engine, live, selection, who=_who(user), prefix=settings.queue_prefix, dry_run=dry_run
        )
    finally:
        live.close()
    data = report.as_dict()
    _print_report(data, as_json)
    if data["totals"].get("unknown"):
        raise typer.Exit(1)


@app.command("audit")
def audit(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N entries.")] = 50,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Who did what to the failures, when, and how many."""
    entries = failures.audit_log(_engine(database, existing_database=True), limit=limit)
    if as_json:
        typer.echo(json.dumps({"entries": entries}, indent=2))
        return
    table = folding_table("", ("at", "who", "action", "dry run", "records", "outcome"))
    for e in entries:
        table.add_row(
            (e["at"] or "")[:19], e["who"], e["action"], "yes" if e["dry_run"] else "",
            str(e["count"]),
            json.dumps(e["outcome"].get("totals", e["outcome"]))
            + (" (unfinished)" if e["outcome"].get("unfinished") else ""),
        )  # fmt: skip
    Console().print(table)
