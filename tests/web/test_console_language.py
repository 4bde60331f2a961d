"""The console in Swedish (the default) and English: the switch, and no page string without its
English words (a template or page module that adds Swedish text outside ``_()``, or a ``_()``
text with no entry in ``locale/en.json``, fails here)."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from producers.web import i18n, i18n_check
from tests.databases import migrated_engine
from tests.web.console_support import (
    CLINIC_A,
    CSRF,
    NURSE_A,
    add_users,
    build_app,
    console_of,
    insert_dead_letter,
    residents_with,
    sign_in,
)
from workers.adapters.account_directory import AccountStatus
from workers.settings import Settings
from workers.store.schema import cases


def _catalogue() -> dict[str, str]:
    path = resources.files("producers.web") / "locale" / "en.json"
    found: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize("path", i18n_check.template_files(), ids=lambda p: p.name)
def test_every_template_shows_text_only_through_the_translation_function(path: object) -> None:
    assert i18n_check.unwrapped(path) == []  # type: ignore[arg-type]


def test_the_page_modules_say_nothing_in_swedish_outside_the_translation_function() -> None:
    assert i18n_check.python_unwrapped() == []


def test_every_text_the_console_can_show_has_its_english_words_and_no_entry_is_stale() -> None:
    catalogue = _catalogue()
    texts = i18n_check.messages()
    assert sorted(texts - catalogue.keys()) == []
    assert sorted(catalogue.keys() - texts) == []
    assert all(value.strip() for value in catalogue.values())


def test_the_checks_catch_an_untranslated_template(tmp_path: object) -> None:
    from pathlib import Path

    page = Path(str(tmp_path)) / "page.html"
    page.write_text(
        '<h1>{{ _("Rubrik") }}</h1><p>Glömd text</p><input placeholder="Sök här">'
        "{{ 'Ny mall' if x else _('Gammal') }}"
    )
    assert i18n_check.unwrapped(page) == ["Glömd text", 'placeholder="Sök här"', "'Ny mall'"]


@pytest.fixture
def client(sqlite_url: str, tmp_path: object) -> Iterator[TestClient]:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            cases.insert().values(
                id="c-lang", clinic_hsa_id=CLINIC_A, sender_hsa_id=NURSE_A,
                template_id="meddelande-till-invanare",
                personnummer=residents_with(AccountStatus.ACTIVE, 1)[0],
                idempotency_key="lang-1", state="received", state_rank=10,
                received_at=now - dt.timedelta(hours=1), updated_at=now - dt.timedelta(hours=1),
            )
        )  # fmt: skip
    engine.dispose()
    settings = Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/blobs")
    with TestClient(build_app(settings)) as test_client:
        yield test_client


def test_swedish_is_the_default_and_the_switch_changes_the_language(client: TestClient) -> None:
    page = client.get("/login")
    assert '<html lang="sv">' in page.text and "Logga in" in page.text
    switched = client.get("/sprak/en?next=/login", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert "omvant_lang=en" in switched.headers["set-cookie"]
    english = client.get("/login")
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    assert "Logga in" not in english.text
    assert 'id="language-sv"' in english.text
    client.get("/sprak/sv")
    assert "Logga in" in client.get("/login").text


def test_the_switch_refuses_unknown_languages_and_other_sites(client: TestClient) -> None:
    assert client.get("/sprak/xx").status_code == 404
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = client.get("/sprak/en", params={"next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/"
    client.cookies.set(i18n.COOKIE, "<script>")
    assert '<html lang="sv">' in client.get("/login").text


PAGES = {
    "nurse-a": [
        "/arenden",
        "/arenden?status=nope&fran=igår",
        "/arenden/c-lang",
        "/arenden/not-ours",
        "/skicka",
        "/mallar",
        "/drift",
    ],
    "admin-a": ["/mallar", "/mallar/ny?typ=questions", "/mallar/ny", "/mallar?q=provsvar"],
    "oncall": ["/drift", "/drift/fel", "/drift/fel/F1", "/drift/fastnade", "/drift/utskick"],
}


def _english_pages(client: TestClient) -> dict[str, str]:
    client.cookies.set(i18n.COOKIE, "en")
    shown: dict[str, str] = {}
    shown["/login"] = client.get("/login").text
    for user, paths in PAGES.items():
        client.cookies.clear()
        client.cookies.set(i18n.COOKIE, "en")
        token = sign_in(client, user)
        for path in paths:
            shown[f"{user} {path}"] = client.get(path).text
        if user == "nurse-a":
            shown[f"{user} search"] = client.post(
                "/arenden", data={"csrf_token": token, "personnummer": "123"}
            ).text
            draft = client.post(
                "/skicka",
                data={"csrf_token": token, "template_id": "meddelande-till-invanare"},
            )
            shown[f"{user} draft"] = client.post(
                draft.url.path,
                data={
                    "csrf_token": token,
                    "action": "add-residents",
                    "personnummer": residents_with(AccountStatus.BLOCKED, 1)[0],
                },
            ).text
            shown[f"{user} send refused"] = client.post(
                draft.url.path, data={"csrf_token": token, "action": "send"}
            ).text
        if user == "oncall":
            shown[f"{user} replay"] = client.post(
                "/drift/fel/kor-om", data={"csrf_token": token, "id": "F1"}
            ).text
            shown[f"{user} csrf refused"] = client.post("/drift/fel/kor-om").text
    return shown


def test_every_page_in_english_has_every_string_translated(client: TestClient) -> None:
    engine = console_of(client.app).engine  # type: ignore[arg-type]
    insert_dead_letter(engine, residents_with(AccountStatus.ACTIVE, 1)[0], "e")
    i18n.MISSING.clear()
    shown = {name: html.unescape(text) for name, text in _english_pages(client).items()}
    assert sorted(i18n.MISSING) == []
    for name, text in shown.items():
        assert '<html lang="en">' in text, name
        assert CSRF.search(text) or "Sign in" in text, name
    assert "Overview" in shown["oncall /drift"] and "Queues" in shown["oncall /drift"]
    assert "Replay failed messages?" in shown["oncall replay"]
    assert "The page needs the role" in shown["nurse-a /drift"]
    assert "The case is not among the clinic's cases." in shown["nurse-a /arenden/not-ours"]
    assert "The resident has blocked their login" in shown["nurse-a draft"]
    assert "CSRF protection" in shown["oncall csrf refused"]
    # a table's words shown through ``_(name)``: the cases list's status filter
    assert "Read by the resident" in shown["nurse-a /arenden"]
    assert "Läst av invånaren" not in shown["nurse-a /arenden"]
    for name, text in shown.items():
        for swedish in ("Logga ut", "Mottagningens ärenden", "Felade meddelanden", "Orsak"):
            assert swedish not in text, (name, swedish)
