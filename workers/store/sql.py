"""What the store's modules share about the two databases (PostgreSQL in production, SQLite
embedded): the dialect's INSERT (for ``ON CONFLICT``) and naive UTC read back as aware."""

from __future__ import annotations

from typing import Any

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
