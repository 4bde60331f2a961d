"""Migration 0019 and ``case_bodies``: a case's sealed request and content live beside its row,
are moved there (and back) with the data, are written only with a transition that applies,
and a state change no longer copies them (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from tests.databases import emptied_engine
from tests.integration.test_case_transitions import received_rows
from workers.case_states import CaseState
from workers.store import case_bodies, cases
from workers.store.cases import Transition
from workers.store.engine import alembic_config, make_engine
from workers.store.schema import case_events
from workers.store.schema import cases as cases_table

SEALED = "gAAAAAB" + "x" * 560  # about the size of a sealed request or content


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    return emptied_engine(request, tmp_path, case_events, cases_table)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migration test goes down and up)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/m.db"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"omvant_m_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{base.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def bodies(conn: sa.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(sa.text("SELECT case_id, part, sealed FROM case_bodies"))
    return {(r.case_id, r.part, r.sealed) for r in rows}


def test_the_migration_moves_the_sealed_parts_out_and_back(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    command.upgrade(config, "0018_lighter_case_updates")
    engine = make_engine(fresh_url)
    old = sa.Table("cases", sa.MetaData(), autoload_with=engine)
    row: dict[str, object] = dict(received_rows("a")[0], state="composed", state_rank=20)
    row.update(received_at=cases.utcnow(), updated_at=cases.utcnow())
    with engine.begin() as conn:
        conn.execute(sa.insert(old), [{**row, "id": "a", "request": "R", "content": "C"}])
        conn.execute(sa.insert(old), [{**row, "id": "b", "idempotency_key": "kb"}])
    engine.dispose()
    command.upgrade(config, "0019_case_bodies")
    with engine.connect() as conn:
        assert bodies(conn) == {("a", "request", "R"), ("a", "content", "C")}
        columns = {c["name"] for c in sa.inspect(conn).get_columns("cases")}
    assert not columns & {"request", "content"}
    engine.dispose()
    command.downgrade(config, "0018_lighter_case_updates")
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT id, request, content FROM cases ORDER BY id")).all()
        assert "case_bodies" not in sa.inspect(conn).get_table_names()
    assert [tuple(r) for r in back] == [("a", "R", "C"), ("b", None, None)]
    engine.dispose()


def test_the_request_is_written_with_the_case_row_and_only_then(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        made = cases.insert_received(conn, [{**received_rows("a")[0], "request": "first"}])
        again = cases.insert_received(conn, [{**received_rows("a")[0], "request": "second"}])
        assert (made, again) == ({"a"}, set())
        assert bodies(conn) == {("a", "request", "first")}, "a duplicate writes no request"
        assert "request" not in {c.name for c in cases_table.columns}


def test_the_content_is_written_only_by_a_transition_that_applies(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        cases.insert_received(conn, received_rows("a", "b"))
        cases.apply(conn, [Transition("b", CaseState.REJECTED, reason="no-account")], stage="s")
        composed = [
            Transition(c, CaseState.COMPOSED, {"content": f"sealed {c}", "subject": "Kallelse"})
            for c in ("a", "b")
        ]
        assert cases.apply(conn, composed, stage="composition") == {"a"}
        assert bodies(conn) == {("a", "content", "sealed a")}
        redelivered = [Transition("a", CaseState.COMPOSED, {"content": "other"})]
        assert cases.apply(conn, redelivered, stage="composition") == {"a"}
        assert bodies(conn) == {("a", "content", "sealed a")}, "a redelivery writes nothing"
        cleared = [Transition("a", CaseState.CLEARED, {"content": "with files"})]
        cases.apply(conn, cleared, stage="attachment-check")
        assert bodies(conn) == {("a", "content", "with files")}
        source, parts = case_bodies.joined(cases_table, "request", "content")
        row = conn.execute(sa.select(cases_table.c.id, *parts).select_from(source)).all()
        assert sorted(tuple(r) for r in row) == [("a", None, "with files"), ("b", None, None)]


def test_a_state_change_no_longer_copies_the_sealed_parts(engine: sa.Engine) -> None:
    """The case row a transition rewrites is a few hundred bytes, not the 1.5 KB it was with
    the request and content in it (PostgreSQL: the row versions' size)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row sizes are PostgreSQL's")
    ids = [f"c{i:02}" for i in range(20)]
    with engine.begin() as conn:
        cases.insert_received(conn, [{**r, "request": SEALED} for r in received_rows(*ids)])
        composed = [Transition(c, CaseState.COMPOSED, {"content": SEALED}) for c in ids]
        cases.apply(conn, composed, stage="composition")
        widest = conn.execute(sa.text("SELECT max(pg_column_size(c.*)) FROM cases c")).scalar()
        kept = conn.execute(sa.text("SELECT count(*) FROM case_bodies")).scalar()
    assert kept == 2 * len(ids)
    assert widest is not None and widest < 500, widest
