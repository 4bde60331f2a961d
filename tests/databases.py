"""Helpers for tests on a database: one migrated to the head, and the store tests' one on both
SQLite and the session's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from workers.store.engine import make_engine, upgrade
from workers.store.schema import case_bodies, cases


def migrated_engine(url: str) -> sa.Engine:
    """An engine on ``url``'s database, migrated to the head first (as ``omvant db upgrade``)."""
    upgrade(url)
    return make_engine(url)


def emptied_engine(request: pytest.FixtureRequest, tmp_path: Path, *tables: sa.Table) -> sa.Engine:
    """An engine on a migrated database: a SQLite file in ``tmp_path`` when ``request.param`` is
    ``"sqlite"``, else the session's PostgreSQL, with ``tables`` emptied in that order (the
    PostgreSQL database is shared by the session's tests); emptying ``cases`` empties
    ``case_bodies`` too (its sealed parts)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/t.db"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = migrated_engine(url)
    with engine.begin() as conn:
        for table in tables:
            conn.execute(sa.delete(table))
            if table is cases:
                conn.execute(sa.delete(case_bodies))
    return engine
