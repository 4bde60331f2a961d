"""Dispatch lists (CSV, JSONL), the dry-run pre-check, and the chunk-batched ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from producers.client import Recipient
from producers.dispatch_file import (
    DispatchFileError,
    RowError,
    count_rows,
    read_recipients,
)
from producers.precheck import DispatchTerms, predict
from producers.scenario import broken_check_digit
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.store import notifications
from workers.store.engine import make_engine, upgrade
from workers.templates.library import InMemoryTemplateLibrary


def test_a_csv_list_gives_recipients_with_their_fields_and_errors_per_line(
    tmp_path: Path,
) -> None:
    number = population.test_personnummer()[0]
    path = tmp_path / "list.csv"
    path.write_text(
        f"personnummer,namn,tid\n{number},Tolvan,10:00\n,Nobody,11:00\n\n{number},Åsa,12:00\n",
        encoding="utf-8",
    )
    rows = list(read_recipients(path))
    assert count_rows(path) == 3
    assert rows[0] == Recipient(number, {"namn": "Tolvan", "tid": "10:00"}, 2)
    assert isinstance(rows[1], RowError)
    assert (rows[1].line, rows[1].reason) == (3, "missing-identity-number")
    assert rows[2] == Recipient(number, {"namn": "Åsa", "tid": "12:00"}, 5)


def test_a_messy_csv_names_the_right_lines_and_refuses_rows_of_the_wrong_shape(
    tmp_path: Path,
) -> None:
    a, b, c = population.test_personnummer()[:3]
    path = tmp_path / "list.csv"
    text = f"personnummer,tid\r\n\r\n{a},10:00\r\n{b}\r\n  \r\n{c},11:00,extra\r\n{a},12:00\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    rows = list(read_recipients(path))
    assert rows[0] == Recipient(a, {"tid": "10:00"}, 3)
    assert [(r.line, r.reason) for r in rows if isinstance(r, RowError)] == [
        (4, "malformed-message"),
        (6, "malformed-message"),
    ]
    assert rows[-1] == Recipient(a, {"tid": "12:00"}, 7)
    assert count_rows(path) == 4


@pytest.mark.parametrize("name", ["list.csv", "list.jsonl"])
def test_a_list_neither_utf8_nor_windows_1252_is_refused_before_anything_is_sent(
    tmp_path: Path, name: str
) -> None:
    number = population.test_personnummer()[0]
    path = tmp_path / name
    line = (
        f"{number},G\xf6teborg\n" if name.endswith(".csv") else f'{{"personnummer": "{number}"}}\n'
    )
    head = "personnummer,ort\n" if name.endswith(".csv") else ""
    # 0x81 is defined in neither UTF-8 (a lone continuation byte) nor Windows-1252
    path.write_bytes(head.encode() + line.encode("cp1252") + b"x\x81\n")
    with pytest.raises(DispatchFileError, match="neither UTF-8 nor Windows-1252"):
        count_rows(path)


@pytest.mark.parametrize(
    ("delimiter", "encoding", "bom"),
    [
        (";", "cp1252", b""),
        (";", "utf-8", b"\xef\xbb\xbf"),
        ("\t", "utf-8", b""),
        (",", "cp1252", b""),
        (";", "utf-8", b""),
    ],
)
def test_lists_as_regions_save_them_are_read_whatever_the_delimiter_and_encoding(
    tmp_path: Path, delimiter: str, encoding: str, bom: bytes
) -> None:
    a, b = population.test_personnummer()[:2]
    path = tmp_path / "lista.csv"
    text = (
        delimiter.join(["Personnummer", "fornamn", "ort"])
        + "\r\n"
        + delimiter.join([a, "Åsa", "Göteborg, Hisingen"])
        + "\r\n"
        + delimiter.join([b, "Örjan", "Malmö"])
        + "\r\n"
    )
    if delimiter == ",":
        text = text.replace("Göteborg, Hisingen", '"Göteborg, Hisingen"')
    path.write_bytes(bom + text.encode(encoding))
    assert count_rows(path) == 2
    assert list(read_recipients(path)) == [
        Recipient(a, {"fornamn": "Åsa", "ort": "Göteborg, Hisingen"}, 2),
        Recipient(b, {"fornamn": "Örjan", "ort": "Malmö"}, 3),
    ]


def test_a_jsonl_line_nested_too_deep_is_malformed_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text("[" * 100_000 + "\n", encoding="utf-8")
    [row] = list(read_recipients(path))
    assert isinstance(row, RowError) and row.reason == "malformed-message"


def test_a_jsonl_personnummer_that_is_not_a_string_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"personnummer": 191212121212}\n', encoding="utf-8")
    [row] = list(read_recipients(path))
    assert isinstance(row, RowError) and row.reason == "invalid-payload"


def test_a_csv_without_an_identity_column_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("name\nTolvan\n", encoding="utf-8")
    with pytest.raises(DispatchFileError):
        list(read_recipients(path))


def test_a_jsonl_list_reports_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    number = population.test_personnummer()[1]
    path = tmp_path / "list.jsonl"
    path.write_text(
        f'{{"personnummer": "{number}", "fields": {{"namn": "Tolvan"}}}}\n'
        "not json\n"
        f'{{"personnummer": "{number}", "fields": {{"Bad Name": "x"}}}}\n',
        encoding="utf-8",
    )
    rows = list(read_recipients(path))
    assert rows[0] == Recipient(number, {"namn": "Tolvan"}, 1)
    assert [r.reason for r in rows[1:] if isinstance(r, RowError)] == [
        "malformed-message",
        "invalid-payload",
    ]


def test_the_dry_run_counts_each_reason_the_pipeline_would_give() -> None:
    directory = SimulatedAccountDirectory(1177)
    numbers = list(population.test_personnummer()[:300])
    expected_reachable = sum(
        directory.account(n).status == AccountStatus.ACTIVE and bool(directory.account(n).channels)
        for n in numbers
    )
    rows: list[Recipient | RowError] = [Recipient(n, {}) for n in numbers]
    rows.append(Recipient(broken_check_digit(numbers[0]), {}))
    rows.append(Recipient(population.test_samordningsnummer()[0], {}))
    rows.append(RowError(9, "missing-identity-number", "no personnummer"))
    prediction = predict(
        rows,
        DispatchTerms("kallelse-screening", "SE2321000016-VC01", "SE2321000016-S101"),
        directory=directory,
        templates=InMemoryTemplateLibrary(),
        catalogue=SimulatedStaffCatalogue(1177),
        today=dt.date(2026, 12, 1),
        max_body_chars=10_000,
    )
    counts = prediction.rejected
    assert prediction.reachable == prediction.would_send == expected_reachable
    assert counts["invalid-identity-number"] == 1
    assert counts["samordningsnummer-not-reachable"] == 1
    assert counts["missing-identity-number"] == 1
    assert sum(counts.values()) + prediction.would_send == len(rows) == prediction.lines
    assert counts["no-account"] + counts["login-blocked"] > 0


def test_the_chunk_ledger_sees_its_own_marks_and_never_loses_them(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)

    def sent(conn: object, ids: list[str]) -> set[tuple[str, str]]:
        entries = notifications.entries_for(conn, ids)  # type: ignore[arg-type]
        return {(e.case_id, e.channel) for e in entries.values() if e.status == "sent"}

    with notifications.chunk_ledger(engine, ["c1", "c2"]):
        with engine.begin() as conn:
            assert notifications.claim(conn, "c1:sms", "c1", "sms", 1) is None
            notifications.mark_sent(conn, "c1:sms", "r1")
            assert sent(conn, ["c1"]) == {("c1", "sms")}
        with engine.connect() as conn:
            assert sent(conn, ["c1", "c2"]) == {("c1", "sms")}
            # a settled notification is answered from the chunk's one read
            assert notifications.claim(conn, "c1:sms", "c1", "sms", 1).status == "sent"  # type: ignore[union-attr]
        with engine.begin() as conn:
            notifications.claim(conn, "c2:email", "c2", "email", 1)
            notifications.mark_sent(conn, "c2:email", "r2")
        # the block ends without a flush (as when a chunk fails part-way): still written
    with engine.connect() as conn:
        assert sent(conn, ["c1", "c2"]) == {("c1", "sms"), ("c2", "email")}
    engine.dispose()


def test_the_dry_run_says_how_many_lines_name_a_resident_again(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from producers.cli import app
    from workers.adapters import population

    first, second = [n for n in population.test_personnummer() if n.startswith("198")][:2]
    listing = tmp_path / "list.csv"
    lines = [first, second, f"{first[:8]}-{first[8:]}", first[2:], second]
    listing.write_text("personnummer\n" + "\n".join(lines) + "\n", encoding="utf-8")
    upgrade(f"sqlite:///{tmp_path}/o.db")
    result = CliRunner().invoke(
        app,
        [
            "dispatch", str(listing), "--template", "kallelse-screening",
            "--clinic", "SE2321000016-VC01", "--sender", "SE2321000016-S101",
            "--dry-run", "--json", "--database", f"sqlite:///{tmp_path}/o.db",
        ],
    )  # fmt: skip
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert result.exit_code == (1 if figures["would_reject"] else 0), result.output
    assert figures["recipients"] == 5
    assert figures["listed_again"] == 3  # the same resident written three ways, and a repeat
