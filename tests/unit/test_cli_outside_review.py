"""What an outside review of the command line found (issue 13, D8), each held by a test: values
an operator copies into the next command never cut short at a narrow terminal, case ids in any
case, one reason code per error line, an empty ``OMVANT_HOME``, the embedded database's file
modes, and shell completion of fixed vocabularies."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from tests.delivery_support import CLINIC_A, STAFF_A, cleared_item, create_batch, store_cleared
from tests.processes import run_omvant
from workers.adapters import population
from workers.settings import Settings
from workers.store.cases import utcnow
from workers.store.engine import make_engine
from workers.store.schema import failures as failures_table

runner = CliRunner()
QUEUE = "message-composition.bulk-1"
REASON = "template-inactive"
LONG_ID = "dispatch-screening-2027-vaccination-region-" + "x" * 20


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = migrated_engine(sqlite_url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            failures_table.insert().values(
                kind="dead-letter", queue=QUEUE, actor="compose_messages", contract="SendCase",
                contract_version=2, case_ids="[]", case_count=1, reason=REASON, attempts=3,
                first_failed_at=now, last_failed_at=now, body="{}", status="open",
            )
        )  # fmt: skip
        create_batch(conn, LONG_ID, "screening", CLINIC_A, template_id="kallelse-screening")
    engine.dispose()
    return sqlite_url


def column(table: str, header: str) -> str:
    """The text of the column headed ``header``, its folded pieces joined: what it shows."""
    heading = [line.split("┃") for line in table.splitlines() if "┃" in line]
    heads = ["".join(cells[i].strip() for cells in heading) for i in range(len(heading[0]))]
    at = heads.index(header)
    body = [line for line in table.splitlines() if "│" in line]
    return "".join(line.split("│")[at].strip() for line in body)


@pytest.mark.parametrize("records", [False, True])
def test_dlq_list_never_cuts_a_queue_or_reason_at_a_narrow_terminal(
    database: str, records: bool
) -> None:
    args = ["dlq", "list", "--database", database, *(["--records"] if records else [])]
    narrow = runner.invoke(app, args, env={"COLUMNS": "60", "OMVANT_QUEUE_PREFIX": ""})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.stdout, narrow.stdout
    assert column(narrow.stdout, "queue") == QUEUE, narrow.stdout
    assert column(narrow.stdout, "reason") == REASON, narrow.stdout
    wide = runner.invoke(app, [*args, "--wide"], env={"COLUMNS": "60", "OMVANT_QUEUE_PREFIX": ""})
    assert any(QUEUE in line and REASON in line for line in wide.stdout.splitlines()), wide.stdout


def test_batches_show_prints_the_batch_id_unbroken_at_a_narrow_terminal(database: str) -> None:
    shown = runner.invoke(
        app, ["batches", "show", LONG_ID, "--database", database], env={"COLUMNS": "40"}
    )
    assert shown.exit_code == 0, shown.output
    assert any(LONG_ID in line for line in shown.stdout.splitlines()), shown.stdout


def test_cases_show_takes_a_case_id_in_upper_case(sqlite_url: str) -> None:
    engine = migrated_engine(sqlite_url)
    case_id = str(uuid.uuid4())
    with engine.begin() as conn:
        store_cleared(conn, [cleared_item(case_id, population.test_personnummer()[0])])
    engine.dispose()
    base = ["--clinic", CLINIC_A, "--user", STAFF_A, "--json", "--database", sqlite_url]
    shown = runner.invoke(app, ["cases", "show", case_id.upper(), *base])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["case_id"] == case_id


def test_a_batch_id_taken_names_its_reason_code_once(
    database: str, tmp_path: Path, redis_url: str, queue_prefix: str
) -> None:
    listing = tmp_path / "lista.csv"
    listing.write_text(f"personnummer\n{population.test_personnummer()[0]}\n", encoding="utf-8")
    args = [
        *("dispatch", str(listing), "--template", "meddelande-till-invanare", "--force"),
        *("--clinic", CLINIC_A, "--sender", "SE2321000016-S101", "--batch-id", LONG_ID),
        *("--broker", redis_url, "--database", database),
    ]
    result = runner.invoke(app, args, env={"OMVANT_QUEUE_PREFIX": queue_prefix})
    assert result.exit_code == 2, result.output
    assert result.stderr.count("batch-exists") == 1, result.stderr
    assert f"omvant: batch-exists: batch {LONG_ID} is an earlier dispatch" in result.stderr
    as_json = runner.invoke(app, [*args, "--json"], env={"OMVANT_QUEUE_PREFIX": queue_prefix})
    error = json.loads(as_json.stderr)["error"]
    assert error["reason"] == "batch-exists"
    assert error["message"].startswith(f"batch {LONG_ID} is an earlier dispatch"), error


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_omvant_home_is_the_default_folder_not_the_current_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty: str
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("OMVANT_HOME", empty)
    monkeypatch.delenv("OMVANT_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.home == tmp_path / "omvant"
    assert settings.database_url == f"sqlite:///{tmp_path / 'omvant' / 'omvant.db'}"
    monkeypatch.setenv("OMVANT_HOME", ".")
    assert Settings().home == Path(), "the current folder only when asked"


def test_the_embedded_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine = make_engine(f"sqlite:///{home / 'omvant.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x TEXT)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('sealed')"))
        made = sorted(p.name for p in home.iterdir())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    engine.dispose()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert "omvant.db-wal" in made, made
    assert modes == dict.fromkeys(made, 0o600), modes


def test_an_existing_data_folder_others_can_read_is_warned_of_once_and_kept(
    tmp_path: Path,
) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o755)
    with capture_logs() as logged:
        for _ in range(2):
            make_engine(f"sqlite:///{home / 'omvant.db'}").dispose()
    warned = [e for e in logged if e.get("code") == "home-not-private"]
    assert len(warned) == 1, logged
    assert warned[0]["log_level"] == "warning"
    assert warned[0]["path"] == str(home.resolve())
    assert warned[0]["fix"] == f"chmod 700 {home.resolve()}"
    assert stat.S_IMODE(home.stat().st_mode) == 0o755, "a user's folder is not changed silently"


def test_a_private_or_new_data_folder_is_not_warned_of(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with capture_logs() as logged:
        make_engine(f"sqlite:///{private / 'omvant.db'}").dispose()
        make_engine(f"sqlite:///{tmp_path / 'new' / 'omvant.db'}").dispose()
    assert [e for e in logged if e.get("code") == "home-not-private"] == []


def test_the_warning_goes_to_stderr_leaving_a_commands_json_output_alone(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o750)
    migrated_engine(f"sqlite:///{home / 'omvant.db'}").dispose()
    result = run_omvant("users", "list", "--json", settings={"OMVANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "home-not-private" in result.stderr and f"chmod 700 {home}" in result.stderr


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("omvant cases list --status an", ["answered"]),
        ("omvant cases count --status un", ["unread", "unanswered"]),
        ("omvant cases list --type s", ["sent-by-care"]),
        ("omvant dlq list --reason template-ina", ["template-inactive"]),
        ("omvant dlq replay --queue message-composition.u", ["message-composition.urgent"]),
    ],
)
def test_shell_completion_offers_the_fixed_vocabularies(words: str, offered: list[str]) -> None:
    env = {
        "_OMVANT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = runner.invoke(app, [], prog_name="omvant", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == offered


def _dead_letter_table(screen: str) -> str:
    """The status screen's failures table (between its title and the next table's)."""
    return screen[screen.index("failures pending") : screen.index("dispatches in flight")]


def test_omvant_status_never_cuts_a_queue_reason_or_batch_id_at_a_narrow_terminal(
    database: str,
) -> None:
    args = ["status", "--database", database]
    narrow = runner.invoke(app, args, env={"COLUMNS": "50", "OMVANT_QUEUE_PREFIX": ""})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.stdout, narrow.stdout
    dead = _dead_letter_table(narrow.stdout)
    assert column(dead, "queue") == QUEUE, dead
    assert column(dead, "reason") == REASON, dead
    wide = runner.invoke(app, [*args, "--wide"], env={"COLUMNS": "50", "OMVANT_QUEUE_PREFIX": ""})
    assert wide.exit_code == 0, wide.output
    lines = wide.stdout.splitlines()
    assert any(QUEUE in line and REASON in line for line in lines), wide.stdout
