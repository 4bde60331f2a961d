"""``omvant dispatch --dry-run`` predicts what the pipeline would do with every line: template,
fragments, fields (per line), sender, clinic, attachments and the recipients; exit 1 when
anything would be rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy
from click.testing import Result
from typer.testing import CliRunner

from producers.attachment_samples import docx, pdf
from producers.cli import app
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.store.engine import upgrade

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
DRY_RUN_AND_DISPATCH = [
    ("dry-run", ["--dry-run"]),
    ("dispatch", ["--broker", "redis://127.0.0.1:6379/1"]),
    ("forced", ["--broker", "redis://127.0.0.1:6379/1", "--force"]),
]
"""Each way to run ``omvant dispatch`` on a list: a list refused is refused by all three (before
the broker is reached)."""
runner = CliRunner()


def reachable(count: int) -> list[str]:
    directory = SimulatedAccountDirectory(1177)
    return [
        n
        for n in population.test_personnummer()
        if directory.account(n).status == AccountStatus.ACTIVE and directory.account(n).channels
    ][:count]


@pytest.fixture
def database(sqlite_url: str) -> str:
    upgrade(sqlite_url)
    return sqlite_url


def dispatch_json(database: str, listing: Path, *args: str) -> Result:
    """``omvant dispatch LISTING --clinic CLINIC --json --database DATABASE *args``."""
    return runner.invoke(
        app, ["dispatch", str(listing), "--clinic", CLINIC, "--json", "--database", database, *args]
    )


def dry_run(database: str, listing: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = dispatch_json(database, listing, "--dry-run", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def listing(tmp_path: Path) -> Path:
    a, b, c = reachable(3)
    path = tmp_path / "lista.csv"
    path.write_text(f"personnummer;fornamn\n{a};Åsa\n{b};\n{c};Örjan\n", encoding="cp1252")
    return path


def test_a_list_that_would_go_through_whole_is_exit_0(database: str, listing: Path) -> None:
    code, figures = dry_run(
        database, listing, "--template", "meddelande-till-invanare", "--sender", SENDER,
        "--fragment", "halsning",
    )  # fmt: skip
    assert (code, figures["would_send"], figures["rejected"]) == (0, 3, {})


def test_an_empty_field_is_field_missing_on_its_own_line(database: str, listing: Path) -> None:
    code, figures = dry_run(
        database, listing, "--template", "meddelande-till-invanare", "--sender", SENDER,
        "--fragment", "halsning-namn",
    )  # fmt: skip
    assert code == 1
    assert figures["would_send"] == 2
    [line] = figures["lines"]  # type: ignore[misc]
    assert (line["line"], line["reason"]) == (3, "field-missing")
    assert "empty" in line["detail"]


def test_a_field_no_column_gives_is_field_missing_on_every_line(
    database: str, listing: Path
) -> None:
    code, figures = dry_run(
        database, listing, "--template", "meddelande-till-invanare", "--sender", SENDER,
        "--fragment", "tid-datum",
    )  # fmt: skip
    assert (code, figures["would_send"], figures["rejected"]) == (1, 0, {"field-missing": 3})


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--template", "no-such", "--sender", SENDER], "template-unknown"),
        (["--template", "gammal-kallelse", "--sender", SENDER], "template-inactive"),
        (
            ["--template", "meddelande-till-invanare", "--sender", SENDER, "--fragment", "nej"],
            "fragment-unknown",
        ),
        (
            ["--template", "kallelse-screening", "--sender", "SE2321000016-UNKNOWN"],
            "sender-unknown",
        ),
    ],
)
def test_what_would_reject_every_case_is_predicted_for_every_line(
    database: str, listing: Path, args: list[str], reason: str
) -> None:
    code, figures = dry_run(database, listing, *args)
    assert (code, figures["would_send"], figures["rejected"]) == (1, 0, {reason: 3})
    assert [v["line"] for v in figures["lines"]] == [2, 3, 4]  # type: ignore[attr-defined]


def test_attachments_are_checked_once_for_the_whole_list(
    database: str, listing: Path, tmp_path: Path
) -> None:
    good, bad = tmp_path / "kallelse.pdf", tmp_path / "blankett.docx"
    good.write_bytes(pdf(1))
    bad.write_bytes(docx())
    base = ["--template", "kallelse-screening", "--sender", SENDER, "--attachment", str(good)]
    assert dry_run(database, listing, *base)[1]["would_send"] == 3
    code, figures = dry_run(database, listing, *base, "--attachment", str(bad))
    assert code == 1
    assert list(figures["rejected"]) == ["attachment-type-not-allowed"]  # type: ignore[call-overload]


def test_unreachable_residents_are_counted_per_reason_with_their_lines(
    database: str, tmp_path: Path
) -> None:
    directory = SimulatedAccountDirectory(1177)
    blocked = next(
        n for n in population.test_personnummer() if directory.account(n).status.value == "blocked"
    )
    path = tmp_path / "lista.txt.csv"
    path.write_text(f"personnummer\n{blocked}\n{reachable(1)[0]}\n", encoding="utf-8")
    code, figures = dry_run(database, path, "--template", "kallelse-screening", "--sender", SENDER)
    assert code == 1
    assert figures["not_reachable"] == {"login-blocked": 1}
    assert figures["would_send"] == figures["reachable"] == 1


def test_a_json_dry_run_writes_its_one_line_and_nothing_on_stderr(
    database: str, listing: Path
) -> None:
    result = dispatch_json(
        database, listing, "--dry-run", "--template", "kallelse-screening", "--sender", SENDER
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == "", "the progress bar stays off stderr when it is not a terminal"
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize(("how", "extra"), DRY_RUN_AND_DISPATCH)
def test_a_list_with_a_header_alone_passes_neither_the_dry_run_nor_the_dispatch(
    database: str, tmp_path: Path, how: str, extra: list[str]
) -> None:
    header_only = tmp_path / "tom.csv"
    header_only.write_text("personnummer;fornamn\n", encoding="utf-8")
    result = dispatch_json(
        database, header_only, "--template", "kallelse-screening", "--sender", SENDER, *extra
    )
    assert result.exit_code == 1, (how, result.output)
    assert result.stdout == "", "nothing predicted, nothing sent"
    error = json.loads(result.stderr)["error"]
    assert error["reason"] == "list-empty"
    assert "no recipients" in error["message"]


def test_a_sender_that_is_no_hsa_id_is_one_refusal_not_one_per_line(
    database: str, listing: Path
) -> None:
    result = dispatch_json(
        database,
        listing,
        "--dry-run",
        "--template",
        "meddelande-till-invanare",
        "--sender",
        "nobody",
    )
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert json.loads(line)["error"]["reason"] == "invalid-hsa-id"
    assert "--sender" in json.loads(line)["error"]["message"]


def test_the_lines_that_would_be_rejected_come_in_line_order(database: str, tmp_path: Path) -> None:
    a, b = reachable(2)
    path = tmp_path / "order.csv"
    path.write_text(f"personnummer;fornamn\n{a};\n{b};Åsa\n19900101-0000;Per\n", encoding="utf-8")
    code, figures = dry_run(
        database, path, "--template", "meddelande-till-invanare", "--sender", SENDER,
        "--fragment", "halsning-namn",
    )  # fmt: skip
    assert code == 1
    said = [(v["line"], v["reason"]) for v in figures["lines"]]  # type: ignore[attr-defined]
    assert [line for line, _ in said] == [2, 4], said  # field-missing before the bad number
    assert said[0][1] == "field-missing"


@pytest.mark.parametrize(("how", "extra"), DRY_RUN_AND_DISPATCH)
def test_a_list_naming_a_column_twice_passes_neither_the_dry_run_nor_the_dispatch(
    database: str, tmp_path: Path, how: str, extra: list[str]
) -> None:
    a, b = reachable(2)
    twice = tmp_path / "twice.csv"
    twice.write_text(
        f"personnummer,fornamn,Fornamn ,tid\n{a},A,B,10\n{b},A,B,11\n", encoding="utf-8"
    )
    result = dispatch_json(
        database, twice, "--template", "meddelande-till-invanare", "--sender", SENDER,
        "--fragment", "halsning-namn", *extra,
    )  # fmt: skip
    assert result.exit_code == 2, (how, result.output)
    assert result.stdout == "", "nothing predicted, nothing sent"
    error = json.loads(result.stderr)["error"]
    assert error["reason"] == "dispatch-list-unreadable"
    assert "'fornamn' twice" in error["message"]
    engine = sqlalchemy.create_engine(database)
    with engine.connect() as conn:
        made = conn.execute(sqlalchemy.text("SELECT count(*) FROM batches")).scalar_one()
    engine.dispose()
    assert made == 0, "refused before a batch is made"
