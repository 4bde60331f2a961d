"""Lists sent as one array literal (``workers/store/arrays.py``) arrive exactly as they were,
whatever they hold, on PostgreSQL; the store's chunk reads and writes give the same answers
on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.databases import emptied_engine, migrated_engine
from tests.delivery_support import received_row
from workers.store import cases, notifications
from workers.store.arrays import _element, among, literal
from workers.store.schema import case_events, notification_ledger
from workers.store.schema import cases as cases_table

AWKWARD = [
    "plain",
    "",
    "NULL",
    "null",
    'a "quoted" word',
    "back\\slash\\",
    "{braces},commas",
    " leading and trailing ",
    "new\nline\ttab",
    "åäö Ünïcode ✓",
    "'single'",
]


@pytest.fixture
def pg(postgres_url: str) -> sa.Engine:
    return migrated_engine(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    return emptied_engine(request, tmp_path, notification_ledger, case_events, cases_table)


def test_awkward_strings_and_nulls_round_trip_through_postgresql(pg: sa.Engine) -> None:
    values: list[str | None] = [*AWKWARD, None]
    with pg.connect() as conn:
        back = conn.execute(
            sa.text("SELECT CAST(:a AS VARCHAR[])"), {"a": literal(values)}
        ).scalar_one()
    assert back == values


def test_numbers_booleans_and_times_round_trip_through_postgresql(pg: sa.Engine) -> None:
    at = dt.datetime(2026, 12, 1, 14, 39, 15, 123456, tzinfo=dt.UTC)
    with pg.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT CAST(:i AS BIGINT[]), CAST(:b AS BOOLEAN[]), CAST(:t AS TIMESTAMPTZ[])"
            ),
            {
                "i": literal([0, -7, 2**40, None]),
                "b": literal([True, False, None]),
                "t": literal([at, None]),
            },
        ).one()
    assert row[0] == [0, -7, 2**40, None]
    assert row[1] == [True, False, None]
    assert row[2] == [at, None]


def test_among_finds_exactly_the_listed_rows(engine: sa.Engine) -> None:
    ids = [f"case-{word}" for word in AWKWARD]
    with engine.begin() as conn:
        cases.insert_received(
            conn,
            [
                received_row(case_id, idempotency_key=f"k-{n}", template_id="t")
                for n, case_id in enumerate(ids)
            ],
        )
        wanted = [ids[0], ids[2], ids[4], ids[5], "case-none-such"]
        found = conn.execute(
            sa.select(cases_table.c.id).where(among(conn, cases_table.c.id, wanted))
        ).scalars()
        assert sorted(found) == sorted(wanted[:4])
        assert set(cases.states_of(conn, ids)) == set(ids)
        by_id, by_key = cases.owners(
            conn, [ids[1]], [("SE2321000016-VC01", "k-3"), ("SE2321000016-VC02", "k-4")]
        )
        assert set(by_id) == {ids[1]}
        assert set(by_key) == {("SE2321000016-VC01", "k-1"), ("SE2321000016-VC01", "k-3")}


def test_received_cases_get_one_history_row_each_and_only_when_new(engine: sa.Engine) -> None:
    rows = [received_row(f"r-{n}") for n in range(3)]
    with engine.begin() as conn:
        assert cases.insert_received(conn, rows[:2]) == {"r-0", "r-1"}
        assert cases.insert_received(conn, rows) == {"r-2"}
        history = conn.execute(
            sa.select(case_events.c.case_id, case_events.c.state, case_events.c.stage)
        ).all()
    assert sorted(history) == [(f"r-{n}", "received", "intake") for n in range(3)]


def test_the_delivery_intent_keeps_a_key_once_recorded_and_names_cases_delivered(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        cases.insert_received(conn, [received_row(f"d-{n}") for n in range(3)])
        conn.execute(
            cases_table.update()
            .where(cases_table.c.id == "d-0")
            .values(delivery_key="d-0:inbox", inbox_message_id="inbox-0")
        )
        keys = {f"d-{n}": f"d-{n}:new" for n in range(3)}
        assert cases.record_intent(conn, keys) == {"d-0": "inbox-0"}
        assert cases.record_intent(conn, {}) == {}
        kept = dict(conn.execute(sa.select(cases_table.c.id, cases_table.c.delivery_key)).all())
    assert kept == {"d-0": "d-0:inbox", "d-1": "d-1:new", "d-2": "d-2:new"}


def test_ledger_chunk_writes_claim_and_mark_each_row_once(engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [notifications.Queued(f"c{n}", "sms", f"+4670000000{n}") for n in range(5)]
    rows.append(notifications.Queued("c-none", "sms", None))
    with engine.begin() as conn:
        notifications.write_queued(conn, rows, refused="no-notification-channel")
        notifications.write_queued(conn, rows, refused="no-notification-channel")  # again
        keys = [r.key for r in rows]
        assert set(notifications.entries(conn, keys)) == set(keys)
        claimed = notifications.claim(conn, keys, now)
        assert claimed == set(keys[:5])  # the refused row is never sendable
        assert notifications.claim(conn, keys, now) == set()
        notifications.mark_sent_many(conn, [(k, f"ref-{k}") for k in keys[:3]])
        found = notifications.entries_for(conn, [r.case_id for r in rows])
    assert [found[k].status for k in keys] == [notifications.SENT] * 3 + [
        notifications.PENDING
    ] * 2 + [notifications.REFUSED]
    assert found[keys[0]].provider_ref == f"ref-{keys[0]}"


def test_a_groups_answers_and_the_next_claim_are_written_together(engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [notifications.Queued(f"c{n}", "sms", f"+4670000000{n}") for n in range(4)]
    rows.append(notifications.Queued("c0", "email", "a@example.se"))
    keys = [r.key for r in rows]
    with engine.begin() as conn:
        notifications.write_queued(conn, rows, refused="no-notification-channel")
        assert notifications.claim(conn, keys[:2], now) == set(keys[:2])
        taken = [(k, f"ref-{k}") for k in keys[:2]]
        claimed = notifications.mark_sent_and_claim(conn, taken, [*keys[1:3], keys[4]], now)
        assert claimed == {keys[2], keys[4]}  # the row just marked sent is not claimed again
        found = notifications.entries(conn, keys)
        channels = notifications.sent_channels(conn, ["c0", "c1", "c2", "c3"])
        rounds = notifications.sent_rounds(conn, ["c0", "c2"])
    assert [found[k].status for k in keys] == [notifications.SENT] * 2 + [
        notifications.PENDING,
        notifications.QUEUED,
        notifications.PENDING,
    ]
    assert found[keys[1]].provider_ref == f"ref-{keys[1]}"
    assert channels == {"c0": ["sms"], "c1": ["sms"]}
    assert rounds == {("c0", 1): {"sms"}}


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet=st.sampled_from(["a", "å", '"', "\\", ",", "{", "}", " ", "N"])),
        ),
        max_size=6,
    )
)
def test_the_joined_literal_of_a_column_is_the_element_by_element_one(
    values: list[str | None],
) -> None:
    """``literal``'s shortcuts (a column of plain strings, of strings and NULLs, of NULLs,
    of integers, of times, joined at once) write exactly what writing each element does."""
    at = dt.datetime(2026, 12, 1, 18, 50, 1, 5, tzinfo=dt.UTC)
    strings = [v for v in values if v is not None]
    for column in (
        values,
        strings,
        [None] * len(values),
        [len(v or "") - 3 for v in values],
        [at + dt.timedelta(seconds=len(v or "")) for v in values],
        [*values, 7],
    ):
        each = "{" + ",".join(map(_element, column)) + "}"
        assert literal(column) == each
        assert literal(iter(column)) == each
