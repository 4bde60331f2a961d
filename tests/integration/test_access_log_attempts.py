"""An access log an auditor can use (issue 10; patientdatalagen 4 kap. 3 §): every attempt to read
case data is logged, refused and wrong ones included, with the case ids asked for and the
outcome. ``omvant cases`` on PostgreSQL, as staff (or a script) would run it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from workers import case_access
from workers.store import access_log, cases
from workers.store.case_queries import CaseFilter
from workers.store.schema import access_log as access_log_table
from workers.store.schema import cases as cases_table

pytestmark = pytest.mark.integration

CLINIC_A = "SE2321000016-AL0A"
CLINIC_B = "SE2321000016-AL0B"
STAFF = "SE2321000016-U901"
PNR = "191212121212"


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = migrated_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            access_log_table.delete().where(
                access_log_table.c.unit_hsa_id.like("SE2321000016-AL0%")
            )
        )
        conn.execute(cases_table.delete().where(cases_table.c.id.in_(["al-a", "al-b"])))
        cases.insert_received(
            conn,
            [
                {
                    "id": case_id,
                    "clinic_hsa_id": clinic,
                    "sender_hsa_id": STAFF,
                    "template_id": "meddelande-till-invanare",
                    "personnummer": PNR,
                    "idempotency_key": case_id,
                }
                for case_id, clinic in (("al-a", CLINIC_A), ("al-b", CLINIC_B))
            ],
        )
    yield engine
    engine.dispose()


def omvant(postgres_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--database", postgres_url], env={})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def attempts(engine: sa.Engine, **query: str) -> list[access_log.Access]:
    with engine.connect() as conn:
        return access_log.search(conn, **query)


def test_a_refused_show_logs_the_case_id_asked_for_and_the_outcome(
    engine: sa.Engine, postgres_url: str
) -> None:
    code, out = omvant(postgres_url, "cases", "show", "al-b", "--clinic", CLINIC_A, "--user", STAFF)
    assert code == 1 and "not-found: the clinic" in out
    code, _out = omvant(
        postgres_url, "cases", "show", "nope", "--clinic", CLINIC_A, "--user", STAFF
    )
    assert code == 1
    code, _out = omvant(
        postgres_url, "cases", "show", "al-a", "--clinic", CLINIC_A, "--user", STAFF
    )
    assert code == 0
    logged = [
        (a.case_ids, a.outcome, a.detail) for a in reversed(attempts(engine, unit_hsa_id=CLINIC_A))
    ]
    assert logged == [
        (["al-b"], "refused", "another unit's case"),
        (["nope"], "refused", "no such case"),
        (["al-a"], "allowed", None),
    ]
    [asked] = attempts(engine, case_id="al-b")  # an auditor finds who tried B's case
    assert (asked.user_hsa_id, asked.unit_hsa_id, asked.personnummer) == (STAFF, CLINIC_A, [])


@pytest.mark.parametrize(
    ("args", "code", "unit", "user"),
    [
        (("cases", "list", "--status", "lost"), "unknown-status", CLINIC_A, STAFF),
        (("cases", "count", "--status", "lost"), "unknown-status", CLINIC_A, STAFF),
        (("cases", "list", "--since", "igår"), "invalid-date", CLINIC_A, STAFF),
        (("cases", "list", "--json", "--csv"), "usage-error", CLINIC_A, STAFF),
        (("cases", "list", "--template", "a\x00b"), "invalid-filter", CLINIC_A, STAFF),
        (("cases", "list", "--limit", "0"), "invalid-filter", CLINIC_A, STAFF),
        (("cases", "list", "--limit", "9" * 20), "invalid-filter", CLINIC_A, STAFF),
    ],
)
def test_a_wrong_request_is_logged_as_an_attempt(
    engine: sa.Engine,
    postgres_url: str,
    args: tuple[str, ...],
    code: str,
    unit: str,
    user: str,
) -> None:
    exit_code, out = omvant(postgres_url, *args, "--clinic", unit, "--user", user)
    assert exit_code == 2 and code in out
    [attempt] = attempts(engine, unit_hsa_id=unit)
    assert (attempt.user_hsa_id, attempt.outcome) == (user, "usage-error")
    assert attempt.detail is not None and attempt.detail.startswith(code)


def test_an_hsa_id_with_a_trailing_newline_is_refused_and_logged_as_given(
    engine: sa.Engine, postgres_url: str
) -> None:
    exit_code, out = omvant(
        postgres_url, "cases", "list", "--clinic", f"{CLINIC_A}\n", "--user", STAFF
    )
    assert exit_code == 2 and "invalid-hsa-id" in out
    exit_code, out = omvant(
        postgres_url, "cases", "show", "al-a", "--clinic", CLINIC_A, "--user", "nobody"
    )
    assert exit_code == 2 and "invalid-hsa-id" in out
    exit_code, _out = omvant(postgres_url, "cases", "count", "--user", STAFF)  # no --clinic
    assert exit_code == 2
    assert attempts(engine, unit_hsa_id=CLINIC_A)[0].user_hsa_id == "nobody"
    [newline] = attempts(engine, unit_hsa_id=f"{CLINIC_A}\\n")
    assert (newline.outcome, newline.action) == ("usage-error", "cases-list")
    assert [a.case_ids for a in attempts(engine, user_hsa_id="nobody")] == [["al-a"]]
    assert attempts(engine, unit_hsa_id="", user_hsa_id=STAFF)[0].action == "cases-count"
    # nothing was shown for the unit that does not exist
    with engine.connect() as conn:
        shown = conn.execute(
            sa.select(sa.func.count())
            .select_from(access_log_table)
            .where(
                access_log_table.c.unit_hsa_id == CLINIC_A,
                access_log_table.c.outcome == "allowed",
            )
        ).scalar_one()
    assert shown == 0


def test_a_case_id_with_a_nul_is_refused_without_a_crash_and_logged_escaped(
    engine: sa.Engine, postgres_url: str
) -> None:
    exit_code, _out = omvant(
        postgres_url, "cases", "show", "al-\x00a", "--clinic", CLINIC_A, "--user", STAFF
    )
    assert exit_code == 1
    [attempt] = attempts(engine, unit_hsa_id=CLINIC_A)
    assert (attempt.case_ids, attempt.outcome) == (["al-\\x00a"], "refused")


def test_the_store_functions_the_web_and_api_call_log_the_same_way(engine: sa.Engine) -> None:
    reader = case_access.Reader(STAFF, CLINIC_A)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(case_access.CaseNotFound):
        case_access.show_case(engine, reader, "al-b", now=now)
    listing = case_access.list_cases(engine, reader, CaseFilter(), now=now)
    assert [r.case_id for r in listing.rows] == ["al-a"] and not listing.more
    with pytest.raises(case_access.UsageError):
        case_access.count_cases(engine, reader, CaseFilter(status="lost"), now=now)
    assert [(a.action, a.outcome) for a in reversed(attempts(engine, unit_hsa_id=CLINIC_A))] == [
        ("cases-show", "refused"),
        ("cases-list", "allowed"),
        ("cases-count", "usage-error"),
    ]


def test_a_refused_answer_or_content_read_is_logged_as_what_was_attempted(
    engine: sa.Engine, postgres_url: str
) -> None:
    code, _out = omvant(
        postgres_url, "cases", "show", "al-b", "--answer", "--content",
        "--clinic", CLINIC_A, "--user", STAFF,
    )  # fmt: skip
    assert code == 1
    logged = {
        (a.action, a.outcome, tuple(a.case_ids)) for a in attempts(engine, unit_hsa_id=CLINIC_A)
    }
    assert logged == {
        ("cases-show", "refused", ("al-b",)),
        ("cases-show-answer", "refused", ("al-b",)),
        ("cases-show-content", "refused", ("al-b",)),
    }
