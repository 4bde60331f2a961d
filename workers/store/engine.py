"""Engines by URL, and the schema brought up to date with Alembic."""

from __future__ import annotations

from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or none)."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL and a generous busy timeout for many threads."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per checkout on the hot path; a connection that died
    # fails its message once and dramatiq retries it on a fresh one.
    return sa.create_engine(url, pool_size=8, max_overflow=8)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names if it does not exist (benchmarks, load
    tests); other databases are created on first use anyway."""
    url = normalise_url(url)
    if not url.startswith("postgresql"):
        return
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first()
            if exists is None:
                quoted = admin.dialect.identifier_preparer.quote(str(target.database))
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()


def alembic_config(url: str) -> Config:
    """Alembic's configuration pointing at the shipped migrations and ``url``."""
    config = Config()
    location = resources.files("workers.store") / "migrations"
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (every migration branch)."""
    command.upgrade(alembic_config(url), "heads")
