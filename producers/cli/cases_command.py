"""``omvant cases``: the clinic's view of its cases, and the unread follow-up job.

A clinic sees only its own cases (the query layer filters by ``--clinic`` in SQL). Every attempt
is written to the access log (``workers.case_access``): who (``--user`` or
``OMVANT_USER_HSA_ID``), for which unit, when, which cases were asked for or shown and which
residents, and the outcome: a refused ``show`` and a wrong request (an HSA-id that is not one,
an unknown ``--status``) are logged too. Personnummer are masked (``19121212-****``) unless
``--show-personnummer`` is given; the access log records which.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from contracts.send_case import canonical_case_id
from producers.cli.errors import fail, note
from producers.cli.options import DatabaseOption, WideOption, settings_from, table_console
from workers import case_access
from workers import server_probe as servers
from workers.answer_seal import answer_seal
from workers.case_access import Reader, UsageError
from workers.identity import parse_identity
from workers.log import mask_identity_numbers
from workers.reasons import Note, Reason
from workers.settings import Settings
from workers.store import access_log, case_queries
from workers.store.engine import check_schema, make_engine

app = typer.Typer(help="The clinic's cases: sent by care, read / unread.", no_args_is_help=True)

ClinicOption = Annotated[
    str | None,
    typer.Option("--clinic", help="The clinic's HSA-id (required): only its cases are shown."),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="OMVANT_USER_HSA_ID",
        help="Your HSA-id, for the access log (required; or OMVANT_USER_HSA_ID).",
    ),
]
ShowPnrOption = Annotated[
    bool,
    typer.Option("--show-personnummer", help="Show personnummer in full (logged as such)."),
]


def open_store(settings: Settings) -> sa.Engine:
    """The system of record, whose schema must be up to date (this command never changes it).

    Raises
    ------
    SchemaOutdated
        Say ``omvant db upgrade``.
    """
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return engine


def _since(value: str | None, zone: str) -> dt.datetime | None:
    """``--since`` as a time.

    Raises
    ------
    UsageError
        ``invalid-date``.
    """
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError("invalid-date", "--since takes YYYY-MM-DD or an ISO date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(zone))


def _refuse(exc: UsageError) -> NoReturn:
    fail(exc.code, mask_identity_numbers(exc.message), 2, coded=True)


def _resident(number: str, show: bool) -> str:
    return number if show else mask_identity_numbers(number)


def _when(value: dt.datetime | None) -> str | None:
    """ISO time, or ``None`` (JSON null, an empty CSV cell) when it has not happened."""
    return value.isoformat(timespec="seconds") if value else None


def _record(row: case_queries.CaseRow, show: bool) -> dict[str, Any]:
    return {
        "case_id": row.case_id,
        "reference": row.reference,
        "status": case_queries.shown_status(row),
        "overdue": row.overdue,
        "state": row.state,
        "reason": row.reason,
        "template_id": row.template_id,
        "batch_id": row.batch_id,
        "resident": _resident(row.personnummer, show),
        "received_at": _when(row.received_at),
        "delivered_at": _when(row.delivered_at),
        "read_at": _when(row.read_at),
        "answered_at": _when(row.answered_at),
        "answer_kind": row.answer_kind,
        "channels_notified": ",".join(row.channels_notified),
    }


def _complete_status(incomplete: str) -> list[str]:
    """What shell completion offers for ``--status`` (the option stays text, so that an
    unknown status is refused, and access-logged, as given)."""
    return [s for s in case_queries.STATUSES if s.startswith(incomplete)]


def _complete_case_type(incomplete: str) -> list[str]:
    return [t for t in case_queries.CASE_TYPES if t.startswith(incomplete)]


StatusOption = Annotated[
    str | None,
    typer.Option(
        help=f"One of: {', '.join(case_queries.STATUSES)}.", autocompletion=_complete_status
    ),
]


ReferenceOption = Annotated[
    str | None,
    typer.Option("--reference", help="The producer's own id of the case (the case_id it sent)."),
]


@app.command("list")
def list_command(
    *,
    clinic: ClinicOption = None,
    user: UserOption = None,
    case_type: Annotated[
        str,
        typer.Option(
            "--type",
            help="Case type: sent-by-care (every Omvänt case).",
            autocompletion=_complete_case_type,
        ),
    ] = "sent-by-care",
    status: StatusOption = None,
    template: Annotated[str | None, typer.Option(help="Template id.")] = None,
    batch: Annotated[str | None, typer.Option(help="Batch id.")] = None,
    reference: ReferenceOption = None,
    since: Annotated[str | None, typer.Option(help="Received on or after (YYYY-MM-DD).")] = None,
    limit: Annotated[
        int, typer.Option(help=f"At most this many cases (1 to {case_access.MAX_LIMIT}).")
    ] = 1000,
    resident: Annotated[
        str | None,
        typer.Option("--resident", help="Only this resident's cases (a personnummer; logged)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    wide: WideOption = False,
    show_personnummer: ShowPnrOption = False,
    database: DatabaseOption = None,
) -> None:
    """List the clinic's cases, newest first, with read / unread / answered status."""
    settings = settings_from(None, database, require=(servers.DATABASE,), existing_database=True)
    reader = Reader(user, clinic, show_personnummer)
    engine = open_store(settings)
    try:
        if as_json and as_csv:
            error = UsageError(Reason.USAGE_ERROR, "--json and --csv exclude each other")
            raise case_access.usage_error(engine, reader, "cases-list", error, asked=[])
        if case_type not in case_queries.CASE_TYPES:
            error = UsageError(
                "unknown-case-type", f"--type takes {', '.join(case_queries.CASE_TYPES)}"
            )
            raise case_access.usage_error(engine, reader, "cases-list", error, asked=[])
        try:
            since_at = _since(since, settings.timezone)
        except UsageError as error:
            raise case_access.usage_error(engine, reader, "cases-list", error, asked=[]) from None
        searched = None
        if resident is not None:
            searched = parse_identity(resident.strip()).normalized
            if searched is None:
                wrong = UsageError("invalid-identity-number", "--resident takes a personnummer")
                raise case_access.usage_error(
                    engine, reader, "cases-list", wrong, asked=[], personnummer=[resident]
                )
        filt = case_queries.CaseFilter(
            status=status,
            template_id=template,
            batch_id=batch,
            since=since_at,
            personnummer=searched,
            limit=limit,
            reference=reference,
        )
        listing = case_access.list_cases(engine, reader, filt, now=dt.datetime.now(dt.UTC))
    except UsageError as exc:
        _refuse(exc)
    finally:
        engine.dispose()
    rows, cut = listing.rows, listing.more
    records = [_record(r, show_personnummer) for r in rows]
    if cut:
        note(
            Note.LISTING_CUT,
            f"note: showing the first {limit} cases only; there are more (raise --limit)",
            as_json=as_json,
            shown=limit,
        )
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else ["case_id"])
        writer.writeheader()
        writer.writerows(records)
    else:
        table = Table(title=f"{clinic}: {len(records)} cases")
        table.add_column("case", overflow="fold", min_width=36)
        for column in ("status", "template", "resident", "received", "read", "notified"):
            table.add_column(column, overflow="fold")
        for r in records:
            status_text = r["status"] + (" (overdue)" if r["overdue"] else "")
            if r["reason"]:
                status_text += f": {r['reason']}"
            table.add_row(
                r["case_id"],
                status_text,
                r["template_id"],
                r["resident"],
                r["received_at"],
                r["read_at"],
                r["channels_notified"],
            )
        (table_console(wide=True) if wide else Console(width=160)).print(table)


@app.command("count")
def count_command(
    *,
    clinic: ClinicOption = None,
    user: UserOption = None,
    status: StatusOption = None,
    template: Annotated[str | None, typer.Option(help="Template id.")] = None,
    batch: Annotated[str | None, typer.Option(help="Batch id.")] = None,
    reference: ReferenceOption = None,
    since: Annotated[str | None, typer.Option(help="Received on or after (YYYY-MM-DD).")] = None,
    database: DatabaseOption = None,
) -> None:
    """How many of the clinic's cases match (e.g. --status overdue)."""
    settings = settings_from(None, database, require=(servers.DATABASE,), existing_database=True)
    reader = Reader(user, clinic)
    engine = open_store(settings)
    try:
        try:
            since_at = _since(since, settings.timezone)
        except UsageError as error:
            raise case_access.usage_error(engine, reader, "cases-count", error, asked=[]) from None
        filt = case_queries.CaseFilter(
            status=status, template_id=template, batch_id=batch, since=since_at, reference=reference
        )
        count = case_access.count_cases(engine, reader, filt, now=dt.datetime.now(dt.UTC))
    except UsageError as exc:
        _refuse(exc)
    finally:
        engine.dispose()
    typer.echo(str(count))


@app.command("show")
def show_command(
    case_id: Annotated[str, typer.Argument(help="The case id.")],
    *,
    clinic: ClinicOption = None,
    user: UserOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    show_answer: Annotated[
        bool, typer.Option("--answer", help="Show the resident's answer (logged).")
    ] = False,
    show_content: Annotated[
        bool, typer.Option("--content", help="Show what the resident received (logged).")
    ] = False,
    show_personnummer: ShowPnrOption = False,
    database: DatabaseOption = None,
) -> None:
    """One case of the clinic: its history of states, reason codes and channels notified;
    with --answer the resident's answer, with --content the message as the resident got it
    (each read is logged)."""
    case_id = canonical_case_id(case_id)  # 3F2C... names the case 3f2c..., as in the HTTP API
    settings = settings_from(None, database, require=(servers.DATABASE,), existing_database=True)
    reader = Reader(user, clinic, show_personnummer)
    engine = open_store(settings)
    parts = tuple(
        part for part, wanted in (("answer", show_answer), ("content", show_content)) if wanted
    )
    try:
        detail = case_access.show_case(
            engine, reader, case_id, now=dt.datetime.now(dt.UTC), parts=parts
        )
        opened = (
            case_access.open_sealed(engine, reader, case_id, parts, answer_seal(settings))
            if parts
            else {}
        )
    except UsageError as exc:
        _refuse(exc)
    except case_access.CaseNotFound:
        shown = access_log.as_given(case_id, 80)
        fail(Reason.NOT_FOUND, f"the clinic {clinic} has no case {shown}", 1, coded=True)
    finally:
        engine.dispose()
    record = _record(detail.case, show_personnummer)
    record["history"] = [
        {
            "at": _when(e.at),
            "state": e.state,
            "stage": e.stage,
            "reason": e.reason,
            "detail": e.detail,
        }
        for e in detail.events
    ]
    record["notifications"] = [
        {
            "channel": n.channel,
            "round": n.round,
            "status": n.status,
            "reason": n.reason,
            "attempts": n.attempts,
            "sent_at": _when(n.sent_at),
            "resolution": n.resolution,
        }
        for n in detail.notifications
    ]
    record.update(opened)
    record["follow_up"] = (
        {k: _when(v) if isinstance(v, dt.datetime) else v for k, v in detail.follow_up.items()}
        if detail.follow_up
        else None
    )
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    console = Console(width=160)
    console.print(
        f"[bold]{record['case_id']}[/bold]  {record['status']}"
        f"{' (overdue)' if record['overdue'] else ''}  template {record['template_id']}  "
        f"resident {record['resident']}"
        + (f"  reference {record['reference']}" if record["reference"] else "")
    )
    history = Table(title="history")
    for column in ("at", "state", "stage", "reason", "detail"):
        history.add_column(column)
    for e in record["history"]:
        history.add_row(e["at"], e["state"], e["stage"], e["reason"] or "", e["detail"] or "")
    console.print(history)
    sent = Table(title="notifications")
    for column in ("channel", "round", "status", "reason", "attempts", "sent at", "in doubt"):
        sent.add_column(column)
    for n in record["notifications"]:
        sent.add_row(
            n["channel"],
            str(n["round"]),
            n["status"],
            n["reason"] or "",
            str(n["attempts"]),
            n["sent_at"],
            n["resolution"] or "",
        )
    console.print(sent)
    if record["follow_up"]:
        console.print(f"unread follow-up: {record['follow_up']}")
    _print_opened(console, opened)


def _print_opened(console: Console, opened: dict[str, Any]) -> None:
    import html

    if "content" in opened:
        content = opened["content"]
        if content is None:
            console.print("content: none (the case was not composed)")
        else:
            console.print(f"Ämne: {html.unescape(content['subject'])}", markup=False)
            console.print(html.unescape(content["body"]), markup=False)
            console.print(html.unescape(content["signature"]), markup=False)
            console.print(content["sent_on"], markup=False)
            for file in content["attachments"]:
                console.print(
                    f"Bilaga: {file['filename']} ({file['content_type']}, {file['size']:,} bytes, "
                    f"sha256 {file['sha256'][:12]})",
                    markup=False,
                )
    if "answer" in opened:
        answer = opened["answer"]
        if answer is None:
            console.print("answer: none yet")
            return
        console.print(f"answer ({answer['kind']}, {answer['answered_at']}):", markup=False)
        console.print(answer["text"] or "(no text)", markup=False)
        for item in answer["question_answers"]:
            console.print(f"  {item['question']}", markup=False)
            console.print(f"    {item['answer']}", markup=False)


@app.command("follow-up")
def follow_up_command(
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Carry out due unread follow-ups (notify again / flag); run it periodically."""
    from workers.bootstrap import build_context
    from workers.broker import build_broker
    from workers.log import configure
    from workers.unread_follow_up import run_follow_ups

    settings = settings_from(
        None,
        database,
        require=(
            servers.DATABASE,
            servers.EMAIL_API,
            servers.SMTP,
            servers.SMS_GATEWAY,
            servers.REDIS,
        ),
    )
    configure(settings.log_level, json=settings.log_json)
    ctx = build_context(settings, build_broker("memory://"))
    try:
        outcomes = run_follow_ups(ctx)
    finally:
        ctx.engine.dispose()
    typer.echo(
        json.dumps(dict(outcomes))
        if as_json
        else ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())) or "nothing due"
    )
