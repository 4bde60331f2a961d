"""Migration 0018 on PostgreSQL: a settled case leaves the sweep's index, a sent notification
leaves the ledger's due index, and the delivery intent is a HOT update (it changes no indexed
column, and the pages keep room for it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import emptied_engine
from tests.integration.test_case_transitions import received, received_rows
from workers.case_states import CaseState
from workers.store import cases
from workers.store.cases import Transition
from workers.store.schema import case_events, notification_ledger
from workers.store.schema import cases as cases_table

SEALED = "gAAAAAB" + "x" * 560  # about the size of a sealed request or content


@pytest.fixture(params=["postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    return emptied_engine(request, tmp_path, notification_ledger, case_events, cases_table)


def xact_updates(conn: sa.Connection, table: str) -> tuple[int, int]:
    """Rows of ``table`` updated in this transaction so far, and how many of them HOT."""
    row = conn.execute(
        sa.text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = :t"),
        {"t": table},
    ).one_or_none()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def test_the_delivery_intent_is_often_a_hot_update(engine: sa.Engine) -> None:
    """Cases as wide as real ones, moved as the pipeline moves them (made with the sealed
    request, validated, composed with the sealed content and cleared): the intent changes no
    indexed column and the pages keep room (fillfactor), so many intent updates are HOT
    (most of them here, where no vacuum ran; none with full pages)."""
    ids = [f"c{i:03}" for i in range(100)]
    rows = [{**row, "request": SEALED} for row in received_rows(*ids)]
    with engine.begin() as conn:
        cases.insert_received(conn, rows)
    with engine.begin() as conn:
        cases.apply(
            conn, [Transition(c, CaseState.VALIDATED, {"channels": "sms"}) for c in ids], stage="s"
        )
    composed = [
        t
        for c in ids
        for t in (
            Transition(c, CaseState.COMPOSED, {"content": SEALED, "subject": "Kallelse"}),
            Transition(c, CaseState.CLEARED),
        )
    ]
    with engine.begin() as conn:
        cases.apply(conn, composed, stage="composition")
    with engine.begin() as conn:
        before = xact_updates(conn, "cases")  # counts not yet reported may include others
        cases.record_intent(conn, {c: f"{c}:inbox" for c in ids})
        after = xact_updates(conn, "cases")
    updated, hot = after[0] - before[0], after[1] - before[1]
    assert updated == len(ids)
    assert hot >= 0.5 * len(ids), f"{hot} of {updated} intent updates were HOT"


def index_entries(conn: sa.Connection, index: str) -> int:
    """The index's entries pointing at live rows, counted through an index-only plan."""
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    plan = "\n".join(
        row[0]
        for row in conn.execute(
            sa.text(
                "EXPLAIN SELECT count(*) FROM cases "
                "WHERE state IN ('received', 'validated', 'composed', 'cleared', 'delivered')"
            )
        )
    )
    assert index in plan
    return int(
        conn.execute(
            sa.text(
                "SELECT count(*) FROM cases "
                "WHERE state IN ('received', 'validated', 'composed', 'cleared', 'delivered')"
            )
        ).scalar_one()
    )


def test_the_sweeps_index_holds_only_cases_before_they_settle(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a", "b")
        cases.apply(conn, [Transition("b", CaseState.NOTIFIED)], stage="s")
        predicate = conn.execute(
            sa.text(
                "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :n"
            ),
            {"n": "ix_cases_state_updated"},
        ).scalar_one()
        assert index_entries(conn, "ix_cases_state_updated") == 1
    for state in ("received", "validated", "composed", "cleared", "delivered"):
        assert state in predicate
    for state in ("notified", "read", "rejected", "failed"):
        assert state not in predicate


def test_the_ledgers_due_index_holds_only_open_rows(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        predicate = conn.execute(
            sa.text(
                "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :n"
            ),
            {"n": "ix_notification_ledger_status_due"},
        ).scalar_one()
    assert {"queued", "retry", "pending"} <= set(predicate.replace("'", " ").split())
    assert "sent" not in predicate
