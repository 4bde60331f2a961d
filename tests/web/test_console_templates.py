"""Templates in the console: search, "Använd mall", adapt, activate, versions; the same rules
and messages as ``omvant templates``."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from producers.cli import app as cli
from producers.web.explained import explained
from tests.databases import migrated_engine
from tests.web.console_support import CLINIC_A, add_users, build_app, console_of, sign_in
from workers.settings import Settings
from workers.templates import store

ADOPTED = "vc01.meddelande-om-provsvar"


@pytest.fixture
def admin(sqlite_url: str, tmp_path: object) -> Iterator[tuple[TestClient, str, str]]:
    engine = migrated_engine(sqlite_url)
    add_users(engine)
    engine.dispose()
    with TestClient(build_app(Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/b"))) as c:
        yield c, sign_in(c, "admin-a"), sqlite_url


def _form(page: str) -> dict[str, object]:
    """The template form's fields as the page fills them in (what a browser would post)."""
    fields: dict[str, object] = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page):
        if name in ("fragment_name",):
            fields.setdefault(name, []).append(value)  # type: ignore[union-attr]
        else:
            fields[name] = value
    for name, value in re.findall(
        r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S
    ):
        if name == "fragment_text":
            fields.setdefault(name, []).append(value)  # type: ignore[union-attr]
        else:
            fields[name] = value
    for name in re.findall(r'<select[^>]*name="([^"]+)"', page):
        block = page.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
        chosen = re.search(r'<option value="([^"]*)"\s+selected', block)
        fields[name] = chosen.group(1) if chosen else ""

    return {
        k: ([html.unescape(x) for x in v] if isinstance(v, list) else html.unescape(str(v)))
        for k, v in fields.items()
    }


def test_search_finds_national_and_regional_templates_to_adopt(
    admin: tuple[TestClient, str, str],
) -> None:
    client, _token, _url = admin
    page = client.get("/mallar", params={"q": "provsvar"}).text
    assert (
        "Meddelande om provsvar" in page
        and 'action="/mallar/meddelande-om-provsvar/anvand"' in page
    )
    assert "Kallelse till screening" not in page  # the search narrows


def test_adopt_adapt_activate_and_the_version_history(admin: tuple[TestClient, str, str]) -> None:
    client, token, _url = admin
    adopted = client.post(
        "/mallar/meddelande-om-provsvar/anvand", data={"csrf_token": token}, follow_redirects=False
    )
    assert adopted.status_code == 303 and adopted.headers["location"].startswith(
        f"/mallar/{ADOPTED}"
    )
    page = client.get(f"/mallar/{ADOPTED}").text
    assert "Inte aktiv" in page
    form = _form(page)
    form.update(
        csrf_token=token,
        contact="Vårdcentralen Backa, vardag 8-17",
        contact_card_url="https://www.1177.se/hitta-vard/kontaktkort/vc-backa/",
        instruction="Kontrollera provsvaret innan du skickar.",
        active="on",
    )
    form["fragment_name"] = [*form["fragment_name"][:-3], "egen", "", ""]  # type: ignore[index]
    form["fragment_text"] = [*form["fragment_text"][:-3], "Ring oss om du undrar.", "", ""]  # type: ignore[index]
    saved = client.post(f"/mallar/{ADOPTED}", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text[:3000]
    page = client.get(saved.headers["location"]).text
    assert "version 2" in page and "Aktiv" in page and "sparad som en ny version" in page
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        current = store.load(conn, ADOPTED)
        versions = store.history(conn, ADOPTED)
    assert current is not None and current.active and current.version == 2
    assert current.contact == "Vårdcentralen Backa, vardag 8-17"
    assert current.contact_card_url == "https://www.1177.se/hitta-vard/kontaktkort/vc-backa/"
    assert current.fragments["egen"] == "Ring oss om du undrar."
    assert [v.version for v in versions] == [1, 2]
    old = client.get(f"/mallar/{ADOPTED}", params={"version": 1}).text
    assert "äldre version" in old and "Ring oss om du undrar." not in old
    off = client.post(
        f"/mallar/{ADOPTED}/avaktivera", data={"csrf_token": token}, follow_redirects=False
    )
    assert off.status_code == 303
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        assert not store.load(conn, ADOPTED).active  # type: ignore[union-attr]


def test_a_broken_rule_is_refused_with_the_stores_message_and_nothing_is_saved(
    admin: tuple[TestClient, str, str],
) -> None:
    client, token, _url = admin
    client.post("/mallar/meddelande-om-provsvar/anvand", data={"csrf_token": token})
    form = _form(client.get(f"/mallar/{ADOPTED}").text)
    form.update(csrf_token=token, instruction="", contact_card_url="http://not-https.example")
    refused = client.post(f"/mallar/{ADOPTED}", data=form)
    assert refused.status_code == 422
    shown = html.unescape(refused.text)  # the store's rules, in the console's Swedish
    assert "Instruktion till ärendehandläggaren: Mallen behöver en instruktion" in shown
    assert "Länk till kontaktkort: har fel form." in shown
    assert "a template needs" not in shown
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        assert store.load(conn, ADOPTED).version == 1  # type: ignore[union-attr]


def test_a_national_template_is_adapted_by_adopting_it_with_the_clis_message(
    admin: tuple[TestClient, str, str],
) -> None:
    client, token, url = admin
    web = client.post("/mallar/meddelande-om-provsvar/aktivera", data={"csrf_token": token})
    cli_answer = CliRunner().invoke(
        cli,
        [
            "templates",
            "activate",
            "meddelande-om-provsvar",
            "--clinic",
            CLINIC_A,
            "--database",
            url,
        ],
    )
    assert web.status_code == 409 and cli_answer.exit_code == 1
    message = cli_answer.output.strip().removeprefix("omvant: ")
    assert "a clinic adapts it by adopting it" in message

    assert explained(message) in html.unescape(web.text)  # the CLI's message, in Swedish
    assert "är en nationell mall" in explained(message)


def test_adopting_twice_gives_the_clis_conflict_message(admin: tuple[TestClient, str, str]) -> None:
    client, token, url = admin
    client.post("/mallar/meddelande-om-provsvar/anvand", data={"csrf_token": token})
    again = client.post("/mallar/meddelande-om-provsvar/anvand", data={"csrf_token": token})
    cli_again = CliRunner().invoke(
        cli,
        ["templates", "adopt", "meddelande-om-provsvar", "--clinic", CLINIC_A, "--database", url],
    )
    assert again.status_code == 409 and cli_again.exit_code == 1

    message = cli_again.output.strip().removeprefix("omvant: ")
    assert explained(message) in html.unescape(again.text) and message not in again.text


def test_another_clinics_local_template_is_not_found(admin: tuple[TestClient, str, str]) -> None:
    client, token, _url = admin
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        store.adopt(conn, "meddelande-om-provsvar", "SE2321000016-VC02")
    assert client.get("/mallar/vc02.meddelande-om-provsvar").status_code == 404
    assert (
        client.post(
            "/mallar/vc02.meddelande-om-provsvar/aktivera", data={"csrf_token": token}
        ).status_code
        == 404
    )


def test_a_local_question_template_is_created_from_a_blank_form(
    admin: tuple[TestClient, str, str],
) -> None:
    client, token, _url = admin
    page = client.get("/mallar/ny", params={"typ": "questions"}).text
    assert "Svarsformulär" in page and "Aviseringsinställning" in page
    created = client.post(
        "/mallar/ny",
        data={
            "csrf_token": token,
            "kind": "questions",
            "template_id": "vc01.fragor-infor-besok",
            "name": "Frågor inför besök",
            "template_type": "frågor",
            "text": "Svara gärna på frågorna innan ditt besök.",
            "questions": "Hur mår du idag?\nTar du några mediciner?",
            "answer_answer": "Svara",
            "answer_partial-answer": "",
            "answer_counter-question": "Ställ en motfråga",
            "notify": "sms",
            "instruction": ".",
            "active": "on",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text[:2000]
    with console_of(client.app).begin() as conn:  # type: ignore[arg-type]
        made = store.load(conn, "vc01.fragor-infor-besok")
    assert made is not None and made.scope == "local" and made.owner == CLINIC_A and made.active
    assert made.questions == ("Hur mår du idag?", "Tar du några mediciner?")
    assert [(o.kind, o.label) for o in made.answer_options] == [
        ("answer", "Svara"),
        ("counter-question", "Ställ en motfråga"),
    ]
    assert made.resident_channels is not None and made.resident_channels.channels == ("sms",)
    assert made.notification is None  # the answer alert stays the clinic's default
