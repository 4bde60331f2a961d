"""Workers never migrate: ``omvant worker`` on a database whose schema is not the code's
stops before dramatiq starts, with one line and exit status 2 (issue 13)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from workers.store.engine import make_engine


def run_worker(redis_url: str, database_url: str, queue_prefix: str) -> tuple[int, str]:
    env = {"OMVANT_QUEUE_PREFIX": queue_prefix, "OMVANT_STARTUP_TIMEOUT_SECONDS": "5"}
    result = CliRunner().invoke(
        app, ["worker", "--broker", redis_url, "--database", database_url], env=env
    )
    return result.exit_code, result.output


def test_a_worker_on_a_database_without_the_schema_exits_2_and_creates_nothing(
    redis_url: str, sqlite_url: str, queue_prefix: str
) -> None:
    status, output = run_worker(redis_url, sqlite_url, queue_prefix)
    assert status == 2, output
    assert "omvant db upgrade" in output
    engine = make_engine(sqlite_url)
    assert sa.inspect(engine).get_table_names() == []  # it did not migrate
    engine.dispose()


def test_a_worker_on_an_older_schema_exits_2(
    redis_url: str, sqlite_url: str, queue_prefix: str
) -> None:
    engine = migrated_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    engine.dispose()
    status, output = run_worker(redis_url, sqlite_url, queue_prefix)
    assert status == 2, output
    assert "older schema" in output


@pytest.fixture(autouse=True)
def _no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the check let a worker through, stop at the exec instead of becoming dramatiq."""

    def refuse(*_args: object) -> None:
        raise AssertionError("the worker went on to start dramatiq")

    monkeypatch.setattr("os.execv", refuse)
