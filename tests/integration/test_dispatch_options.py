"""``omvant dispatch`` against Redis: it refuses a dispatch the dry run says would reject every
case (unless ``--force``), shares ``--attachment`` files stored and checked once, and sends
``--urgent`` dispatches on the urgent lane; ``push --json`` prints one JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.envelope import Envelope
from producers.attachment_samples import pdf
from producers.cli import app
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.queues import Queues, lane_queue, queue_name
from workers.store.engine import make_engine, upgrade
from workers.store.schema import attachment_verdicts, batches

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
runner = CliRunner()


def reachable(count: int) -> list[str]:
    directory = SimulatedAccountDirectory(1177)
    return [
        n
        for n in population.test_personnummer()
        if directory.account(n).status == AccountStatus.ACTIVE and directory.account(n).channels
    ][:count]


@pytest.fixture
def env(
    redis_url: str,
    queue_prefix: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    upgrade(sqlite_url)
    values = {
        "OMVANT_BROKER_URL": redis_url,
        "OMVANT_DATABASE_URL": sqlite_url,
        "OMVANT_QUEUE_PREFIX": queue_prefix,
        "OMVANT_BLOB_DIR": str(tmp_path / "blobs"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def messages(env: dict[str, str], lane: str) -> list[Envelope]:
    client = redis.Redis.from_url(env["OMVANT_BROKER_URL"])
    name = queue_name(lane_queue(Queues.RECIPIENT_VALIDATION, lane), env["OMVANT_QUEUE_PREFIX"])
    found = []
    for raw in client.hvals(f"dramatiq:{name}.msgs"):
        message = json.loads(raw)
        found.append(Envelope.model_validate(message["args"][0]))
    return found


def write_list(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "lista.csv"
    path.write_text(
        "personnummer\tort\n" + "".join(f"{n}\tMalmö\n" for n in reachable(count)),
        encoding="utf-8-sig",
    )
    return path


def test_a_dispatch_every_case_of_which_would_be_rejected_does_not_start(
    env: dict[str, str], tmp_path: Path
) -> None:
    listing = write_list(tmp_path, 3)
    args = ["dispatch", str(listing), "--template", "no-such", "--clinic", CLINIC,
            "--sender", SENDER, "--json"]  # fmt: skip
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    error = json.loads(refused.stderr.strip().splitlines()[-1])["error"]
    assert error["reason"] == "dispatch-would-reject-all"
    assert "template-unknown 3" in error["message"]
    engine = make_engine(env["OMVANT_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar_one() == 0
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["enqueued"] == 3
    engine.dispose()


def some_rejected_list(tmp_path: Path) -> Path:
    """Three reachable residents, the second without the first name the template uses."""
    a, b, c = reachable(3)
    path = tmp_path / "lista.csv"
    path.write_text(f"personnummer;fornamn\n{a};Åsa\n{b};\n{c};Örjan\n", encoding="utf-8")
    return path


SOME_REJECTED = ["--template", "meddelande-till-invanare", "--fragment", "halsning-namn",
                 "--clinic", CLINIC, "--sender", SENDER]  # fmt: skip


def test_a_dispatch_some_cases_of_which_would_be_rejected_warns_once_before_enqueuing(
    env: dict[str, str], tmp_path: Path
) -> None:
    listing = some_rejected_list(tmp_path)
    sent = runner.invoke(app, ["dispatch", str(listing), *SOME_REJECTED])
    assert sent.exit_code == 0, sent.output
    [warning] = [line for line in sent.stderr.splitlines() if "will be rejected" in line]
    assert warning.startswith("warning: 1 of the 3 cases will be rejected (field-missing 1)")
    assert "cases enqueued" in sent.stdout and "will be rejected" not in sent.stdout


def test_under_json_the_warning_is_one_note_object_and_stdout_stays_the_summary(
    env: dict[str, str], tmp_path: Path
) -> None:
    listing = some_rejected_list(tmp_path)
    sent = runner.invoke(app, ["dispatch", str(listing), *SOME_REJECTED, "--json"])
    assert sent.exit_code == 0, sent.output
    [line] = sent.stderr.strip().splitlines()
    warning = json.loads(line)["note"]
    assert warning["code"] == "dispatch-will-reject-some"
    assert (warning["rejected"], warning["lines"], warning["reasons"]) == (
        1,
        3,
        {"field-missing": 1},
    )
    assert json.loads(sent.stdout)["enqueued"] == 3


def test_a_dispatch_nothing_of_which_would_be_rejected_warns_of_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    sent = runner.invoke(
        app,
        ["dispatch", str(write_list(tmp_path, 2)), "--template", "meddelande-till-invanare",
         "--fragment", "halsning", "--clinic", CLINIC, "--sender", SENDER, "--json"],
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert sent.stderr.strip() == ""


def test_attachments_are_stored_and_checked_once_and_an_urgent_dispatch_takes_the_urgent_lane(
    env: dict[str, str], tmp_path: Path
) -> None:
    listing = write_list(tmp_path, 5)
    letter = tmp_path / "kallelse.pdf"
    letter.write_bytes(pdf(2))
    result = runner.invoke(
        app,
        ["dispatch", str(listing), "--template", "kallelse-screening", "--clinic", CLINIC,
         "--sender", SENDER, "--attachment", str(letter), "--urgent", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["enqueued"] == 5 and summary["priority"] == "urgent"
    [ref] = summary["attachments"]
    assert ref["filename"] == "kallelse.pdf" and ref["declared_type"] == "application/pdf"
    stored = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert stored == [ref["sha256"]], "stored once for the whole dispatch"
    engine = make_engine(env["OMVANT_DATABASE_URL"])
    with engine.connect() as conn:
        verdicts = conn.execute(sa.select(attachment_verdicts.c.sha256)).scalars().all()
    engine.dispose()
    assert verdicts == [ref["sha256"]], "checked once, the verdict kept for the stage"
    urgent = messages(env, "urgent")
    records = [record for envelope in urgent for record in envelope.payload]
    assert len(records) == 5
    assert all(r["priority"] == "urgent" for r in records)
    assert all([a["sha256"] for a in r["attachments"]] == [ref["sha256"]] for r in records)
    assert messages(env, "bulk-1") == messages(env, "bulk-2") == []


def test_push_json_prints_one_summary_with_the_invalid_lines(
    env: dict[str, str], tmp_path: Path
) -> None:
    [number] = reachable(1)
    good = {
        "clinic_hsa_id": CLINIC,
        "sender_hsa_id": SENDER,
        "template_id": "meddelande-till-invanare",
        "personnummer": number,
        "idempotency_key": "p1",
    }
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(good) + "\nnot json\n", encoding="utf-8")
    result = runner.invoke(app, ["push", str(path), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["pushed"] == 1 and summary["invalid_lines"] == 1
    assert summary["lines"][0]["line"] == 2
    assert summary["lines"][0]["reason"] == "malformed-message"
