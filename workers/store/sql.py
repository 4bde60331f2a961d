"""What the store's modules share about the two databases (PostgreSQL in production, SQLite
embedded): the dialect's INSERT (for ``ON CONFLICT``) and naive UTC read back as aware."""

from __future__ import annotations

import datetime as dt
from typing import Any, overload

import sqlalchemy as sa


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT of the connection's dialect, so ``on_conflict_do_nothing`` and
    ``on_conflict_do_update`` are there on PostgreSQL and SQLite alike."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that skips rows conflicting with one already there."""
    return dialect_insert(conn, table).on_conflict_do_nothing()


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp, read back aware on both databases: PostgreSQL's
    ``timestamptz`` comes back aware, SQLite keeps naive UTC text, given back here as UTC.
    Every time column of ``schema.py`` is one, so no reader repairs what it reads."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        return aware_utc(value)


@overload
def aware_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def aware_utc(value: None) -> None: ...
def aware_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as aware UTC: for what raw SQL reads (typed columns are ``UtcDateTime``)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
