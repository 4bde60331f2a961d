"""The on-call pages: queues, dead letters (inspect redacted, replay once), stuck cases.

Only the on-call role sees them; they call ``workers.status``, ``workers.failures`` and
``workers.replay`` as ``omvant status`` and ``omvant dlq`` do, on the in-process broker.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.databases import migrated_engine
from tests.web.console_support import (
    CLINIC_A,
    FREE_TEXT,
    NURSE_A,
    ONCALL,
    add_users,
    build_app,
    console_of,
    csrf_of,
    insert_dead_letter,
    residents_with,
    sign_in,
)
from workers.adapters.account_directory import AccountStatus
from workers.queues import all_queues
from workers.settings import Settings
from workers.store.schema import access_log, cases, failures, oncall_audit


@pytest.fixture
def client(sqlite_url: str, tmp_path: object) -> Iterator[TestClient]:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    engine.dispose()
    settings = Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs")
    with TestClient(build_app(settings)) as test_client:
        yield test_client


def _engine(client: TestClient) -> sa.Engine:
    return console_of(client.app).engine  # type: ignore[arg-type]


def _dead_letter(client: TestClient, resident: str, key: str = "k-1") -> str:
    return insert_dead_letter(_engine(client), resident, key)[0]


def _queued(client: TestClient, queue: str = "recipient-validation") -> int:
    broker = console_of(client.app).send_broker()  # type: ignore[arg-type]
    return int(broker.queues[queue].qsize())  # type: ignore[attr-defined]


def _audit(client: TestClient) -> list[sa.Row[object]]:
    with _engine(client).connect() as conn:
        return list(conn.execute(sa.select(oncall_audit).order_by(oncall_audit.c.id)))


ONCALL_PAGES = ["/drift", "/drift/fel", "/drift/fel/F1", "/drift/fastnade", "/drift/utskick"]


@pytest.mark.parametrize("path", ONCALL_PAGES)
def test_oncall_pages_need_a_session_and_the_oncall_role(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    for user in ("nurse-a", "admin-a"):
        client.cookies.clear()
        sign_in(client, user)
        refused = client.get(path)
        assert refused.status_code == 403 and "kräver rollen" in refused.text


def test_staff_cannot_replay_even_with_their_own_csrf_token(client: TestClient) -> None:
    failure = _dead_letter(client, residents_with(AccountStatus.ACTIVE, 1)[0])
    token = sign_in(client, "nurse-a")
    answer = client.post(
        "/drift/fel/kor-om", data={"id": failure, "confirm": "yes", "csrf_token": token}
    )
    assert answer.status_code == 403
    assert _queued(client) == 0
    assert _audit(client) == []


def test_the_overview_shows_every_lane_its_depth_and_the_oldest_waiting_case(
    client: TestClient,
) -> None:
    resident = residents_with(AccountStatus.ACTIVE, 1)[0]
    _dead_letter(client, resident)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with _engine(client).begin() as conn:
        conn.execute(
            cases.insert().values(
                id="c-waiting", clinic_hsa_id=CLINIC_A, sender_hsa_id=NURSE_A,
                template_id="meddelande-till-invanare", personnummer=resident,
                idempotency_key="w-1", state="validated", state_rank=20,
                received_at=old, updated_at=old,
            )
        )  # fmt: skip
    sign_in(client, "oncall")
    page = client.get("/drift")
    assert page.status_code == 200
    for queue in all_queues():
        assert f'data-queue="{queue}"' in page.text
    row = page.text.split('data-queue="message-composition"', 1)[1].split("</tr>", 1)[0]
    assert "2,0 h" in row  # the validated case has waited two hours for composition
    assert "outage" in page.text
    assert "Fastnade ärenden" in page.text
    assert resident not in page.text and resident[:8] not in page.text


def test_inspecting_a_dead_letter_masks_the_resident_leaves_out_the_text_and_is_logged(
    client: TestClient,
) -> None:
    resident = residents_with(AccountStatus.ACTIVE, 1)[0]
    failure = _dead_letter(client, resident)
    sign_in(client, "oncall")
    listing = client.get("/drift/fel")
    assert f'id="inspect-{failure}"' in listing.text and "outage" in listing.text
    page = client.get(f"/drift/fel/{failure}")
    assert page.status_code == 200
    assert resident not in page.text and resident[8:] not in page.text
    assert FREE_TEXT not in page.text and "[left out]" in page.text
    assert f"{resident[:8]}-****" in page.text  # the masked form, in the detail and traceback
    with _engine(client).connect() as conn:
        logged = conn.execute(sa.select(access_log).where(access_log.c.action == "dlq-show")).one()
    assert logged.user_hsa_id == ONCALL
    assert [e.action for e in _audit(client)] == ["show"]


def test_a_replay_asks_first_then_sends_once_and_a_second_replay_sends_nothing(
    client: TestClient,
) -> None:
    failure = _dead_letter(client, residents_with(AccountStatus.ACTIVE, 1)[0])
    token = sign_in(client, "oncall")

    refused = client.post("/drift/fel/kor-om", data={"id": failure, "confirm": "yes"})
    assert refused.status_code == 403  # no CSRF token
    assert _queued(client) == 0 and _audit(client) == []

    asked = client.post("/drift/fel/kor-om", data={"id": failure, "csrf_token": token})
    assert asked.status_code == 200 and 'id="confirm-replay"' in asked.text
    assert '<th scope="col">Förklaring</th>' in asked.text
    assert (
        "Skickas till kön recipient-validation." in asked.text and ">to recipient" not in asked.text
    )
    assert _queued(client) == 0  # the question sent nothing (the replay's dry run)
    assert [(e.action, e.dry_run) for e in _audit(client)] == [("replay", True)]

    confirm = {"id": failure, "csrf_token": csrf_of(asked.text), "confirm": "yes"}
    done = client.post("/drift/fel/kor-om", data=confirm, follow_redirects=False)
    assert done.status_code == 303 and "aterkorda=1" in done.headers["location"]
    assert _queued(client) == 1
    listing = client.get(done.headers["location"])
    assert 'id="replay-notice"' in listing.text
    assert f'id="inspect-{failure}"' not in listing.text  # it left the list

    again = client.post("/drift/fel/kor-om", data=confirm, follow_redirects=False)
    assert again.status_code == 303 and "hoppade=1" in again.headers["location"]
    assert _queued(client) == 1  # the second replay sent nothing
    entries = _audit(client)
    assert [(e.action, e.dry_run, e.who) for e in entries] == [
        ("replay", True, ONCALL),
        ("replay", False, ONCALL),
        ("replay", False, ONCALL),
    ]
    assert json.loads(entries[1].outcome)["totals"] == {"replayed": 1}
    assert json.loads(entries[2].outcome)["totals"] == {"skipped": 1}
    with _engine(client).connect() as conn:
        assert conn.execute(sa.select(failures.c.status)).scalar_one() == "replayed"
    shown = client.get(f"/drift/fel/{failure}").text
    assert "(körd om 1 gång)" in shown and "gånger" not in shown


def test_a_group_is_replayed_by_queue_and_reason(client: TestClient) -> None:
    residents = residents_with(AccountStatus.ACTIVE, 2)
    for index, resident in enumerate(residents):
        _dead_letter(client, resident, key=f"g-{index}")
    token = sign_in(client, "oncall")
    group = {"ko": "recipient-validation", "orsak": "outage", "csrf_token": token}
    asked = client.post("/drift/fel/kor-om", data=group)
    assert "Valda meddelanden: 2" in asked.text
    done = client.post("/drift/fel/kor-om", data={**group, "confirm": "yes"})
    assert done.status_code == 200 and 'id="no-failures"' in done.text
    assert _queued(client) == 2


def test_hostile_ids_and_names_are_refused_without_touching_anything(client: TestClient) -> None:
    token = sign_in(client, "oncall")
    for path in (
        "/drift/fel/abc",
        "/drift/fel/F99999999999999999999999",
        "/drift/fel/F1%27%20OR%201=1",
        "/drift/fel/F424242",
        "/drift/fel?ko=%3Cscript%3E",
        "/drift/fel?orsak=" + "x" * 5000,
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "<script>" not in answer.text
    for data in (
        {"id": "F1; DROP TABLE failures"},
        {"id": ["F1"] * 501},
        {"ko": "../../etc"},
        {},
    ):
        answer = client.post("/drift/fel/kor-om", data={**data, "csrf_token": token})
        assert answer.status_code in (404, 422), data
    assert [e.action for e in _audit(client)] == []


def test_stuck_cases_show_ids_clinics_and_ages_but_no_resident(client: TestClient) -> None:
    resident = residents_with(AccountStatus.ACTIVE, 1)[0]
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    with _engine(client).begin() as conn:
        conn.execute(
            cases.insert().values(
                id="c-stuck", clinic_hsa_id=CLINIC_A, sender_hsa_id=NURSE_A,
                template_id="meddelande-till-invanare", personnummer=resident,
                idempotency_key="s-1", state="received", state_rank=10,
                received_at=old, updated_at=old,
            )
        )  # fmt: skip
    sign_in(client, "oncall")
    page = client.get("/drift/fastnade")
    assert page.status_code == 200
    row = page.text.split("<code>c-stuck</code>", 1)[1].split("</tr>", 1)[0]
    assert CLINIC_A in row and "3,0 h" in row
    assert resident not in page.text and resident[:8] not in page.text


def test_a_server_on_the_in_process_broker_says_on_every_page_that_sends_go_nowhere(
    client: TestClient,
) -> None:
    sign_in(client, "oncall")
    assert 'id="memory-broker-banner"' not in client.get("/drift").text  # the demo's case
    console_of(client.app).isolated_broker = True  # type: ignore[arg-type]  # as omvant serve sets it
    assert 'id="memory-broker-banner"' in client.get("/drift").text
    client.cookies.clear()
    sign_in(client, "nurse-a")
    assert "memory://" in client.get("/skicka").text
