"""What the outside review of issue 12 found in ``omvant dlq``, each held by a test.

Two replays at once, a replay killed midway, ids that name nothing (or look like ids only to
Python's ``int``), ages that overflow, and rejects whose queue carries the deployment's prefix.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from contracts.registry import envelope_for
from contracts.send_case import SendCaseV2
from producers.cli import app
from producers.cli.dlq_command import since_time
from tests.databases import migrated_engine
from workers import failures, replay
from workers.rejections import record as record_reject
from workers.store import failures as store
from workers.store.cases import utcnow
from workers.store.failures import FailureStatus, Selection
from workers.store.schema import failures as failures_table
from workers.store.schema import oncall_audit


class Recorder:
    """A broker that keeps what is enqueued on it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        self.sent.append(message)
        return message


def _engine(tmp_path: Path) -> sa.Engine:
    url = f"sqlite:///{tmp_path}/o.db"
    return migrated_engine(url)


def _dead_letter(engine: sa.Engine, key: str) -> str:
    """One open dead-letter record of a SendCase for a case not created yet (replay sends it)."""
    item = SendCaseV2.model_validate(
        {
            "clinic_hsa_id": "SE2321000016-VC01",
            "sender_hsa_id": "SE2321000016-S101",
            "template_id": "meddelande-till-invanare",
            "personnummer": "191212121212",
            "idempotency_key": key,
        }
    )
    body = envelope_for([item], correlation_id="c").model_dump(mode="json")
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            failures_table.insert().values(
                kind="dead-letter", queue="recipient-validation", actor="validate_recipients",
                contract="SendCase", contract_version=2, case_ids="[]", case_count=1,
                reason="outage", attempts=3, first_failed_at=now, last_failed_at=now,
                body=json.dumps(body), status="open",
            )
        )  # fmt: skip
        key_row = result.inserted_primary_key
        assert key_row is not None
    return f"F{key_row[0]}"


def _status(engine: sa.Engine, failure_id: str) -> str:
    with engine.connect() as conn:
        rows = store.select(conn, replay.selected([failure_id]))
    return rows[0].status.value


def test_a_record_another_replay_has_just_marked_is_skipped_not_enqueued_twice(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    failure_id = _dead_letter(engine, "k1")
    with engine.begin() as conn:  # another on-call engineer's replay, between mark and confirm
        assert store.set_status(
            conn, failure_id, FailureStatus.REPLAYING, expect=store.PENDING, replay=True
        )
    broker = Recorder()
    report = replay.replay(engine, broker, Selection(reason="outage"), who="t")  # type: ignore[arg-type]
    assert report.totals() == {"skipped": 1}
    assert report.outcomes[0].detail == "taken by another replay"
    assert broker.sent == []

    # That replay died: once its lease has run out, the next replay takes the record.
    stale = utcnow() - dt.timedelta(seconds=store.REPLAY_LEASE_SECONDS + 1)
    with engine.begin() as conn:
        conn.execute(failures_table.update().values(replayed_at=stale))
    report = replay.replay(engine, broker, Selection(reason="outage"), who="t")  # type: ignore[arg-type]
    assert report.totals() == {"replayed": 1}
    assert len(broker.sent) == 1
    assert _status(engine, failure_id) == "replayed"


class Killed(BaseException):
    """The replay's process dies (as by kill -9: nothing after this point runs)."""


def test_a_replay_killed_midway_has_left_an_audit_entry_of_what_it_did(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    first, second = _dead_letter(engine, "k1"), _dead_letter(engine, "k2")
    broker = Recorder()

    def die_after_the_first(outcome: replay.Outcome) -> None:
        raise Killed

    with pytest.raises(Killed):
        replay.replay(
            engine,
            broker,  # type: ignore[arg-type]
            Selection(reason="outage"),
            who="SE2321000016-S900",
            progress=die_after_the_first,
        )
    assert _status(engine, first) == "replayed" and _status(engine, second) == "open"
    entries = failures.audit_log(engine)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["who"], entry["action"]) == ("SE2321000016-S900", "replay")
    assert entry["outcome"]["unfinished"] is True
    assert entry["selection"]["reason"] == "outage"
    assert (entry["count"], entry["outcome"]["ids"]) == (1, [first])
    shown = CliRunner().invoke(app, ["dlq", "audit", "--database", f"sqlite:///{tmp_path}/o.db"])
    assert "(unfinished)" in shown.output, shown.output

    replay.replay(engine, broker, Selection(reason="outage"), who="t")  # type: ignore[arg-type]
    with engine.connect() as conn:
        last = conn.execute(sa.select(oncall_audit).order_by(oncall_audit.c.id.desc())).first()
    assert last is not None
    done = json.loads(last.outcome)
    assert "unfinished" not in done and done["totals"] == {"replayed": 1}
    assert done["ids"] == [second]


def test_ids_that_name_no_record_are_reported_and_fail_the_command(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    failure_id = _dead_letter(engine, "k1")
    report = replay.replay(
        engine,
        Recorder(),  # type: ignore[arg-type]
        replay.selected(["F999999", "r5", "99999999999999999999", failure_id]),
        who="t",
    )
    assert report.totals() == {"unknown": 3, "replayed": 1}
    assert [o.id for o in report.outcomes if o.result == "unknown"] == [
        "F999999",
        "R5",
        "F99999999999999999999",
    ]
    purged = replay.purge(engine, Recorder(), replay.selected(["F999999"]), who="t")  # type: ignore[arg-type]
    assert purged.totals() == {"unknown": 1}

    db = f"sqlite:///{tmp_path}/o.db"
    runner = CliRunner()
    result = runner.invoke(
        app, ["dlq", "replay", "F424242", "--database", db, "--broker", "memory://"]
    )
    assert result.exit_code == 1, result.output
    assert "F424242 unknown: no such record" in result.output
    result = runner.invoke(app, ["dlq", "purge", "F424242", "--yes", "--database", db])
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize("given", ["F١", "F１", "١", "R٣", "F1e3", "F 1", "F-1", ""])
def test_an_id_is_ascii_digits_only(tmp_path: Path, given: str) -> None:
    with pytest.raises(ValueError, match="not a failure id"):
        store.canonical_id(given)
    db = f"sqlite:///{tmp_path}/o.db"
    engine = _engine(tmp_path)
    _dead_letter(engine, "k1")  # F1: a non-ASCII "1" must not reach it
    for command in (["show", given], ["replay", given], ["purge", given, "--yes"]):
        result = CliRunner().invoke(app, ["dlq", *command, "--database", db])
        assert result.exit_code == 2, (command, result.output)
        assert "invalid-id" in result.output
    assert _status(engine, "F1") == "open"


def test_an_id_too_large_for_the_table_is_no_record_not_a_crash(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/o.db"
    _engine(tmp_path)
    for given in ("99999999999999999999999", "F2147483648", "R99999999999"):
        result = CliRunner().invoke(app, ["dlq", "show", given, "--database", db])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "no failure" in result.output


@pytest.mark.parametrize("given", ["99999999999d", "1000000d", "9" * 40 + "s"])
def test_an_age_beyond_the_calendar_is_a_usage_error(given: str) -> None:
    with pytest.raises(typer.Exit) as stopped:
        since_time(given)
    assert stopped.value.exit_code == 2


def test_rejects_are_shown_and_filtered_by_the_queue_name_without_the_prefix(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    _dead_letter(engine, "k1")
    with engine.begin() as conn:  # what a stage's guard writes: the broker's full queue name
        record_reject(
            conn, queue="p1.recipient-validation", reason="malformed-message", detail="x",
            kept=None,
        )  # fmt: skip
        record_reject(
            conn, queue="p1.recipient-validation.bulk-1", reason="malformed-message",
            detail="y", kept=None,
        )  # fmt: skip
    shown = failures.summary(engine, Selection(prefix="p1."))["groups"]
    assert sorted((g["queue"], g["kind"], g["count"]) for g in shown) == [
        ("recipient-validation", "dead-letter", 1),
        ("recipient-validation", "unreadable", 1),
        ("recipient-validation.bulk-1", "unreadable", 1),
    ]
    picked = failures.listing(engine, Selection(queue="recipient-validation", prefix="p1."))
    assert sorted((r["id"][0], r["queue"]) for r in picked) == [
        ("F", "recipient-validation"),
        ("R", "recipient-validation"),
        ("R", "recipient-validation.bulk-1"),
    ]
    with engine.connect() as conn:
        oldest = store.oldest_pending(conn, "p1.")
    assert set(oldest) == {"recipient-validation", "recipient-validation.bulk-1"}


def test_rejects_list_shows_queues_without_the_prefix_as_dlq_and_status_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path)
    with engine.begin() as conn:  # what the intake bridge writes: the broker's full queue name
        record_reject(
            conn, queue="p1.omvant.intake", reason="signature-invalid", detail="x", kept=None
        )
    engine.dispose()
    monkeypatch.setenv("OMVANT_QUEUE_PREFIX", "p1.")
    database = ["--database", f"sqlite:///{tmp_path}/o.db"]
    listed = CliRunner().invoke(app, ["rejects", "list", "--json", *database])
    assert listed.exit_code == 0, listed.output
    assert [r["queue"] for r in json.loads(listed.stdout)] == ["omvant.intake"]
    plain = CliRunner().invoke(app, ["rejects", "list", *database])
    assert "  omvant.intake  signature-invalid" in plain.output
    assert "p1." not in plain.output
