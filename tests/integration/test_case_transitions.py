"""Case states only move forward, and every transition is idempotent (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import emptied_engine
from workers.case_states import CaseState, may_advance
from workers.store import cases
from workers.store.cases import Transition
from workers.store.schema import case_events
from workers.store.schema import cases as cases_table


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    return emptied_engine(request, tmp_path, case_events, cases_table)


def received(conn: sa.Connection, *ids: str) -> None:
    cases.insert_received(conn, received_rows(*ids))


def test_the_state_machine_moves_forward_only() -> None:
    assert may_advance(CaseState.RECEIVED, CaseState.VALIDATED)
    assert may_advance(CaseState.COMPOSED, CaseState.REJECTED)
    assert not may_advance(CaseState.COMPOSED, CaseState.VALIDATED)
    assert not may_advance(CaseState.REJECTED, CaseState.NOTIFIED)
    assert not may_advance(CaseState.FAILED, CaseState.REJECTED)
    assert not may_advance(CaseState.READ, CaseState.READ)


def test_a_repeated_transition_changes_nothing_twice(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a", "b")
    move = [Transition("a", CaseState.VALIDATED, {"channels": "sms"})]
    with engine.begin() as conn:
        assert cases.apply(conn, move, stage="s") == {"a"}
    with engine.begin() as conn:
        assert cases.apply(conn, move, stage="s") == {"a"}, "still holds: emit again"
        events = conn.execute(
            sa.select(sa.func.count()).where(case_events.c.case_id == "a")
        ).scalar_one()
        states = cases.states_of(conn, ["a", "b", "missing"])
    assert events == 2  # received, validated: the repeat wrote no second event
    assert states == {"a": CaseState.VALIDATED, "b": CaseState.RECEIVED}


def test_a_case_never_moves_backwards_or_out_of_a_final_state(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a", "b")
        cases.apply(conn, [Transition("a", CaseState.COMPOSED)], stage="s")
        cases.apply(conn, [Transition("b", CaseState.REJECTED, reason="no-account")], stage="s")
    with engine.begin() as conn:
        held = cases.apply(
            conn,
            [Transition("a", CaseState.VALIDATED), Transition("b", CaseState.VALIDATED)],
            stage="s",
        )
        states = cases.states_of(conn, ["a", "b"])
    assert held == set()
    assert states == {"a": CaseState.COMPOSED, "b": CaseState.REJECTED}
    with engine.connect() as conn:
        assert cases.count_reasons(conn) == {"no-account": 1}


def test_several_transitions_of_one_case_apply_in_order(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a")
        held = cases.apply(
            conn,
            [Transition("a", CaseState.DELIVERED), Transition("a", CaseState.NOTIFIED)],
            stage="s",
        )
        assert held == {"a"}
        assert cases.states_of(conn, ["a"]) == {"a": CaseState.NOTIFIED}


def test_receiving_the_same_case_twice_keeps_the_first(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        received(conn, "a")
        cases.apply(conn, [Transition("a", CaseState.VALIDATED)], stage="s")
    with engine.begin() as conn:
        received(conn, "a")
        assert cases.states_of(conn, ["a"]) == {"a": CaseState.VALIDATED}
        assert cases.first_requested_by(conn, ["a"], "m1") == {"a"}
        assert cases.first_requested_by(conn, ["a"], "m2") == set()


def test_a_late_read_receipt_moves_the_read_time_back_and_a_later_one_does_not(
    engine: sa.Engine,
) -> None:
    import datetime as dt

    from workers.store import case_notes

    first = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
    earlier, later = first - dt.timedelta(hours=1), first + dt.timedelta(hours=1)
    with engine.begin() as conn:
        received(conn, "read-late-1", "read-late-2")
        conn.execute(sa.update(cases_table).values(read_at=first))
        case_notes.keep_earliest_read(conn, {"read-late-1": earlier, "read-late-2": later})
    with engine.connect() as conn:
        read = dict(conn.execute(sa.select(cases_table.c.id, cases_table.c.read_at)).all())
    # read back aware on both databases
    assert read == {"read-late-1": earlier, "read-late-2": first}


def received_rows(*ids: str) -> list[dict[str, str]]:
    """The rows of received cases named ``ids``, as intake writes them."""
    return [
        {
            "id": i,
            "clinic_hsa_id": "SE2321000016-VC01",
            "sender_hsa_id": "SE2321000016-S101",
            "template_id": "t",
            "personnummer": "191212121212",
            "idempotency_key": f"k-{i}",
            "intake_message_id": "m1",
        }
        for i in ids
    ]
