"""On a real PostgreSQL: ``reads(engine)`` runs a stage's look-ups outside a transaction (one
round trip each: no BEGIN, no ROLLBACK), and the engine's own transactions stay atomic."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from workers.store.engine import make_engine, reads

pytestmark = pytest.mark.integration


def _status(conn: sa.Connection) -> int:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return int(raw.pgconn.transaction_status)


IDLE, IN_TRANSACTION = 0, 2
"""libpq's transaction status: no transaction open, a transaction open."""


def test_a_read_opens_no_transaction_and_a_write_block_stays_one(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        assert reads(engine) is reads(engine)  # made once per engine, on the same pool
        with reads(engine).connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert _status(conn) == IDLE
        with engine.connect() as conn:  # the plain engine still begins (the same pool)
            conn.execute(sa.text("SELECT 1"))
            assert _status(conn) == IN_TRANSACTION
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE reads_probe (n int)"))
            assert _status(conn) == IN_TRANSACTION
            raise RuntimeError  # rolled back whole: the table was never made
        with reads(engine).connect() as conn:
            found = conn.execute(sa.text("SELECT to_regclass('reads_probe')")).scalar_one()
        assert found is None
    finally:
        engine.dispose()


def test_other_databases_read_through_the_engine_itself(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    assert reads(engine) is engine
    engine.dispose()
