"""The clinic's view: its own cases only, read / unread / overdue, every read access-logged."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from tests.delivery_support import (
    CLINIC_A,
    CLINIC_B,
    STAFF_A,
    cleared_item,
    reachable_residents,
    store_cleared,
)
from tests.processes import run_omvant
from workers.case_states import CaseState
from workers.store import access_log, case_queries, cases, follow_ups, notifications
from workers.store.cases import Transition, utcnow
from workers.store.schema import cases as cases_table

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    """Clinic A: one read, one unread (overdue), one rejected; clinic B: one unread."""
    engine = migrated_engine(sqlite_url)
    residents = reachable_residents(1177, 4, frozenset({"sms"}))
    items = [
        cleared_item("a-read", residents[0], channels=["sms"]),
        cleared_item("a-unread", residents[1], channels=["sms"], template_id="kallelse-screening"),
        cleared_item("a-rejected", residents[2], channels=["sms"], batch_id="b2"),
        cleared_item("b-unread", residents[3], channels=["sms"], clinic=CLINIC_B),
    ]
    with engine.begin() as conn:
        store_cleared(conn, items)
        delivered = [
            Transition(c, CaseState.DELIVERED, {"delivered_at": NOW})
            for c in ("a-read", "a-unread", "b-unread")
        ]
        cases.apply(conn, delivered, stage="notification-dispatch")
        for case_id in ("a-read", "a-unread", "b-unread"):
            key = notifications.key_for(case_id, "sms")
            notifications.write_queued(
                conn, [notifications.Queued(case_id, "sms", "+46701740605")], refused="x"
            )
            notifications.mark_sent(conn, key, f"ref-{case_id}")
        cases.apply(
            conn,
            [
                Transition("a-read", CaseState.READ, {"read_at": NOW}),
                Transition("a-rejected", CaseState.REJECTED, reason="attachment-missing"),
            ],
            stage="test",
        )
        follow_ups.schedule(
            conn,
            [
                follow_ups.FollowUp("a-unread", CLINIC_A, "flag", utcnow() - dt.timedelta(hours=1)),
                follow_ups.FollowUp("b-unread", CLINIC_B, "flag", utcnow() - dt.timedelta(hours=1)),
            ],
        )
    yield engine
    engine.dispose()


def ids(rows: list[case_queries.CaseRow]) -> set[str]:
    return {row.case_id for row in rows}


def test_a_clinic_lists_shows_and_counts_only_its_own_cases(engine: sa.Engine) -> None:
    every = case_queries.CaseFilter()
    with engine.connect() as conn:
        assert ids(case_queries.list_cases(conn, CLINIC_A, every, now=NOW)) == {
            "a-read",
            "a-unread",
            "a-rejected",
        }
        assert ids(case_queries.list_cases(conn, CLINIC_B, every, now=NOW)) == {"b-unread"}
        assert case_queries.count_cases(conn, CLINIC_A, every, now=NOW) == 3
        assert case_queries.count_cases(conn, CLINIC_B, every, now=NOW) == 1
        assert case_queries.show_case(conn, CLINIC_A, "b-unread", now=NOW) is None
        assert case_queries.show_case(conn, CLINIC_B, "b-unread", now=NOW) is not None
        by_batch = case_queries.CaseFilter(batch_id="b1")
        assert "b-unread" not in ids(case_queries.list_cases(conn, CLINIC_A, by_batch, now=NOW))


def test_status_template_batch_and_since_filters(engine: sa.Engine) -> None:
    def listed(**kw: object) -> set[str]:
        with engine.connect() as conn:
            return ids(
                case_queries.list_cases(conn, CLINIC_A, case_queries.CaseFilter(**kw), now=NOW)  # type: ignore[arg-type]
            )

    assert listed(status="read") == {"a-read"}
    assert listed(status="unread") == {"a-unread"}
    assert listed(status="overdue") == {"a-unread"}
    assert listed(status="rejected") == {"a-rejected"}
    assert listed(status="failed") == set()
    assert listed(template_id="kallelse-screening") == {"a-unread"}
    assert listed(batch_id="b2") == {"a-rejected"}
    assert listed(since=NOW + dt.timedelta(days=1)) == set()
    with pytest.raises(case_queries.UnknownStatus):
        listed(status="lost")


def test_show_gives_the_history_reason_codes_and_channels(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        read = case_queries.show_case(conn, CLINIC_A, "a-read", now=NOW)
        rejected = case_queries.show_case(conn, CLINIC_A, "a-rejected", now=NOW)
    assert read is not None and rejected is not None
    assert [e.state for e in read.events] == [
        "received",
        "validated",
        "composed",
        "cleared",
        "delivered",
        "read",
    ]
    assert read.case.channels_notified == ("sms",)
    assert [(n.channel, n.status) for n in read.notifications] == [("sms", "sent")]
    assert rejected.events[-1].reason == "attachment-missing"


def run_cli(sqlite_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cases_list_prints_json_and_csv_with_personnummer_masked(
    engine: sa.Engine, sqlite_url: str
) -> None:
    out = run_cli(sqlite_url, "cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--json")
    listed = {r["case_id"]: r for r in json.loads(out)}
    assert set(listed) == {"a-read", "a-unread", "a-rejected"}
    assert listed["a-read"]["status"] == "read"
    assert listed["a-unread"]["overdue"] is True
    assert all(r["resident"].endswith("-****") for r in listed.values())
    csv_out = run_cli(
        sqlite_url,
        "cases",
        "list",
        "--clinic",
        CLINIC_A,
        "--user",
        STAFF_A,
        "--csv",
        "--status",
        "unread",
        "--show-personnummer",
    )
    rows = list(csv.DictReader(io.StringIO(csv_out)))
    assert [(r["case_id"], len(r["resident"])) for r in rows] == [("a-unread", 12)]


def test_cases_list_json_gives_null_for_what_has_not_happened_and_says_when_cut(
    engine: sa.Engine, sqlite_url: str
) -> None:
    base = ["cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--database", sqlite_url]
    listed = {r["case_id"]: r for r in json.loads(run_cli(sqlite_url, *base[:-2], "--json"))}
    assert listed["a-unread"]["read_at"] is None
    assert listed["a-rejected"]["delivered_at"] is None
    assert listed["a-read"]["read_at"] is not None
    cut = CliRunner().invoke(app, [*base, "--json", "--limit", "2"])
    assert cut.exit_code == 0 and len(json.loads(cut.stdout)) == 2
    assert "first 2 cases only" in cut.stderr
    whole = CliRunner().invoke(app, [*base, "--json", "--limit", "3"])
    assert "first" not in whole.stderr
    both = CliRunner().invoke(app, [*base, "--json", "--csv"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr


def test_every_read_is_in_the_access_log_with_who_unit_cases_and_residents(
    engine: sa.Engine, sqlite_url: str
) -> None:
    run_cli(sqlite_url, "cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--json")
    run_cli(
        sqlite_url, "cases", "show", "a-read", "--clinic", CLINIC_A, "--user", STAFF_A, "--json"
    )
    refused = CliRunner().invoke(
        app,
        [
            "cases",
            "show",
            "b-unread",
            "--clinic",
            CLINIC_A,
            "--user",
            STAFF_A,
            "--database",
            sqlite_url,
        ],
    )
    assert refused.exit_code == 1
    with engine.connect() as conn:
        log = access_log.entries(conn, CLINIC_A)
        pnr = conn.execute(
            sa.select(cases_table.c.personnummer).where(cases_table.c.id == "a-read")
        ).scalar()
    assert [(e.action, e.user_hsa_id, e.unit_hsa_id) for e in log] == [
        ("cases-list", STAFF_A, CLINIC_A),
        ("cases-show", STAFF_A, CLINIC_A),
        ("cases-show", STAFF_A, CLINIC_A),
    ]
    assert set(log[0].case_ids) == {"a-read", "a-unread", "a-rejected"}
    assert log[1].case_ids == ["a-read"] and log[1].personnummer == [pnr]
    # another clinic's case: nothing shown, the attempt is logged with the id asked for
    assert (log[2].case_ids, log[2].personnummer, log[2].outcome) == (["b-unread"], [], "refused")
    assert [e.outcome for e in log[:2]] == ["allowed", "allowed"]


def test_reading_cases_needs_a_user_for_the_access_log(engine: sa.Engine, sqlite_url: str) -> None:
    result = CliRunner().invoke(
        app, ["cases", "list", "--clinic", CLINIC_A, "--database", sqlite_url], env={}
    )
    assert result.exit_code == 2
    assert "invalid-hsa-id" in result.output


def test_cases_count_counts_the_clinics_own_and_follow_up_flags_the_overdue(
    engine: sa.Engine, sqlite_url: str
) -> None:
    count = ["cases", "count", "--user", STAFF_A, "--status", "overdue"]
    assert run_cli(sqlite_url, *count, "--clinic", CLINIC_A).strip() == "1"
    assert run_cli(sqlite_url, *count, "--clinic", CLINIC_B).strip() == "1"
    assert run_cli(sqlite_url, "cases", "count", "--clinic", CLINIC_A, "--user", STAFF_A) == "3\n"
    assert json.loads(run_cli(sqlite_url, "cases", "follow-up", "--json")) == {"flagged": 2}
    assert json.loads(run_cli(sqlite_url, "cases", "follow-up", "--json")) == {}


def test_a_personalised_notification_text_stops_a_command_with_a_clear_error(
    sqlite_url: str,
) -> None:
    result = run_omvant(
        "cases",
        "follow-up",
        settings={"OMVANT_NOTIFICATION_TEXT": "Hej {{ fornamn }}, du har post"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "notification-text-personalised" in result.stderr
    assert "{{ fornamn }}" in result.stderr


def test_a_bad_limit_says_its_bounds_whole_while_identity_numbers_stay_masked(
    engine: sa.Engine, sqlite_url: str
) -> None:
    from workers.log import mask_identity_numbers

    base = ["cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--database", sqlite_url]
    refused = CliRunner().invoke(app, [*base, "--limit", "-5"])
    assert refused.exit_code == 2
    assert "an offset 0 to 1,000,000,000)" in refused.stderr, refused.stderr
    assert "****" not in refused.stderr
    said = mask_identity_numbers("--limit takes 1 to 100,000; resident 19121212-1212")
    assert said == "--limit takes 1 to 100,000; resident 19121212-****"


def test_an_answered_case_reads_answered_in_table_json_and_csv_as_status_answered_finds_it(
    engine: sa.Engine, sqlite_url: str
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(cases_table)
            .where(cases_table.c.id == "a-read")
            .values(answered_at=NOW, answer_kind="answer")
        )
    base = ["cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A]
    answered = json.loads(run_cli(sqlite_url, *base, "--status", "answered", "--json"))
    assert [(r["case_id"], r["status"]) for r in answered] == [("a-read", "answered")]
    everything = {
        r["case_id"]: r["status"] for r in json.loads(run_cli(sqlite_url, *base, "--json"))
    }
    assert everything == {"a-read": "answered", "a-unread": "unread", "a-rejected": "rejected"}
    rows = list(csv.DictReader(io.StringIO(run_cli(sqlite_url, *base, "--csv"))))
    assert {r["case_id"]: r["status"] for r in rows}["a-read"] == "answered"
    table = run_cli(sqlite_url, *base, "--status", "answered", "--wide")
    [line] = [t for t in table.splitlines() if "a-read" in t]
    assert "answered" in line and " read " not in line, table


def test_an_invalid_resident_searched_for_is_access_logged_as_given(
    engine: sa.Engine, sqlite_url: str
) -> None:
    base = ["cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--database", sqlite_url]
    refused = CliRunner().invoke(app, [*base, "--resident", "199001012386"])
    assert refused.exit_code == 2 and "invalid-identity-number" in refused.stderr
    assert "199001012386" not in refused.output, "never in clear text on the terminal"
    with engine.connect() as conn:
        [entry] = access_log.entries(conn, CLINIC_A)
    assert (entry.action, entry.outcome) == ("cases-list", "usage-error")
    assert entry.personnummer == ["199001012386"], "kept as a valid one is: in the database"
