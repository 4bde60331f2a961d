"""Dispatch lists (CSV, JSONL), the dry-run pre-check, and the chunk's ledger marks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dramatiq.brokers.stub import StubBroker

from producers.client import Recipient
from producers.dispatch_file import (
    DispatchFileError,
    RowError,
    check_header,
    count_rows,
    read_recipients,
)
from producers.precheck import DispatchTerms, predict
from producers.scenario import broken_check_digit
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.notifiers import SimulatedSmsGateway
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.bootstrap import build_context
from workers.notification_sending import send_notifications
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import upgrade
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
    ("delimiter", "encoding", "bom", "suffix"),
    [
        (";", "cp1252", b"", ".csv"),
        (";", "utf-8", b"\xef\xbb\xbf", ".csv"),
        ("\t", "utf-8", b"", ".csv"),
        (",", "cp1252", b"", ".csv"),
        (";", "utf-8", b"", ".csv"),
        ("\t", "utf-8", b"", ".tsv"),
        ("\t", "cp1252", b"", ".txt"),  # Excel's "Text (tab-delimited)"
        ("\t", "utf-16", b"", ".txt"),  # Excel's "Unicode Text" (with its byte-order mark)
        (";", "utf-8", b"", ".TXT"),
    ],
)
def test_lists_as_regions_save_them_are_read_whatever_the_delimiter_and_encoding(
    tmp_path: Path, delimiter: str, encoding: str, bom: bytes, suffix: str
) -> None:
    a, b = population.test_personnummer()[:2]
    path = tmp_path / f"lista{suffix}"
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


def jsonl_line(number: str, fields: str) -> str:
    """A list line for the resident ``number`` with ``fields`` as written (a key twice stays)."""
    return f'{{"personnummer": "{number}", "fields": {fields}}}'


def read_jsonl(tmp_path: Path, *lines: str) -> list[Recipient | RowError]:
    """What a JSONL list of ``lines`` reads as, line by line."""
    path = tmp_path / "list.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return list(read_recipients(path))


def test_a_jsonl_line_nested_too_deep_is_malformed_not_a_crash(tmp_path: Path) -> None:
    [row] = read_jsonl(tmp_path, "[" * 100_000)
    assert isinstance(row, RowError) and row.reason == "malformed-message"


def test_a_jsonl_personnummer_that_is_not_a_string_is_invalid(tmp_path: Path) -> None:
    [row] = read_jsonl(tmp_path, '{"personnummer": 191212121212}')
    assert isinstance(row, RowError) and row.reason == "invalid-payload"


def test_a_csv_without_an_identity_column_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("name\nTolvan\n", encoding="utf-8")
    with pytest.raises(DispatchFileError):
        list(read_recipients(path))


def test_a_jsonl_list_reports_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    number = population.test_personnummer()[1]
    lines = [
        jsonl_line(number, '{"namn": "Tolvan"}'),
        "not json",
        jsonl_line(number, '{"Bad Name": "x"}'),
    ]
    rows = read_jsonl(tmp_path, *lines)
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


class _KilledDuringTheCall(BaseException):
    """The worker process dies while the provider is being called."""


class _GatewayKilledOnCall(SimulatedSmsGateway):
    def __init__(self, on_call: int) -> None:
        super().__init__()
        self.calls, self.on_call = 0, on_call

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        self.calls += 1
        if self.calls == self.on_call:
            raise _KilledDuringTheCall
        return super().send(to=to, text=text, idempotency_key=idempotency_key)


def test_the_chunk_ledger_sees_its_own_marks_and_never_loses_them(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A chunk's sent marks are in the database the moment each provider call returns: a
    crash during the third call of a chunk loses neither of the two before it, and the chunk,
    redelivered, sees them and sends only what was not sent. (The group protocol, one SMS a
    group: ``sms_batch_size=1``; a batch's crash window is tested in test_sms_batch_sending.)"""
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url, blob_dir=tmp_path / "b", send_concurrency=1, sms_batch_size=1
    )
    ctx = build_context(settings, StubBroker())
    rows = [notifications.Queued(f"c{n}", "sms", f"+4670174060{n}") for n in range(4)]
    with ctx.engine.begin() as conn:
        notifications.write_queued(conn, rows, refused="notification-address-missing")
    keys = [row.key for row in rows]
    ctx.sms = dying = _GatewayKilledOnCall(on_call=3)
    with pytest.raises(_KilledDuringTheCall):
        send_notifications(ctx, keys)

    def statuses() -> list[str]:
        with ctx.engine.connect() as conn:
            found = notifications.entries(conn, keys)
        return [found[key].status for key in keys]

    assert statuses() == ["sent", "sent", "pending", "queued"]
    ctx.sms = gateway = SimulatedSmsGateway()
    ctx.now = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # past the in-flight limit
    outcome = send_notifications(ctx, keys)  # the redelivered chunk
    assert statuses() == ["sent"] * 4
    assert sorted(gateway.sends) == ["c2:sms", "c3:sms"]  # c2 was in doubt: asked, then sent
    assert outcome.counts == {"not-at-provider": 1, "sent": 2}
    assert dying.sends == {"c0:sms": 1, "c1:sms": 1}
    ctx.engine.dispose()


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


@pytest.mark.parametrize(
    "header", ["personnummer,fornamn,fornamn,tid", "personnummer;Fornamn; fornamn ;tid"]
)
def test_a_csv_naming_a_column_twice_is_refused_whole_not_the_last_one_kept(
    tmp_path: Path, header: str
) -> None:
    number = population.test_personnummer()[1]
    delimiter = ";" if ";" in header else ","
    path = tmp_path / "list.csv"
    path.write_text(f"{header}\n{delimiter.join([number, 'A', 'B', '10'])}\n", encoding="utf-8")
    with pytest.raises(DispatchFileError, match="'fornamn' twice"):
        check_header(path)
    with pytest.raises(DispatchFileError, match="'fornamn' twice"):
        list(read_recipients(path))


def test_a_jsonl_line_with_a_key_twice_is_refused_not_the_last_one_kept(tmp_path: Path) -> None:
    number = population.test_personnummer()[1]
    twice, once = (
        jsonl_line(number, '{"namn": "A", "namn": "B"}'),
        jsonl_line(number, '{"namn": "A"}'),
    )
    rows = read_jsonl(tmp_path, twice, once)
    assert isinstance(rows[0], RowError) and rows[0].reason == "duplicate-json-key"
    assert rows[1] == Recipient(number, {"namn": "A"}, 2)
