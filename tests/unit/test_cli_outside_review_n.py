"""What the second outside review of the command line found (issue 13, N4 and minor), each held
by a test: the dry run predicts a taken batch id, and the dispatch refuses it before any bar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from tests.delivery_support import CLINIC_A, create_batch
from workers.adapters import population
from workers.store.engine import make_engine
from workers.store.schema import batches as batches_table

runner = CliRunner()
TAKEN = "dispatch-taken-2027"


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = migrated_engine(sqlite_url)
    with engine.begin() as conn:
        create_batch(conn, TAKEN, "screening", CLINIC_A, template_id="kallelse-screening")
    engine.dispose()
    return sqlite_url


def dispatch_args(listing: Path, database: str, *more: str) -> list[str]:
    return [
        *("dispatch", str(listing), "--template", "meddelande-till-invanare"),
        *("--clinic", CLINIC_A, "--sender", "SE2321000016-S101", "--database", database),
        *more,
    ]


def one_line(tmp_path: Path) -> Path:
    listing = tmp_path / "one.csv"
    listing.write_text(f"personnummer\n{population.test_personnummer()[0]}\n", encoding="utf-8")
    return listing


def test_the_dry_run_predicts_a_taken_batch_id(database: str, tmp_path: Path) -> None:
    args = dispatch_args(one_line(tmp_path), database, "--batch-id", TAKEN, "--dry-run")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert f"omvant: batch-exists: batch {TAKEN} is an earlier dispatch" in result.stderr
    assert "would be sent" not in result.stdout


def test_the_dispatch_refuses_a_taken_batch_id_before_any_bar(
    database: str, tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    listing = one_line(tmp_path)
    for more in ([], ["--force"]):
        args = dispatch_args(listing, database, "--batch-id", TAKEN, "--broker", redis_url, *more)
        result = runner.invoke(app, args, env={"OMVANT_QUEUE_PREFIX": queue_prefix})
        assert result.exit_code == 2, result.output
        assert result.stderr.count("batch-exists") == 1, result.stderr
        assert "enqueuing" not in result.stderr and "checking" not in result.stderr


def test_force_never_makes_an_empty_batch_of_a_list_with_no_valid_line(
    database: str, tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    number = population.test_personnummer()[0]
    listing = tmp_path / "d.jsonl"
    line = f'{{"personnummer": "{number}", "fields": {{"namn": "A", "namn": "B"}}}}'
    listing.write_text(line + "\n", encoding="utf-8")
    args = dispatch_args(listing, database, "--force", "--broker", redis_url, "--json")
    result = runner.invoke(app, args, env={"OMVANT_QUEUE_PREFIX": queue_prefix})
    assert result.exit_code == 1, result.output
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error["reason"] == "dispatch-would-reject-all", error
    assert "duplicate-json-key 1" in error["message"]
    engine = make_engine(database)
    with engine.connect() as conn:
        batches = conn.execute(sa.select(sa.func.count()).select_from(batches_table)).scalar()
    engine.dispose()
    assert batches == 1, "only the fixture's batch: no empty one"


READ_ONLY = [
    ["templates", "list"],
    ["status"],
    ["exporter", "--port", "0"],
    ["db", "check"],
    ["batches", "list"],
    ["batches", "show", "dispatch-1"],
    ["cases", "list", "--clinic", CLINIC_A],
    ["cases", "count", "--clinic", CLINIC_A],
    ["cases", "show", "00000000-0000-0000-0000-000000000000", "--clinic", CLINIC_A],
    ["clinics", "answer-alert", "--clinic", CLINIC_A],
    ["rejects", "list"],
    ["users", "list"],
    ["dlq", "list"],
    ["dlq", "list", "--records"],
    ["dlq", "show", "R1"],
    ["dlq", "audit"],
    ["api-keys", "list"],
    ["webhooks", "status"],
    ["loadtest", "record", "--since", "2026-01-01", "recorded.jsonl"],
]
"""Every command that only reads the system of record (``omvant --help``)."""


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_an_empty_home_creates_no_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    monkeypatch.delenv("OMVANT_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    result = runner.invoke(app, command, env={"OMVANT_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert not (home / "omvant.db").exists(), "a read-only command made the database file"
    assert f"the database {home / 'omvant.db'} does not exist yet" in result.stderr
    assert "omvant db upgrade" in result.stderr


def test_a_command_that_writes_still_creates_the_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OMVANT_DATABASE_URL", raising=False)
    home = tmp_path / "home"
    result = runner.invoke(app, ["db", "upgrade"], env={"OMVANT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert (home / "omvant.db").exists()


def test_force_never_makes_an_empty_batch_of_a_list_whose_every_line_fails_the_payload_check(
    database: str, tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    first, second = population.test_personnummer()[:2]
    listing = tmp_path / "d.jsonl"
    too_long = json.dumps({"personnummer": first, "fields": {"namn": "x" * 501}})
    unreadable = f'{{"personnummer": "{second}", "fields": {{"namn": "A", "namn": "B"}}}}'
    listing.write_text(f"{too_long}\n{unreadable}\n", encoding="utf-8")
    args = dispatch_args(listing, database, "--force", "--broker", redis_url, "--json")
    result = runner.invoke(app, args, env={"OMVANT_QUEUE_PREFIX": queue_prefix})
    assert result.exit_code == 1, result.output
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error["reason"] == "dispatch-would-reject-all", error
    assert "invalid-payload 1" in error["message"] and "duplicate-json-key 1" in error["message"]
    engine = make_engine(database)
    with engine.connect() as conn:
        batches = conn.execute(sa.select(sa.func.count()).select_from(batches_table)).scalar()
    engine.dispose()
    assert batches == 1, "only the fixture's batch: no empty one"
