"""With ``--json`` every note a command writes on stderr (a warning, where it listens, that a
listing is cut) is one ``{"note": {"code", "message"}}`` object per line, as its errors are
``{"error": ...}``: stdout stays the one JSON document, stderr machine-readable too."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.cli import app
from tests.delivery_support import CLINIC_B, cleared_item, reachable_residents, store_cleared
from workers.reasons import Note
from workers.store.engine import make_engine, upgrade

CLI = Path(__file__).resolve().parents[2] / "producers" / "cli"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"
USER = "SE2321000016-S101"

QUIET_UNDER_JSON: dict[tuple[str, str], str] = {
    ("errors", "report"): "the error helper: {'error': ...} under --json",
    ("errors", "note"): "the note helper: {'note': ...} under --json",
    ("templates_command", "fail"): "plain branch of a refusal; errors.fail under --json",
    ("users_command", "fail"): "plain branch of a refusal; errors.fail under --json",
    ("bench_command", "bench"): "progress lines, none under --json (say=None)",
    ("loadtest_command", "replay_command"): "progress lines, none under --json (say=None)",
    ("demo_command", "demo"): "the progress bar, transient under --json",
    ("dispatch_command", "dispatch"): "the progress bars, transient under --json",
    ("dlq_command", "replay_"): "the progress bar, disabled under --json",
    ("dlq_command", "purge"): "the confirmation prompt, asked only of a person (no --yes)",
}
"""Every place in ``producers/cli`` that writes on stderr other than through ``errors.note``
or ``errors.report``, and why it writes nothing a script would read under ``--json``."""


def stderr_writers() -> set[tuple[str, str]]:
    """(module, function) of each call in producers/cli with ``err=True`` or ``stderr=True``."""
    found: set[tuple[str, str]] = set()
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and any(
                    k.arg in {"err", "stderr"}
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                    for k in node.keywords
                ):
                    found.add((path.stem, function.name))
    return found


def test_every_stderr_line_of_every_command_goes_through_note_or_report() -> None:
    writers = stderr_writers()
    unexplained = writers - set(QUIET_UNDER_JSON)
    assert not unexplained, f"write these with errors.note (or explain them): {unexplained}"
    assert set(QUIET_UNDER_JSON) <= writers, "an explained writer is gone: drop it here"


def test_every_note_code_is_documented() -> None:
    table = DOCS.read_text(encoding="utf-8")
    for code in Note:
        assert f"| `{code.value}` |" in table, f"document the note {code.value}"


def note_lines(stderr: str) -> list[dict[str, object]]:
    """Each stderr line as the one note object it must be."""
    notes = []
    for line in stderr.strip().splitlines():
        parsed = json.loads(line)
        assert list(parsed) == ["note"], line
        assert parsed["note"]["code"] in {n.value for n in Note} and parsed["note"]["message"]
        notes.append(parsed["note"])
    return notes


@pytest.fixture
def database(sqlite_url: str) -> str:
    """Two delivered cases of clinic B."""
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    residents = reachable_residents(1177, 2, frozenset({"sms"}))
    with engine.begin() as conn:
        store_cleared(
            conn,
            [cleared_item(f"b-{i}", r, clinic=CLINIC_B) for i, r in enumerate(residents)],
        )
    engine.dispose()
    return sqlite_url


def test_a_cut_listing_under_json_says_so_in_one_note_and_stdout_stays_the_list(
    database: str,
) -> None:
    result = CliRunner().invoke(
        app,
        ["cases", "list", "--clinic", CLINIC_B, "--user", USER, "--limit", "1",
         "--database", database, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [note] = note_lines(result.stderr)
    assert note["code"] == "listing-cut" and note["shown"] == 1
    assert len(json.loads(result.stdout)) == 1


def test_a_cut_listing_without_json_is_the_plain_line(database: str) -> None:
    result = CliRunner().invoke(
        app,
        ["cases", "list", "--clinic", CLINIC_B, "--user", USER, "--limit", "1",
         "--database", database],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().startswith("note: showing the first 1 cases only")


def test_nothing_to_purge_under_json_is_one_note(database: str) -> None:
    result = CliRunner().invoke(app, ["dlq", "purge", "--all", "--database", database, "--json"])
    assert result.exit_code == 0, result.output
    [note] = note_lines(result.stderr)
    assert note["code"] == "nothing-to-purge"
