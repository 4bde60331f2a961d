"""A case moved twice by one stage (composition: composed, then cleared) is updated once, with
both history rows, in order; a redelivery changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import emptied_engine
from tests.integration.test_case_transitions import received
from workers.case_states import CaseState
from workers.store import case_bodies, cases
from workers.store.cases import Transition
from workers.store.schema import case_events
from workers.store.schema import cases as cases_table


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    return emptied_engine(request, tmp_path, case_events, cases_table)


def composed_then_cleared(case_id: str) -> list[Transition]:
    return [
        Transition(case_id, CaseState.COMPOSED, {"subject": "Kallelse", "content": "sealed"}),
        Transition(case_id, CaseState.CLEARED),
    ]


def history(conn: sa.Connection, case_id: str) -> list[str]:
    rows = conn.execute(
        sa.select(case_events.c.state)
        .where(case_events.c.case_id == case_id)
        .order_by(case_events.c.id)
    )
    return [row.state for row in rows]


def case_row(conn: sa.Connection, case_id: str) -> sa.Row[tuple[object, ...]]:
    """The case's row with its sealed content (``case_bodies``)."""
    source, content = case_bodies.joined(cases_table, "content")
    query = sa.select(cases_table, *content).select_from(source)
    return conn.execute(query.where(cases_table.c.id == case_id)).one()


def row_versions(conn: sa.Connection) -> int:
    """PostgreSQL: the rows of ``cases`` updated in this database so far (0 on SQLite)."""
    if conn.dialect.name != "postgresql":
        return 0
    return int(
        conn.execute(
            sa.text("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'cases'")
        ).scalar_one_or_none()
        or 0
    )


def test_composed_and_cleared_are_one_update_and_two_history_rows(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a", "b")
        conn.execute(sa.update(cases_table).values(state="validated", state_rank=10))
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]).upper())

    sa.event.listen(engine, "before_cursor_execute", seen)
    with engine.begin() as conn:
        before = row_versions(conn)
        held = cases.apply(
            conn, [*composed_then_cleared("a"), *composed_then_cleared("b")], stage="composition"
        )
        updated = row_versions(conn) - before
        assert held == {"a", "b"}
        assert history(conn, "a") == ["received", "composed", "cleared"]
        assert history(conn, "b") == ["received", "composed", "cleared"]
        row = case_row(conn, "a")
    sa.event.remove(engine, "before_cursor_execute", seen)
    assert (row.state, row.state_rank, row.subject, row.content) == (
        "cleared",
        30,
        "Kallelse",
        "sealed",
    )
    updating = [s for s in statements if "UPDATE CASES" in s]
    if engine.dialect.name == "postgresql":
        assert len(updating) == 1, "one statement for the chunk"
        assert updated == 2, "one row version per case, not two"
    else:
        assert len(updating) == 1  # one executemany, one row per case


def test_a_redelivered_chain_holds_and_writes_nothing_again(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a")
        cases.apply(conn, [Transition("a", CaseState.VALIDATED)], stage="s")
        cases.apply(conn, composed_then_cleared("a"), stage="composition")
    with engine.begin() as conn:
        before = row_versions(conn)
        assert cases.apply(conn, composed_then_cleared("a"), stage="composition") == {"a"}
        assert row_versions(conn) == before
        assert history(conn, "a") == ["received", "validated", "composed", "cleared"]


def test_a_chain_on_a_case_past_its_first_state_applies_only_the_rest(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a")
        cases.apply(conn, [Transition("a", CaseState.COMPOSED, {"content": "first"})], stage="s")
    with engine.begin() as conn:
        assert cases.apply(conn, composed_then_cleared("a"), stage="composition") == {"a"}
        row = case_row(conn, "a")
        assert history(conn, "a") == ["received", "composed", "cleared"]
    assert (row.state, row.content, row.subject) == ("cleared", "first", None), (
        "the composed values of a transition that did not apply are not written"
    )


def test_a_chain_never_moves_a_final_case(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a")
        cases.apply(conn, [Transition("a", CaseState.REJECTED, reason="no-account")], stage="s")
    with engine.begin() as conn:
        assert cases.apply(conn, composed_then_cleared("a"), stage="composition") == set()
        assert cases.states_of(conn, ["a"]) == {"a": CaseState.REJECTED}
        assert history(conn, "a") == ["received", "rejected"]


def test_a_chunk_with_a_rejection_first_still_records_composed_before_cleared(
    engine: sa.Engine,
) -> None:
    """The rejection's transition sets no values, like ``cleared``: grouped by the columns
    they set, ``cleared`` once ran before ``composed`` and the history lost ``composed``."""
    with engine.begin() as conn:
        received(conn, "r", "a")
        conn.execute(sa.update(cases_table).values(state="validated", state_rank=10))
    with engine.begin() as conn:
        moves = [Transition("r", CaseState.REJECTED, reason="x"), *composed_then_cleared("a")]
        assert cases.apply(conn, moves, stage="composition") == {"r", "a"}
        assert history(conn, "a") == ["received", "composed", "cleared"]
        assert history(conn, "r") == ["received", "rejected"]
