"""``omvant templates ...`` against a SQLite system of record."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from producers.cli import app
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.settings import Settings

CLINIC = "SE2321000016-VC01"
OTHER = "SE2321000016-VC02"
SENDER = "SE2321000016-S101"
runner = CliRunner()


@pytest.fixture
def db(sqlite_url: str) -> str:
    assert runner.invoke(app, ["db", "upgrade", "--database", sqlite_url]).exit_code == 0
    return sqlite_url


def test_a_database_without_the_schema_is_one_line_and_is_not_migrated(sqlite_url: str) -> None:
    Path(sqlite_url.removeprefix("sqlite:///")).touch()  # a file, without the schema
    code, _, err = omvant(sqlite_url, "list")
    assert code == 2
    assert "has no Omvänt schema; run: omvant db upgrade" in err
    from workers.store.engine import make_engine

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master").fetchall()
    engine.dispose()
    assert tables == [], "an ordinary command never runs migrations"


def omvant(db: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["templates", *args, "--database", db])
    return result.exit_code, result.stdout, result.stderr


def ok_json(db: str, *args: str) -> object:
    code, out, err = omvant(db, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_list_shows_the_starter_library_and_the_clinics_own_templates(db: str) -> None:
    listed = ok_json(db, "list")
    assert {t["id"] for t in listed} >= {  # type: ignore[union-attr,index]
        "meddelande-till-invanare",
        "meddelande-om-provsvar",
        "bifoga-bild-till-varden",
        "fragor-infor-vardkontakt-sjukskrivning",
    }
    code, _, err = omvant(
        db, "create", "egen", "--clinic", OTHER, "--name", "Egen", "--instruction", ".",
        "--text", "Hej",
    )  # fmt: skip
    assert code == 0, err
    mine = ok_json(db, "list", "--clinic", CLINIC)
    theirs = ok_json(db, "list", "--clinic", OTHER)
    assert "egen" not in {t["id"] for t in mine}  # type: ignore[union-attr,index]
    assert "egen" in {t["id"] for t in theirs}  # type: ignore[union-attr,index]
    found = ok_json(db, "search", "provsvar", "--clinic", CLINIC)
    assert [t["id"] for t in found] == ["meddelande-om-provsvar"]  # type: ignore[union-attr,index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instruction", ".", "--text", "Hej"], "needs a name"),
        (["--name", "Utan instruktion", "--text", "Hej"], "instruction"),
        (
            ["--kind", "questions", "--name", "Frågor", "--instruction", ".", "--text", "Hej"],
            "at least one question",
        ),
    ],
)
def test_invalid_templates_are_refused_with_a_clear_message(
    db: str, args: list[str], message: str
) -> None:
    code, _, err = omvant(db, "create", "ogiltig", "--clinic", CLINIC, *args)
    assert code == 1
    assert message in err
    code, _, err = omvant(db, "show", "ogiltig")
    assert code == 1 and "template-unknown" in err


def test_adopt_adapt_activate_then_preview(db: str) -> None:
    code, out, err = omvant(
        db, "adopt", "bifoga-bild-till-varden", "--clinic", CLINIC, "--id", "vc01.bild",
        "--contact", "Hudmottagningen, 010-123 45 67",
        "--contact-card", "https://www.1177.se/hitta-vard/kontaktkort/hud",
        "--answer-option", "counter-question=Fråga oss",
    )  # fmt: skip
    assert code == 0, err
    assert "inactive" in out
    code, _, err = omvant(db, "preview", "vc01.bild", "--sender", SENDER, "--fragment", "hud")
    assert code == 1 and "template-inactive" in err
    code, _, err = omvant(
        db, "edit", "vc01.bild", "--clinic", CLINIC, "--fragment", "nacke=Ta bilden på nacken.",
        "--resident-channels", "sms", "--answer-alert", "email",
        "--answer-mailbox", "hud.vc01@region.example",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = omvant(db, "activate", "vc01.bild", "--clinic", CLINIC)
    assert code == 0, err
    shown = ok_json(db, "show", "vc01.bild")
    assert shown["version"] == 2 and shown["active"] is True  # type: ignore[index]
    assert shown["adopted_from"] == "bifoga-bild-till-varden@1"  # type: ignore[index]
    assert {o["kind"]: o["label"] for o in shown["answer_options"]}[  # type: ignore[index]
        "counter-question"
    ] == "Fråga oss"
    assert [v["version"] for v in shown["versions"]] == [1, 2]  # type: ignore[index]
    assert shown["notification"] == {"alert": "email", "mailbox": "hud.vc01@region.example"}  # type: ignore[index]
    assert shown["resident_channels"] == {"channels": ["sms"]}  # type: ignore[index]
    preview = ok_json(
        db, "preview", "vc01.bild", "--sender", SENDER, "--fragment", "nacke",
        "--fragment", "hud", "--text", "<b>Tack!</b>",
    )  # fmt: skip
    assert isinstance(preview, dict)
    paragraphs = html.unescape(preview["body"]).split("\n\n")
    assert paragraphs[1:] == [
        "Ta bilden på nacken.",
        (
            "Ta bilden på hudförändringen på ungefär 20 centimeters avstånd, gärna med en linjal "
            "bredvid."
        ),
        "<b>Tack!</b>",
        "Hudmottagningen, 010-123 45 67",
        "Kontaktkort: https://www.1177.se/hitta-vard/kontaktkort/hud",
    ]
    assert "&lt;b&gt;Tack!&lt;/b&gt;" in preview["body"]
    assert preview["subject"] == "Bifoga bild till vården"
    assert preview["notify_on"] == ["sms"]
    staff = SimulatedStaffCatalogue(Settings().seed).staff(SENDER)
    assert staff is not None and preview["signature"].startswith(html.escape(staff.name))
    assert preview["date"] == dt.datetime.now(ZoneInfo("Europe/Stockholm")).date().isoformat()


def test_a_clinic_cannot_touch_another_clinics_or_a_national_template(db: str) -> None:
    assert omvant(db, "adopt", "meddelande-till-invanare", "--clinic", CLINIC)[0] == 0
    code, _, err = omvant(db, "activate", "vc01.meddelande-till-invanare", "--clinic", OTHER)
    assert code == 1 and "template-unknown" in err
    code, _, err = omvant(db, "edit", "meddelande-till-invanare", "--clinic", CLINIC, "--name", "X")
    assert code == 1 and "adopt" in err
    code, _, err = omvant(
        db, "preview", "vc01.meddelande-till-invanare", "--sender", SENDER, "--clinic", OTHER,
        "--fragment", "halsning",
    )  # fmt: skip
    assert code == 1 and "template-unknown" in err


def test_preview_refuses_an_unknown_fragment_and_a_missing_field(db: str) -> None:
    base = ["preview", "meddelande-till-invanare", "--sender", SENDER, "--clinic", CLINIC]
    code, _, err = omvant(db, *base, "--fragment", "finns-inte")
    assert code == 1 and "fragment-unknown" in err
    code, _, err = omvant(db, *base, "--fragment", "halsning-namn")
    assert code == 1 and "field-missing" in err
    preview = ok_json(db, *base, "--fragment", "halsning-namn", "--field", "fornamn={{ x }}")
    assert preview["body"].startswith("Hej {{ x }}!")  # type: ignore[index]


def test_deactivate_then_preview_says_inactive(db: str) -> None:
    assert omvant(db, "deactivate", "kallelse-screening")[0] == 0
    code, _, err = omvant(
        db, "preview", "kallelse-screening", "--sender", SENDER, "--clinic", CLINIC
    )
    assert code == 1 and "template-inactive" in err


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_then_import_round_trips_and_changed_content_is_a_new_version(
    db: str, tmp_path: Path, suffix: str
) -> None:
    assert (
        omvant(db, "adopt", "meddelande-om-provsvar", "--clinic", CLINIC, "--id", "vc01.prov")[0]
        == 0
    )
    path = tmp_path / f"mallar{suffix}"
    code, _, err = omvant(db, "export", "vc01.prov", "--out", str(path))
    assert code == 0, err
    imported = ok_json(db, "import", str(path), "--clinic", CLINIC)
    assert [(t["id"], t["outcome"]) for t in imported] == [("vc01.prov", "unchanged")]  # type: ignore[union-attr,index]
    text = path.read_text(encoding="utf-8").replace("Nu har svaret", "Nu har resultatet")
    path.write_text(text, encoding="utf-8")
    imported = ok_json(db, "import", str(path), "--clinic", CLINIC)
    assert [(t["outcome"], t["version"]) for t in imported] == [("new-version", 2)]  # type: ignore[union-attr,index]
    code, _, err = omvant(db, "import", str(path), "--clinic", OTHER)
    assert code == 1 and "only its own" in err


def test_import_of_an_invalid_file_stores_nothing(db: str, tmp_path: Path) -> None:
    path = tmp_path / "trasig.yaml"
    path.write_text(
        "templates:\n"
        "  - {id: bra, kind: information, scope: local, owner: SE2321000016-VC01,"
        " name: Bra, instruction: '.', text: Hej}\n"
        "  - {id: dalig, kind: questions, scope: local, owner: SE2321000016-VC01,"
        " name: Dålig, instruction: '.', text: Hej}\n",
        encoding="utf-8",
    )
    code, _, err = omvant(db, "import", str(path))
    assert code == 1 and "dalig" in err and "at least one question" in err
    assert omvant(db, "show", "bra")[0] == 1


def test_bench_reports_throughput(db: str) -> None:
    result = runner.invoke(
        app, ["templates", "bench", "--messages", "300", "--rounds", "1", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["messages"] == 300
    assert figures["messages_per_s"] > 0 and figures["messages_per_cpu_s"] > 0
    assert figures["compose_only_per_s"] > 0


def test_export_to_a_file_that_cannot_be_written_is_a_clear_usage_error(
    db: str, tmp_path: Path
) -> None:
    target = tmp_path / "no-such-folder" / "mallar.yaml"
    code, _, err = omvant(db, "export", "--out", str(target))
    assert code == 2
    assert f"omvant: cannot write {target}" in err
    assert not target.exists()
