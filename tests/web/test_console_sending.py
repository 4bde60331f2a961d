"""Sending a case in the console, the seed's steps: template, residents and their verdicts,
fragments in any order, free text, attachments checked on upload, preview, send."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from producers import attachment_samples
from producers.web import drafts
from tests.databases import migrated_engine
from tests.web.console_support import (
    CLINIC_A,
    NURSE_A,
    add_users,
    build_app,
    console_of,
    no_channel_residents,
    residents_with,
    sign_in,
)
from workers.adapters.account_directory import AccountStatus
from workers.composition import compose
from workers.queues import queue_name
from workers.settings import Settings
from workers.store.schema import send_drafts
from workers.templates import store

TEMPLATE = "meddelande-till-invanare"


@pytest.fixture
def nurse(sqlite_url: str, tmp_path: object) -> Iterator[tuple[TestClient, str]]:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    engine.dispose()
    settings = Settings(
        database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs", broker_url="memory://"
    )
    with TestClient(build_app(settings)) as client:
        yield client, sign_in(client, "nurse-a")


def _begin(client: TestClient, token: str) -> str:
    chosen = client.post(
        "/skicka", data={"csrf_token": token, "template_id": TEMPLATE}, follow_redirects=False
    )
    assert chosen.status_code == 303
    return str(chosen.headers["location"])


def _act(client: TestClient, path: str, token: str, action: str, **fields: str) -> str:
    answer = client.post(path, data={"csrf_token": token, "action": action, **fields})
    assert answer.status_code in (200, 422), answer.text[:1000]
    return html.unescape(answer.text)


def test_the_template_list_offers_only_active_templates(nurse: tuple[TestClient, str]) -> None:
    client, _token = nurse
    page = client.get("/skicka").text
    assert "Meddelande till invånare" in page
    assert "gammal-kallelse" not in page  # the starter library's inactive template


def test_each_resident_gets_the_pipelines_verdict_with_its_reason_at_once(
    nurse: tuple[TestClient, str],
) -> None:
    client, token = nurse
    path = _begin(client, token)
    ok = residents_with(AccountStatus.ACTIVE, 1)[0]
    blocked = residents_with(AccountStatus.BLOCKED, 1)[0]
    nobody = residents_with(AccountStatus.NO_ACCOUNT, 1)[0]
    silent = no_channel_residents(1)[0]
    page = _act(
        client,
        path,
        token,
        "add-residents",
        personnummer=f"{ok} {blocked}\n{nobody},{silent} 19900101-0000",
    )
    rows = re.findall(r'<tr class="(ok|refused)">(.*?)</tr>', page, re.S)
    assert [r[0] for r in rows] == ["ok", "refused", "refused", "refused", "refused"]
    assert "Invånaren har spärrat sin inloggning" in rows[1][1] and "login-blocked" in rows[1][1]
    assert "ingen inloggning på 1177" in rows[2][1] and "no-account" in rows[2][1]
    assert "no-notification-channel" in rows[3][1]
    assert "invalid-identity-number" in rows[4][1]
    assert "aviseras via" in rows[0][1]
    refused = _act(client, path, token, "send")
    assert "Ta bort dem som inte kan nås innan du skickar" in refused


def test_fragments_are_plussed_in_in_any_order_and_the_preview_is_the_composers(
    nurse: tuple[TestClient, str],
) -> None:
    client, token = nurse
    path = _begin(client, token)
    resident = residents_with(AccountStatus.ACTIVE, 1)[0]
    _act(client, path, token, "add-residents", personnummer=resident)
    _act(client, path, token, "plus:tid-bokad")
    _act(client, path, token, "plus:halsning")
    page = _act(client, path, token, "up:1")  # "Hej!" first now
    chosen = re.search(r'<ol class="chosen" id="chosen-fragments">(.*?)</ol>', page, re.S)
    assert chosen and chosen.group(1).index("Hej!") < chosen.group(1).index("Vi har bokat")
    page = _act(client, path, token, "preview", free_text="Ta med legitimation <b>ordentligt</b>.")
    services = console_of(client.app)  # type: ignore[arg-type]
    with services.begin() as conn:
        template = store.load(conn, TEMPLATE)
        draft = drafts.load(conn, path.rsplit("/", 1)[1], user_id=1, clinic_hsa_id=CLINIC_A)
    assert draft.fragments == ["halsning", "tid-bokad"]
    expected = compose(
        drafts.composer_input(draft),
        template,
        services.catalogue,
        today=services.today(),
        max_body_chars=10_000,
    )
    body = re.search(r'<div class="pre" id="preview-body">(.*?)</div>', page, re.S)
    signature = re.search(r'id="preview-signature">(.*?)</p>', page, re.S)
    assert body and html.unescape(body.group(1)) == html.unescape(expected.body)
    assert signature and html.unescape(signature.group(1)) == html.unescape(expected.signature)
    assert expected.sent_on.isoformat() in page
    staff = services.catalogue.staff(NURSE_A)
    assert staff is not None and (
        staff.name in page or services.catalogue.unit(CLINIC_A).name in page
    )  # type: ignore[union-attr]
    assert "Ta med legitimation <b>ordentligt</b>." in page  # shown as text, never as markup


def test_attachments_are_checked_on_upload_and_a_refused_file_shows_its_reason(
    nurse: tuple[TestClient, str],
) -> None:
    client, token = nurse
    path = _begin(client, token)
    word = client.post(
        path,
        data={"csrf_token": token, "action": "attach"},
        files={"file": ("remiss.docx", attachment_samples.docx(), "application/octet-stream")},
    )
    assert word.status_code == 422
    assert "attachment-type-not-allowed" in word.text and "inte pdf, jpg eller png" in word.text
    renamed = client.post(
        path,
        data={"csrf_token": token, "action": "attach"},
        files={"file": ("bild.pdf", attachment_samples.png(), "application/pdf")},
    )
    assert "attachment-type-mismatch" in renamed.text
    good = client.post(
        path,
        data={"csrf_token": token, "action": "attach"},
        files={"file": ("kallelse.pdf", attachment_samples.pdf(2), "application/pdf")},
    )
    assert good.status_code == 200 and "kallelse.pdf" in good.text and "2 sidor" in good.text
    services = console_of(client.app)  # type: ignore[arg-type]
    with services.begin() as conn:
        draft = drafts.load(conn, path.rsplit("/", 1)[1], user_id=1, clinic_hsa_id=CLINIC_A)
    assert [a.filename for a in draft.attachments] == ["kallelse.pdf"]
    assert services.blobs.get(draft.attachments[0].sha256) is not None


def test_send_puts_the_cases_on_the_intake_queue_once_and_the_draft_is_gone(
    nurse: tuple[TestClient, str],
) -> None:
    client, token = nurse
    path = _begin(client, token)
    residents = residents_with(AccountStatus.ACTIVE, 2)
    _act(client, path, token, "add-residents", personnummer=" ".join(residents))
    _act(client, path, token, "plus:halsning")
    client.post(
        path,
        data={"csrf_token": token, "action": "attach"},
        files={"file": ("bild.png", attachment_samples.png(), "image/png")},
    )
    sent = client.post(
        path,
        data={"csrf_token": token, "action": "send", "urgent": "on", "free_text": "Välkommen!"},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/arenden?skickat=2")
    services = console_of(client.app)  # type: ignore[arg-type]
    broker = services.send_broker()
    urgent = queue_name("recipient-validation.urgent")
    messages = [json.loads(m) for m in broker.queues[urgent].queue]  # type: ignore[attr-defined]
    assert len(messages) == 1
    records = messages[0]["args"][0]["payload"]
    assert sorted(r["personnummer"] for r in records) == sorted(residents)
    assert {r["sender_hsa_id"] for r in records} == {NURSE_A}
    assert {r["clinic_hsa_id"] for r in records} == {CLINIC_A}
    assert all(r["priority"] == "urgent" and r["fragments"] == ["halsning"] for r in records)
    assert all(r["free_text"] == "Välkommen!" and len(r["attachments"]) == 1 for r in records)
    with services.begin() as conn:
        assert conn.execute(send_drafts.select()).first() is None
    assert client.post(path, data={"csrf_token": token, "action": "send"}).status_code == 404


def test_another_users_draft_cannot_be_opened(nurse: tuple[TestClient, str]) -> None:
    client, token = nurse
    path = _begin(client, token)
    other = TestClient(client.app)
    sign_in(other, "nurse-b")
    assert other.get(path).status_code == 404
