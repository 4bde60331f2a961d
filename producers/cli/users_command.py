"""``omvant users``: the people who sign in to the web console (``omvant serve``).

``add`` makes a local account (the password is asked for twice without echo, or read from
standard input with ``--password-stdin``; stored as an argon2id hash), ``list`` shows them,
``disable`` stops a user at once (every session of theirs ends), ``enable`` lets them back,
``passwd`` sets a new password.

Exit status: 0 done, 1 refused (exists, unknown, weak password), 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import sqlalchemy as sa
import typer

from producers.cli import errors
from producers.cli.options import DatabaseOption, JsonOption, checked_engine, settings_from
from workers.reasons import Reason
from workers.store import users

app = typer.Typer(help="Web console users: add, list, disable.", no_args_is_help=True)


def fail(message: str, code: int = 1, reason: str = Reason.USAGE_ERROR) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``; under ``--json`` the one
    ``{"error": ...}`` object with ``reason``."""
    if errors.json_asked():
        errors.fail(reason, message.removeprefix("user-unknown: "), code)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def opened(database: str | None, *, existing_database: bool = False) -> Iterator[sa.Engine]:
    """The system of record, brought up to date."""

    settings = settings_from(None, database, existing_database=existing_database)
    engine = checked_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    from producers.web.passwords import MIN_LENGTH

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password on: give --password-stdin", 2)
    first = typer.prompt(f"Password (at least {MIN_LENGTH} characters)", hide_input=True)
    second = typer.prompt("Again", hide_input=True)
    if first != second:
        fail("the passwords differ")
    return str(first)


def _hash(password: str) -> str:
    from producers.web.passwords import PasswordTooWeak, hash_password

    try:
        return hash_password(password)
    except PasswordTooWeak as exc:
        fail(str(exc))


def _record(user: users.User) -> dict[str, object]:
    return {
        "username": user.username,
        "name": user.display_name,
        "hsa_id": user.hsa_id,
        "roles": list(user.roles),
        "clinics": list(user.clinics),
        "active": user.active,
        "password": user.password_hash is not None,
        "oidc_subject": user.oidc_subject,
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="What they sign in with (a-z, 0-9, . _ @ -).")],
    *,
    hsa_id: Annotated[
        str,
        typer.Option("--hsa-id", help="Their HSA-id: the access log's 'who' and the signature."),
    ],
    roles: Annotated[
        list[str],
        typer.Option("--role", help="staff, admin (the clinic's templates) or oncall; repeatable."),
    ],
    clinics: Annotated[
        list[str] | None,
        typer.Option("--clinic", help="A clinic (HSA-id) they act for; repeatable."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Their name as shown.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    oidc_subject: Annotated[
        str | None,
        typer.Option("--oidc-subject", help="Link to this OIDC subject (sign in through OIDC)."),
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="OIDC only: no local password.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a console user."""
    if no_password and oidc_subject is None:
        fail("--no-password needs --oidc-subject (else nobody could sign in)", 2)
    try:
        users.validate(username=username, hsa_id=hsa_id, roles=roles, clinics=clinics or [])
    except users.UserInvalid as exc:
        fail(str(exc), 2)
    password_hash = None if no_password else _hash(_password(password_stdin))
    with opened(database) as engine, engine.begin() as conn:
        try:
            user = users.add(
                conn,
                username=username,
                display_name=name or username,
                hsa_id=hsa_id,
                roles=roles,
                clinics=clinics or [],
                password_hash=password_hash,
                oidc_subject=oidc_subject,
            )
        except users.UserInvalid as exc:
            fail(str(exc), 2)
        except users.UserExists as exc:
            fail(str(exc), 1, Reason.USER_EXISTS)
    if as_json:
        typer.echo(json.dumps(_record(user), ensure_ascii=False))
    else:
        typer.echo(
            f"added {user.username} ({', '.join(user.roles)}) for {', '.join(user.clinics) or '-'}"
        )


@app.command("list")
def list_users(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Every console user."""
    with opened(database, existing_database=True) as engine, engine.connect() as conn:
        found = users.listing(conn)
    if as_json:
        typer.echo(json.dumps([_record(u) for u in found], ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("username", "name", "hsa-id", "roles", "clinics", "active", "last sign-in"):
        table.add_column(column)
    for u in found:
        table.add_row(
            u.username,
            u.display_name,
            u.hsa_id,
            ",".join(u.roles),
            ",".join(u.clinics),
            "yes" if u.active else "no",
            u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else "",
        )
    Console(width=200).print(table)


def _set_active(username: str, database: str | None, active: bool) -> None:
    with opened(database) as engine, engine.begin() as conn:
        try:
            user = users.set_active(conn, username, active)
        except users.UserNotFound:
            fail(f"user-unknown: no user {username!r}", 1, Reason.NOT_FOUND)
    typer.echo(f"{user.username} {'enabled' if active else 'disabled'}")


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user.")], database: DatabaseOption = None
) -> None:
    """Stop a user signing in; their sessions end at once."""
    _set_active(username, database, False)


@app.command("enable")
def enable(
    username: Annotated[str, typer.Argument(help="The user.")], database: DatabaseOption = None
) -> None:
    """Let a disabled user sign in again."""
    _set_active(username, database, True)


@app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument(help="The user.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Set a new password for a user."""
    password_hash = _hash(_password(password_stdin))
    with opened(database) as engine, engine.begin() as conn:
        user = users.by_username(conn, username)
        if user is None:
            fail(f"user-unknown: no user {username!r}", 1, Reason.NOT_FOUND)
        users.set_password_hash(conn, user.id, password_hash)
    typer.echo(f"new password set for {user.username}")
