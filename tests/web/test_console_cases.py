"""The clinic's cases in the console: its own only, filters, personnummer search, paging, the
case page, CSV export; every page that shows case data is in the access log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from tests.databases import migrated_engine
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from tests.web.console_support import (
    CLINIC_A,
    CLINIC_B,
    NURSE_A,
    add_users,
    build_app,
    csrf_of,
    sign_in,
)
from workers.case_states import CaseState
from workers.settings import Settings
from workers.store import access_log, cases, notifications
from workers.store.cases import Transition

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def nurse(
    sqlite_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, sa.Engine, list[str]]]:
    monkeypatch.setenv("OMVANT_WEB_PAGE_SIZE", "5")
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    residents = reachable_residents(1177, 8, frozenset({"sms"}))
    items = [
        cleared_item(f"a-{i}", residents[i], clinic=CLINIC_A, channels=["sms"]) for i in range(7)
    ]
    items.append(cleared_item("b-0", residents[7], clinic=CLINIC_B, channels=["sms"]))
    with engine.begin() as conn:
        store_cleared(conn, items)
        delivered = [
            Transition(i.case_id, CaseState.DELIVERED, {"delivered_at": NOW}) for i in items[:4]
        ]
        cases.apply(conn, delivered, stage="notification-dispatch")
        key = notifications.key_for("a-0", "sms")
        notifications.write_queued(
            conn, [notifications.Queued("a-0", "sms", "+46701740605")], refused="no-address"
        )
        assert notifications.claim(conn, [key], NOW) == {key}
        notifications.mark_sent(conn, key, "ref-a-0")
        cases.apply(
            conn,
            [
                Transition("a-0", CaseState.READ, {"read_at": NOW}),
                Transition("a-5", CaseState.REJECTED, reason="login-blocked"),
            ],
            stage="test",
        )
        conn.execute(
            sa.text("UPDATE cases SET answered_at = :at, answer_kind = 'answer' WHERE id = 'a-0'"),
            {"at": NOW},
        )
    with TestClient(
        build_app(Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/b"))
    ) as client:
        sign_in(client, "nurse-a")
        yield client, engine, residents
    engine.dispose()


def _search(client: TestClient, personnummer: str, **fields: str) -> httpx.Response:
    """The list's filter form posted with a personnummer (and the page's CSRF token)."""
    token = csrf_of(client.get("/arenden").text)
    return client.post(
        "/arenden", data={"csrf_token": token, "personnummer": personnummer, **fields}
    )


def _ids(page: str) -> list[str]:
    import re

    return re.findall(r'href="/arenden/([^"?]+)" class="case-link"', page)


def test_the_list_shows_only_the_clinics_cases_a_page_at_a_time(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, _engine, _residents = nurse
    first = client.get("/arenden").text
    second = client.get("/arenden", params={"sida": 2}).text
    assert len(_ids(first)) == 5 and len(_ids(second)) == 2
    assert set(_ids(first) + _ids(second)) == {f"a-{i}" for i in range(7)}
    assert "sida 1 av 2" in first and 'rel="next"' in first


def test_the_status_filters_are_1177s(nurse: tuple[TestClient, sa.Engine, list[str]]) -> None:
    client, _engine, _residents = nurse

    def listed(status: str) -> set[str]:
        return set(_ids(client.get("/arenden", params={"status": status}).text))

    assert listed("read") == {"a-0"}
    assert listed("unread") == {"a-1", "a-2", "a-3"}
    assert listed("answered") == {"a-0"}
    assert listed("rejected") == {"a-5"}
    assert listed("in-progress") == {"a-4", "a-6"}
    rejected = client.get("/arenden", params={"status": "rejected"}).text
    assert "Invånaren har spärrat sin inloggning" in rejected and "login-blocked" in rejected


def test_search_by_personnummer_finds_the_resident_and_is_logged(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, engine, residents = nurse
    hyphenated = f"{residents[2][:8]}-{residents[2][8:]}"
    page = _search(client, hyphenated).text
    assert _ids(page) == ["a-2"]
    assert residents[2] not in page  # masked in the list
    other = _search(client, residents[7]).text  # clinic B's
    assert _ids(other) == []
    with engine.connect() as conn:
        log = access_log.entries(conn, CLINIC_A)
    searches = [e for e in log if e.action == "cases-list" and "personnummer" in (e.detail or "")]
    assert [s.user_hsa_id for s in searches] == [NURSE_A, NURSE_A]
    assert residents[2] in searches[0].personnummer and residents[7] in searches[1].personnummer


def test_the_case_page_shows_history_notifications_and_answer_and_is_logged(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, engine, residents = nurse
    page = client.get("/arenden/a-0").text
    assert "Läst av invånaren" in page and "Levererat till inkorgen" in page
    assert "sms" in page and "Svar," in page
    assert f"{residents[0][:8]}-{residents[0][8:]}" in page
    with engine.connect() as conn:
        shown = [e for e in access_log.entries(conn, CLINIC_A) if e.action == "cases-show"]
    assert (
        shown
        and shown[-1].outcome == "allowed"
        and shown[-1].case_ids == ["a-0"]
        and shown[-1].user_hsa_id == NURSE_A
    )
    assert shown[-1].personnummer == [residents[0]] and shown[-1].unmasked


def test_another_clinics_case_is_not_found_by_url_and_the_attempt_is_logged(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, engine, residents = nurse
    answer = client.get("/arenden/b-0")
    assert answer.status_code == 404 and residents[7][:8] not in answer.text
    with engine.connect() as conn:
        tried = [e for e in access_log.entries(conn, CLINIC_A) if e.action == "cases-show"]
    assert tried and tried[-1].case_ids == ["b-0"] and tried[-1].personnummer == []
    assert tried[-1].outcome == "refused" and tried[-1].detail == "another unit's case"


def test_csv_export_has_every_matching_case_masked_unless_asked_and_is_logged(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, engine, residents = nurse
    answer = client.get("/arenden.csv", params={"status": "unread"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(r["case_id"] for r in rows) == ["a-1", "a-2", "a-3"]
    assert all(r["resident"].endswith("-****") for r in rows)
    full = list(
        csv.DictReader(io.StringIO(client.get("/arenden.csv", params={"fullstandiga": "1"}).text))
    )
    assert len(full) == 7 and {r["resident"] for r in full} == set(residents[:7])
    with engine.connect() as conn:
        lists = [e for e in access_log.entries(conn, CLINIC_A) if e.action == "cases-list"]
    exports = lists[-2:]
    assert [e.unmasked for e in exports] == [False, True] and len(exports[1].case_ids) == 7
    assert exports[0].user_hsa_id == NURSE_A


def test_a_personnummer_search_is_posted_and_the_number_is_in_no_address_and_no_log(
    nurse: tuple[TestClient, sa.Engine, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    client, engine, residents = nurse
    resident = residents[2]
    with engine.begin() as conn:  # six of the resident's cases: the search has two pages
        store_cleared(conn, [cleared_item(f"a-2-{i}", resident, clinic=CLINIC_A) for i in range(5)])
    page = client.get("/arenden").text
    assert '<form method="post" action="/arenden" class="filters"' in page
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logged:
        first = _search(client, f"{resident[:8]}-{resident[8:]}")
        assert first.request.method == "POST" and first.url.query == b""
        assert len(_ids(first.text)) == 5 and "sida 1 av 2" in first.text
        addresses = re.findall(r'(?:href|action)="([^"]*)"', first.text)
        assert addresses and not [a for a in addresses if resident[2:8] in a]
        following = re.search(
            r'<form method="post" action="/arenden" class="inline">(.*?)</form>', first.text, re.S
        )
        assert following and 'data-rel="next"' in following.group(1)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', following.group(1)))
        assert fields["sida"] == "2" and fields["personnummer"].replace("-", "") == resident
        second = client.post("/arenden", data=fields)
        assert len(_ids(second.text)) == 1 and set(_ids(first.text) + _ids(second.text)) == {
            "a-2",
            *(f"a-2-{i}" for i in range(5)),
        }
        exported = client.post(
            "/arenden.csv", data={**fields, "sida": "", "fullstandiga": "1"}
        ).text
        assert {r["resident"] for r in csv.DictReader(io.StringIO(exported))} == {resident}
    said = caplog.text + repr(logged)
    assert resident not in said and f"{resident[:8]}-{resident[8:]}" not in said
    assert client.post("/arenden", data={"personnummer": resident}).status_code == 403  # no CSRF


def test_a_personnummer_in_the_address_is_not_searched_for_and_is_dropped_from_it(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, _engine, residents = nurse
    answer = client.get(
        "/arenden",
        params={"status": "unread", "personnummer": residents[2]},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/arenden?status=unread"
    page = client.get("/arenden", params={"personnummer": residents[2]})
    assert page.url.path == "/arenden" and page.url.query == b""
    assert len(_ids(page.text)) == 5 and residents[2] not in page.text  # every case, unsearched


def test_a_case_address_with_an_upper_case_uuid_finds_the_case(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, engine, residents = nurse
    case_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "omvant-upper-case"))
    with engine.begin() as conn:
        store_cleared(conn, [cleared_item(case_id, residents[1], clinic=CLINIC_A)])
    lower = client.get(f"/arenden/{case_id}")
    upper = client.get(f"/arenden/{case_id.upper()}")
    assert lower.status_code == upper.status_code == 200
    assert case_id in upper.text and f"{residents[1][:8]}-{residents[1][8:]}" in upper.text
    assert client.get(f"/arenden/{case_id.upper()[:-1]}X").status_code == 404


def test_every_stage_a_case_history_names_has_its_words_in_both_languages(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    from producers.web import i18n
    from producers.web.wording import STAGE
    from workers.routes import STAGES

    assert set(STAGES) <= set(STAGE)
    client, engine, _residents = nurse
    with engine.begin() as conn:
        cases.apply(
            conn,
            [Transition("a-1", CaseState.NOTIFIED, {"notified_at": NOW})],
            stage="notification-sending",
        )
    swedish = client.get("/arenden/a-1").text
    assert "<td>avisering</td>" in swedish and "<td>leverans till inkorgen</td>" in swedish
    client.cookies.set(i18n.COOKIE, "en")
    english = client.get("/arenden/a-1").text
    assert "<td>notification</td>" in english and "<td>delivery to the inbox</td>" in english
    assert "notification-sending" not in swedish + english


def test_an_invalid_personnummer_searched_for_is_access_logged_as_typed_and_nowhere_else(
    nurse: tuple[TestClient, sa.Engine, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    client, engine, _residents = nurse
    typed = "19900101-2386"  # the check digit is wrong
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logged:
        page = _search(client, typed)
        fields = {"csrf_token": csrf_of(page.text), "personnummer": typed}
        exported = client.post("/arenden.csv", data=fields)
    assert page.status_code == 200 and _ids(page.text) == []
    assert "Personnumret är inte giltigt" in page.text
    assert page.text.count(typed) == 1, "only in the search field, as the clinic typed it"
    assert exported.status_code == 404 and typed not in exported.text
    said = caplog.text + repr(logged)
    assert typed not in said and "199001012386" not in said
    with engine.connect() as conn:
        log = access_log.entries(conn, CLINIC_A)
    assert not [e for e in log if "personnummer=searched" in (e.detail or "")], "none ran"
    tried = [e for e in log if e.outcome == "usage-error"]
    assert [(e.action, e.outcome, e.personnummer) for e in tried] == [
        ("cases-list", "usage-error", [typed]),
        ("cases-list", "usage-error", [typed]),
    ], "as the CLI's --resident: the number as given, never '-' or nothing"
    assert all("invalid-identity-number" in (e.detail or "") for e in tried)


def test_an_answered_case_reads_answered_in_the_csv_and_the_list_as_in_the_cli(
    nurse: tuple[TestClient, sa.Engine, list[str]],
) -> None:
    client, _engine, _residents = nurse
    rows = list(csv.DictReader(io.StringIO(client.get("/arenden.csv").text)))
    assert {r["case_id"]: r["status"] for r in rows}["a-0"] == "answered"
    page = client.get("/arenden", params={"status": "answered"}).text
    badges = re.findall(r'<span class="badge ([a-z-]+)">', page)
    assert badges == ["answered"], page
