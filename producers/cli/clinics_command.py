"""``omvant clinics``: a clinic's own settings (how its case handlers are alerted of answers)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from producers.cli.errors import fail
from producers.cli.options import DatabaseOption, JsonOption, settings_from
from workers import server_probe as servers
from workers.reasons import Reason
from workers.store import answers
from workers.store.engine import check_schema, make_engine
from workers.templates.model import NotificationSetting

app = typer.Typer(help="A clinic's settings: answer alerts.", no_args_is_help=True)

ClinicOption = Annotated[str, typer.Option("--clinic", help="The clinic's HSA-id.")]


@app.command("answer-alert")
def answer_alert(
    clinic: ClinicOption,
    mailbox: Annotated[
        str | None,
        typer.Option("--mailbox", help="Alert by e-mail to this functional mailbox."),
    ] = None,
    none: Annotated[bool, typer.Option("--none", help="Do not alert of answers.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set how the clinic's case handlers are told that a resident answered (a
    content-free e-mail to a functional mailbox, or nothing); a question template's own
    notification setting (``templates edit --answer-alert``) overrides it."""
    if mailbox is not None and none:
        fail(Reason.USAGE_ERROR, "--mailbox and --none exclude each other", as_json=as_json)
    setting: answers.AnswerAlert | None = None
    if none or mailbox is not None:
        try:
            checked = NotificationSetting(alert="none" if none else "email", mailbox=mailbox)
        except ValueError:
            fail(Reason.USAGE_ERROR, f"not an e-mail address: {mailbox!r}", as_json=as_json)
        setting = answers.AnswerAlert(checked.alert, checked.mailbox)
    settings = settings_from(
        None, database, require=(servers.DATABASE,), existing_database=setting is None
    )
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        with engine.begin() as conn:
            if setting is not None:
                answers.set_clinic_alert(conn, clinic, setting)
            current = answers.clinic_alert(conn, clinic)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps({"clinic": clinic, "alert": current.alert, "mailbox": current.mailbox})
        )
    elif current.alert == "email":
        typer.echo(f"{clinic}: answers are alerted by e-mail to {current.mailbox}")
    else:
        typer.echo(f"{clinic}: answers are not alerted")
