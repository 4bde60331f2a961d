"""Options several commands share, and the process's one ``Settings``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from workers.settings import Settings

BrokerOption = Annotated[
    str | None, typer.Option("--broker", help="Broker URL (amqp://, redis://, memory://).")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", help="Database URL (postgresql://, sqlite:///).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WideOption = Annotated[
    bool, typer.Option("--wide", help="One line per row, however wide (ids wrap otherwise).")
]


def table_console(*, wide: bool = False) -> Console:
    """Where tables go: the terminal's width, or unlimited with ``--wide``. Columns of tables
    fold rather than cut, so an id is never shown shortened."""
    return Console(width=100_000) if wide else Console()


def folding_table(title: str, columns: Iterable[str]) -> Table:
    """A table whose cells wrap (fold) instead of being cut off with an ellipsis."""
    made = Table(title=title)
    for column in columns:
        made.add_column(column, overflow="fold")
    return made


_current: list[Settings] = []
"""The settings the running command built (one command per process; the error handler reads
the URLs it names from here)."""


def settings_from(
    broker: str | None = None,
    database: str | None = None,
    *,
    require: Iterable[str] = (),
    existing_database: bool = False,
    **overrides: object,
) -> Settings:
    """The command's settings: the environment, with the command line's values on top.

    ``require`` names servers (``workers.server_probe``) that must answer before the command
    goes on; one that does not stops it with one line and exit status 2. A command that only
    reads the system of record says ``existing_database``: a SQLite database whose file does
    not exist yet is refused (``SchemaOutdated``, the path and ``omvant db upgrade``) before a
    probe or an engine would create an empty one; commands that write create it as before.
    """
    given: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if broker:
        given["broker_url"] = broker
    if database:
        given["database_url"] = database
    settings = Settings(**given)  # type: ignore[arg-type]
    _current[:] = [settings]
    needs = list(require)
    if existing_database:
        from workers.server_probe import DATABASE
        from workers.store.engine import refuse_a_missing_sqlite_file

        # refused where the database's probe (which would create the file) comes in order
        ahead = needs[: needs.index(DATABASE)] if DATABASE in needs else needs
        _probe(settings, ahead)
        refuse_a_missing_sqlite_file(settings.database_url)
        needs = needs[len(ahead) :]
    _probe(settings, needs)
    return settings


def _probe(settings: Settings, servers: list[str]) -> None:
    if servers:
        from workers.server_probe import require as probe

        probe(settings, servers)


def current_settings() -> Settings | None:
    """The settings the running command built, if it has built them."""
    return _current[0] if _current else None


def checked_engine(database_url: str) -> sa.Engine:
    """The system of record, refused (``SchemaOutdated``: one line, exit 2) unless its schema
    is this code's: only ``omvant db upgrade`` migrates."""
    from workers.store.engine import check_schema, make_engine

    engine = make_engine(database_url)
    try:
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
