"""Engines by URL, and the schema brought up to date with Alembic."""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from workers.log import warn_on_stderr
from workers.reasons import Note


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or none)."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


CONNECT_TIMEOUT = 10
"""Seconds to wait for PostgreSQL to accept a connection (libpq waits for ever by default)."""


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
        _make_folder_of(url)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per checkout on the hot path; a connection that died
    # fails its message once and dramatiq retries it on a fresh one.
    return sa.create_engine(
        url, pool_size=8, max_overflow=8, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


READS = "_omvant_reads"


def reads(engine: sa.Engine) -> sa.Engine:
    """``engine`` for reads that need no transaction of their own (a stage's look-ups).

    On PostgreSQL each statement runs on its own (autocommit): a read costs one round trip
    instead of three (psycopg's ``BEGIN``, the statement, the ``ROLLBACK`` when the connection
    goes back), and each round trip of an urgent case waits for a backend on a busy server.
    Under READ COMMITTED (the default) each statement of a transaction takes its own snapshot
    anyway, so a read sees the same. Never for writes: ``engine.begin()`` keeps them atomic.
    Other databases get ``engine`` itself. The same pool; made once per engine.
    """
    if engine.dialect.name != "postgresql":
        return engine
    made: sa.Engine | None = engine.__dict__.get(READS)
    if made is None:
        made = engine.execution_options(isolation_level="AUTOCOMMIT")
        engine.__dict__[READS] = made
    return made


def _make_folder_of(url: str) -> None:
    """SQLite creates its file but not the folder (the data folder, ``OMVANT_HOME``).

    The database holds sealed health data and who read it: a folder made here is mode 0700 and
    a new database file 0600 (SQLite gives its journal and WAL files the database's mode). A
    folder or file that exists keeps its mode (``OMVANT_HOME=.`` is not changed); a folder
    group or others can read is said once (``home_not_private``).
    """
    database = sa.engine.make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        home_not_private(path.parent)
        with contextlib.suppress(FileExistsError):  # an empty file is a new database to SQLite
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


_WARNED: set[Path] = set()
"""The folders ``home_not_private`` warned of in this process (once each)."""


def home_not_private(folder: Path) -> None:
    """Warn once per process (``home-not-private``) when group or others can read the folder
    holding the database, with the path and the fix: a user's existing folder is theirs, so it
    is not changed silently. Quiet for a private folder."""
    folder = folder.resolve()
    if folder in _WARNED:
        return
    try:
        mode = folder.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        _WARNED.add(folder)
        warn_on_stderr(
            __name__,
            "the folder holding the database is readable by group or others",
            code=Note.HOME_NOT_PRIVATE,
            path=str(folder),
            mode=f"{stat.S_IMODE(mode):04o}",
            fix=f"chmod 700 {shlex.quote(str(folder))}",
        )


def refuse_a_missing_sqlite_file(url: str) -> None:
    """A SQLite database ``url`` names whose file does not exist yet: refused
    (``SchemaOutdated``, saying the path and the command that creates it) before anything
    connects, so a read-only command leaves no empty database file behind.

    Raises
    ------
    SchemaOutdated
        When the file does not exist.
    """
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if not path.exists():
        command = f"omvant db upgrade --database {shlex.quote(url)}"
        raise SchemaOutdated(f"the database {path} does not exist yet; create it with: {command}")


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


class SchemaOutdated(RuntimeError):
    """The database's schema is not the one this code needs (``omvant db upgrade``)."""


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def check_schema(engine: sa.Engine) -> None:
    """Refuse to work on a database whose schema is missing, older or newer than the code's.

    Raises
    ------
    SchemaOutdated
        With a line saying what to do (``omvant db upgrade``).
    """
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    script = _script()
    wanted = set(script.get_heads())
    if current == wanted:
        return
    known = {revision.revision for revision in script.walk_revisions()}
    where = engine.url.render_as_string(hide_password=True)
    if not current:
        state = "has no Omvänt schema"
    elif current - known:
        state = f"has a newer schema ({', '.join(sorted(current))}) than this omvant knows"
    else:
        state = f"has an older schema ({', '.join(sorted(current))})"
    # the URL as the user wrote it (no driver suffix such as +psycopg), password masked
    given = engine.url.set(drivername=engine.url.get_backend_name())
    command = f"omvant db upgrade --database {shlex.quote(given.render_as_string())}"
    raise SchemaOutdated(f"the database at {where} {state}; run: {command}")


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (every migration branch)."""
    command.upgrade(alembic_config(url), "heads")
