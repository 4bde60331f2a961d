"""``omvant db check [--wait]``: whether the schema is the code's, never migrating; with
``--wait`` it waits for the migration (what a pod's init container runs before the workers,
which refuse a stale schema, start)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from workers.store.engine import make_engine, upgrade

runner = CliRunner()


def test_a_database_without_the_schema_fails_the_check_and_is_not_migrated(
    sqlite_url: str,
) -> None:
    Path(sqlite_url.removeprefix("sqlite:///")).touch()  # a file, without the schema
    result = runner.invoke(app, ["db", "check", "--database", sqlite_url])
    assert result.exit_code == 2, result.output
    assert "has no Omvänt schema; run: omvant db upgrade" in result.stderr
    engine = make_engine(sqlite_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_an_upgraded_database_passes_the_check(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    result = runner.invoke(app, ["db", "check", "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "schema up to date" in result.stdout


def test_the_check_waits_for_a_migration_that_finishes_later(sqlite_url: str) -> None:
    migration = threading.Timer(1.0, upgrade, args=(sqlite_url,))
    started = time.monotonic()
    migration.start()
    try:
        result = runner.invoke(app, ["db", "check", "--wait", "30", "--database", sqlite_url])
    finally:
        migration.join()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 1.0


def test_the_wait_is_bounded(sqlite_url: str) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["db", "check", "--wait", "1", "--database", sqlite_url])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 10


def test_the_schema_message_suggests_the_users_own_url_password_masked() -> None:
    from workers.store.engine import SchemaOutdated, check_schema

    engine = make_engine("sqlite://")
    try:
        check_schema(engine)
    except SchemaOutdated as exc:
        said = str(exc)
    assert "run: omvant db upgrade --database sqlite://" in said
    assert "--database URL" not in said
