"""With ``--json`` on the command line every error of every command is one JSON object
``{"error": {"reason", "message"}}`` on stderr, with a documented reason code and a nonzero
exit: refusals, usage errors the parser finds, and bugs alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer.main
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from tests.delivery_support import (
    CLINIC_A,
    CLINIC_B,
    cleared_item,
    reachable_residents,
    store_cleared,
)
from workers.reasons import Reason
from workers.store import access_log
from workers.store.engine import make_engine

USER = "SE2321000016-S101"
A = ["--clinic", CLINIC_A]
U = ["--user", USER]
DB = "DATABASE"
"""Stands for the test's database URL (``--database`` comes with it)."""
NO_DB = ["--database", "nope://"]
REAL = ["--broker", "memory://"]
"""Commands that need a real broker refuse the memory broker."""
MISSING = "/no/such/file"

# one error path of each command that takes --json: (command line, reason, exit status)
ERRORS: list[tuple[list[str], str, int]] = [
    (["api-keys", "create", "k", *A, "--webhook-url", "ftp://x", DB], "usage-error", 2),
    (["api-keys", "list", *NO_DB], "invalid-setting", 2),
    (["attachments", "bench", "--rounds", "0"], "usage-error", 2),
    (["attachments", "check"], "usage-error", 2),  # a missing file is a verdict on stdout
    (["attachments", "gc", "--older-than", "soon", DB], "usage-error", 2),
    (["batches", "list", *NO_DB], "invalid-setting", 2),
    (["batches", "show", "no-such-batch", DB], "not-found", 1),
    (["batches", "pause", "no-such-batch", DB], "not-found", 1),
    (["batches", "resume", "no-such-batch", DB], "not-found", 1),
    (["batches", "cancel", "no-such-batch", DB], "not-found", 1),
    (["bench", "--layout", "flat"], "usage-error", 2),
    (["cases", "follow-up", *NO_DB], "invalid-setting", 2),
    (["cases", "list", "--status", "bogus", *A, *U, DB], "unknown-status", 2),
    (["cases", "list", *U, DB], "invalid-hsa-id", 2),
    (["cases", "show", "b-1", *A, *U, DB], "not-found", 1),
    (["chaos", "--broker", "kafka"], "usage-error", 2),
    (["clinics", "answer-alert", *A, "--mailbox", "x@y.se", "--none", DB], "usage-error", 2),
    (["demo", "--cases", "1", "--broker", "nats://127.0.0.1"], "invalid-setting", 2),
    (["dispatch", "LIST", "--template", "t", *A, "--sender", USER, *REAL, DB], "usage-error", 2),
    (["dlq", "audit", *NO_DB], "invalid-setting", 2),
    (["dlq", "list", "--since", "yesterday", DB], "invalid-since", 2),
    (["dlq", "purge", DB], "usage-error", 2),
    (["dlq", "replay", "--all", "--rate", "fast", DB], "invalid-rate", 2),
    (["dlq", "show", "F999", DB], "not-found", 1),
    (["loadtest", "replay", "RECORDING", *REAL], "usage-error", 2),
    (["push", MISSING], "usage-error", 2),
    (["recipients", "bench", "--lines", "many"], "usage-error", 2),
    (["recipients", "check", "--file", "/no/such/list.txt"], "usage-error", 2),
    (["rejects", "list", *NO_DB], "invalid-setting", 2),
    (["rejects", "purge", *NO_DB], "invalid-setting", 2),
    (["status", *NO_DB], "invalid-setting", 2),
    (["sweep", *NO_DB], "invalid-setting", 2),
    (["templates", "adopt", "no-such", *A, DB], "template-unknown", 1),
    (["templates", "bench", "--messages", "1"], "usage-error", 2),
    (["templates", "create", "vc01.x", *A, DB], "template-invalid", 1),
    (["templates", "edit", "no-such", *A, "--name", "x", DB], "template-unknown", 1),
    (["templates", "import", MISSING, DB], "usage-error", 2),
    (["templates", "list", *NO_DB], "invalid-setting", 2),
    (["templates", "preview", "no-such", *A, "--sender", USER, DB], "template-unknown", 1),
    (["templates", "search", "x", *NO_DB], "invalid-setting", 2),
    (["templates", "show", "no-such", *A, DB], "template-unknown", 1),
    (["users", "add", "u", "--hsa-id", "nope", "--role", "staff", DB], "usage-error", 2),
    (["users", "list", *NO_DB], "invalid-setting", 2),
    (["worker", *REAL], "usage-error", 2),  # needs a real broker
]


@pytest.fixture
def database(sqlite_url: str) -> Iterator[str]:
    """A database with one delivered case of clinic B (b-1)."""
    engine = migrated_engine(sqlite_url)
    [resident] = reachable_residents(1177, 1, frozenset({"sms"}))
    with engine.begin() as conn:
        store_cleared(conn, [cleared_item("b-1", resident, clinic=CLINIC_B)])
    engine.dispose()
    yield sqlite_url


def run_json(args: list[str], database: str, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """Run ``omvant ARGS --json``; its stderr must be the one JSON error object."""
    listing = tmp_path / "lista.csv"
    listing.write_text("personnummer\n191212121212\n", encoding="utf-8")
    recording = tmp_path / "burst.jsonl"
    recording.write_text("", encoding="utf-8")
    given = {DB: ["--database", database], "LIST": [str(listing)], "RECORDING": [str(recording)]}
    argv = [word for arg in args for word in given.get(arg, [arg])]
    result = CliRunner().invoke(app, [*argv, "--json"], env={"OMVANT_USER_HSA_ID": ""})
    assert result.exit_code != 0, result.output
    try:
        error = json.loads(result.stderr)
    except json.JSONDecodeError:
        pytest.fail(f"omvant {' '.join(argv)} --json: stderr is not JSON: {result.stderr!r}")
    assert list(error) == ["error"] and sorted(error["error"]) == ["message", "reason"], error
    assert error["error"]["reason"] in {r.value for r in Reason}, "a documented reason code"
    assert error["error"]["message"]
    return result.exit_code, error["error"]


@pytest.mark.parametrize(
    ("args", "reason", "code"), ERRORS, ids=[" ".join(args[:3]) for args, _r, _c in ERRORS]
)
def test_every_error_under_json_is_one_json_object_with_a_reason_code(
    database: str, tmp_path: Path, args: list[str], reason: str, code: int
) -> None:
    exit_code, error = run_json(args, database, tmp_path)
    assert (error["reason"], exit_code) == (reason, code), error


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, [*path, name])
    else:
        yield path, command


def test_every_command_that_takes_json_has_its_error_path_checked_here() -> None:
    root = typer.main.get_command(app)
    taking_json = {
        " ".join(path)
        for path, command in _commands(root, [])
        if any("--json" in getattr(p, "opts", ()) for p in command.params)
    }
    checked = {
        " ".join(w for w in args[:2] if not w.startswith("-") and w.islower() and " " not in w)
        for args, _r, _c in ERRORS
    }
    checked |= {args[0] for args, _r, _c in ERRORS}
    assert taking_json <= checked, f"add an error path for: {sorted(taking_json - checked)}"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["cases", "list", "--bogus"], "No such option: --bogus"),
        (["batches", "show"], "Missing argument"),
        (["cases", "list", "--limit", "many"], "Invalid value for '--limit'"),
        (["dlq", "show"], "Missing argument"),
        (["serve"], "No such option: --json"),  # a command without --json: its usage error
        (["no-such-command"], "No such command"),
    ],
)
def test_a_usage_error_under_json_is_json_too(
    database: str, tmp_path: Path, args: list[str], says: str
) -> None:
    exit_code, error = run_json(args, database, tmp_path)
    assert (error["reason"], exit_code) == ("usage-error", 2)
    assert says in error["message"]


def test_a_refused_show_of_another_clinics_case_is_json_and_logged_as_refused(
    database: str, tmp_path: Path
) -> None:
    exit_code, error = run_json(["cases", "show", "b-1", *A, *U, DB], database, tmp_path)
    assert (error["reason"], exit_code) == ("not-found", 1)
    assert "b-1" in error["message"]
    engine = make_engine(database)
    with engine.connect() as conn:
        [attempt] = access_log.search(conn, case_id="b-1")
    engine.dispose()
    assert (attempt.unit_hsa_id, attempt.outcome, attempt.case_ids) == (
        CLINIC_A,
        "refused",
        ["b-1"],
    )


def test_a_bug_under_json_is_json_too_with_identity_numbers_masked(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import rejections

    def broken(_conn: sa.Connection, **_query: object) -> list[dict[str, object]]:
        raise RuntimeError("no row for 191212121212")

    monkeypatch.setattr(rejections, "newest", broken)
    exit_code, error = run_json(["rejects", "list", DB], database, tmp_path)
    assert (error["reason"], exit_code) == ("internal-error", 1)
    assert "RuntimeError" in error["message"] and "191212121212" not in error["message"]
    plain = CliRunner().invoke(app, ["rejects", "list", "--database", database])
    assert isinstance(plain.exception, RuntimeError), "without --json: the traceback"


def test_without_json_an_error_stays_one_plain_line(database: str) -> None:
    result = CliRunner().invoke(app, ["batches", "show", "no-such-batch", "--database", database])
    assert result.exit_code == 1
    assert result.stderr == "omvant: no batch no-such-batch\n"
