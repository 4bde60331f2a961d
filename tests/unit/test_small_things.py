"""What users expect of a mature command line: a version, completion, one status vocabulary
for batches, ids never cut short, and preview refusing a sender the pipeline would refuse."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from click.testing import Result
from typer.testing import CliRunner

from producers.cli import app
from tests.databases import migrated_engine
from workers.store import batches

runner = CliRunner()
LONG_ID = "dispatch-screening-2027-vaccination-region-" + "x" * 20


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"omvant {version('omvant')}"


def test_shell_completion_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    # typer detects the shell from the parent processes: a detached run has none to find
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0, result.output
    assert "_OMVANT_COMPLETE" in result.stdout


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = migrated_engine(sqlite_url)
    with engine.begin() as conn:
        for batch_id, total in ((LONG_ID, 0), ("held", 5)):
            batches.create(
                conn,
                batch_id=batch_id,
                name="screening",
                clinic_hsa_id="SE2321000016-VC01",
                sender_hsa_id="SE2321000016-S101",
                template_id="kallelse-screening",
                total=total,
            )
        batches.set_status(conn, "held", batches.BatchStatus.PAUSED)
    engine.dispose()
    return sqlite_url


def test_batch_status_is_one_word_in_table_and_json(database: str) -> None:
    listed = runner.invoke(app, ["batches", "list", "--json", "--database", database])
    assert listed.exit_code == 0, listed.output
    statuses = {f["id"]: f["status"] for f in json.loads(listed.stdout)}
    assert statuses == {LONG_ID: "finished", "held": "paused"}
    for batch_id, word in statuses.items():
        shown = runner.invoke(app, ["batches", "show", batch_id, "--database", database])
        assert f"): {word}" in " ".join(shown.stdout.split())
        shown_json = runner.invoke(
            app, ["batches", "show", batch_id, "--json", "--database", database]
        )
        assert json.loads(shown_json.stdout)["status"] == word
        assert word in batches.STATUSES


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_a_settled_batch_refuses_to_be_paused_resumed_or_cancelled(
    database: str, action: str
) -> None:
    result = runner.invoke(app, ["batches", action, LONG_ID, "--database", database])
    assert result.exit_code == 1
    assert "has finished" in result.output


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_steering_a_batch_with_json_gives_json_and_json_errors(database: str, action: str) -> None:
    refused = runner.invoke(app, ["batches", action, LONG_ID, "--json", "--database", database])
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stderr)["error"]["reason"] == "batch-transition-refused"
    assert refused.stdout == ""
    if action == "cancel":
        return
    moved = "held"
    first, then = ("resume", "pause") if action == "resume" else ("pause", "resume")
    if first == "pause":
        runner.invoke(app, ["batches", "resume", moved, "--database", database])
    done = runner.invoke(app, ["batches", first, moved, "--json", "--database", database])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "id": moved,
        "status": "paused" if first == "pause" else "running",
    }
    if then == "pause":
        runner.invoke(app, ["batches", "pause", moved, "--database", database])


def test_batch_ids_are_never_cut_short(database: str) -> None:
    narrow = runner.invoke(app, ["batches", "list", "--database", database], terminal_width=80)
    assert "…" not in narrow.stdout
    first_column = [
        line.split("│")[1].strip() for line in narrow.stdout.splitlines() if "│" in line
    ]
    assert LONG_ID in "".join(first_column), "the id wraps within its column, never cut"
    wide = runner.invoke(app, ["batches", "list", "--wide", "--database", database])
    assert any(LONG_ID in line for line in wide.stdout.splitlines())


def preview(database: str, sender: str, *extra: str) -> Result:
    """``omvant templates preview`` of the screening letter for a clinic, signed by ``sender``."""
    return runner.invoke(
        app,
        ["templates", "preview", "kallelse-screening", "--clinic", "SE2321000016-VC01",
         "--sender", sender, *extra, "--database", database],
    )  # fmt: skip


def test_preview_refuses_a_sender_that_is_not_an_hsa_id(database: str) -> None:
    result = preview(database, "Doktor Nobody")
    assert result.exit_code == 2
    assert "sender-unknown" in result.output
    unknown = preview(database, "SE2321000016-UNKNOWN")
    assert unknown.exit_code == 1 and "sender-unknown" in unknown.output


@pytest.mark.parametrize(
    ("sender", "code", "reason"),
    [("SE2321000016-UNKNOWN", 1, "sender-unknown"), ("Doktor Nobody", 2, "sender-unknown")],
)
def test_preview_refusals_are_json_under_json(
    database: str, sender: str, code: int, reason: str
) -> None:
    result = preview(database, sender, "--json")
    assert result.exit_code == code
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert json.loads(line)["error"]["reason"] == reason


def test_preview_refusals_begin_with_omvant_like_every_command(database: str) -> None:
    result = preview(database, "Doktor Nobody")
    assert result.exit_code == 2
    assert result.stderr.startswith("omvant: "), result.stderr
