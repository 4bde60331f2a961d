"""The sweep re-drives what has stalled from its last recorded step, idempotently, counts what
it found, and runs the unread follow-ups."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from typer.testing import CliRunner

from producers.cli import app
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from workers import sweep
from workers.adapters.notifiers import SimulatedSmsGateway
from workers.bootstrap import Context, build_context
from workers.case_states import CaseState
from workers.settings import Settings
from workers.store import batches, cases, notifications
from workers.store.batches import BatchStatus
from workers.store.cases import Transition
from workers.store.engine import upgrade
from workers.store.schema import cases as cases_table
from workers.store.schema import notification_ledger

NOW = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    upgrade(sqlite_url)
    context = build_context(
        Settings(database_url=sqlite_url, blob_dir=tmp_path / "blobs"), StubBroker()
    )
    context.sms = SimulatedSmsGateway()
    context.now = lambda: NOW
    yield context
    context.engine.dispose()


def delivered_with_rows(ctx: Context, case_id: str, *, status: str) -> None:
    """A delivered case whose SMS row has ``status``, all last changed at NOW."""
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item(case_id, resident, channels=["sms"])
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
        cases.apply(conn, [Transition(case_id, CaseState.DELIVERED)], stage="test")
        notifications.write_queued(
            conn, [notifications.Queued(case_id, "sms", "+46701740605")], refused="x"
        )
        conn.execute(
            sa.update(notification_ledger)
            .where(notification_ledger.c.case_id == case_id)
            .values(status=status, updated_at=NOW)
        )
        conn.execute(
            sa.update(cases_table).where(cases_table.c.id == case_id).values(updated_at=NOW)
        )


def notified_on_email(ctx: Context, case_id: str) -> None:
    """The case also got an e-mail row, sent at NOW, and was recorded notified on e-mail only."""
    with ctx.engine.begin() as conn:
        notifications.write_queued(
            conn, [notifications.Queued(case_id, "email", "a@example.org")], refused="x"
        )
        conn.execute(
            sa.update(notification_ledger)
            .where(notification_ledger.c.idempotency_key == f"{case_id}:email")
            .values(status=notifications.SENT, updated_at=NOW)
        )
        cases.apply(
            conn, [Transition(case_id, CaseState.NOTIFIED, {"channels": "email"})], stage="test"
        )
        conn.execute(
            sa.update(cases_table).where(cases_table.c.id == case_id).values(updated_at=NOW)
        )


def state(ctx: Context, case_id: str) -> str:
    with ctx.engine.connect() as conn:
        return str(cases.states_of(conn, [case_id])[case_id])


def test_a_notification_whose_message_was_lost_is_sent_by_the_sweep_once(ctx: Context) -> None:
    delivered_with_rows(ctx, "lost-1", status=notifications.QUEUED)
    assert sweep.run(ctx)["stalled-notifications"] == 0  # not stalled yet: within its limit
    ctx.now = lambda: LATER
    first = sweep.run(ctx)
    assert first["stalled-notifications"] == 1
    assert first["notifications-sent"] == 1
    assert first["notified-recorded"] == 1
    assert state(ctx, "lost-1") == "notified"
    second = sweep.run(ctx)
    assert second["stalled-notifications"] == 0 and second["notified-recorded"] == 0
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {"lost-1:sms": 1}


def test_an_in_doubt_sms_is_resolved_by_the_sweep_by_asking_the_gateway(ctx: Context) -> None:
    delivered_with_rows(ctx, "doubt-1", status=notifications.PENDING)
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    ctx.sms.send(to="+46701740605", text="x", idempotency_key="doubt-1:sms")
    ctx.now = lambda: LATER
    counts = sweep.run(ctx)
    assert counts["notifications-found-at-provider"] == 1
    assert ctx.sms.sends == {"doubt-1:sms": 1}
    assert state(ctx, "doubt-1") == "notified"


def test_a_sent_notification_whose_case_was_not_recorded_notified_is_recorded(
    ctx: Context,
) -> None:
    delivered_with_rows(ctx, "unrecorded-1", status=notifications.SENT)
    ctx.now = lambda: LATER
    counts = sweep.run(ctx)
    assert counts["stalled-delivered"] == 1
    assert counts["notified-recorded"] == 1
    assert state(ctx, "unrecorded-1") == "notified"
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}


def test_a_notification_the_sweep_sends_for_a_case_notified_before_joins_its_channels(
    ctx: Context,
) -> None:
    delivered_with_rows(ctx, "both-1", status=notifications.QUEUED)
    notified_on_email(ctx, "both-1")  # the e-mail went out and the case was recorded on it
    ctx.now = lambda: LATER
    assert sweep.run(ctx)["notifications-sent"] == 1  # the SMS, whose message was lost
    with ctx.engine.connect() as conn:
        channels = conn.execute(
            sa.select(cases_table.c.channels).where(cases_table.c.id == "both-1")
        ).scalar()
    assert channels == "email,sms"


def test_cases_stalled_before_delivery_are_counted_per_state_and_without_a_record_left_alone(
    ctx: Context,
) -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    with ctx.engine.begin() as conn:
        store_cleared(conn, [cleared_item("early-1", resident)])
        conn.execute(sa.update(cases_table).values(updated_at=NOW))
    ctx.now = lambda: NOW + dt.timedelta(minutes=5)
    assert sweep.findings(ctx).get("stalled-cleared", 0) == 0
    ctx.now = lambda: LATER
    assert sweep.findings(ctx)["stalled-cleared"] == 1
    counts = sweep.run(ctx)
    assert counts["stalled-cleared"] == 1
    assert counts["not-rebuilt-cleared"] == 1  # no composed content kept: nothing to send
    assert state(ctx, "early-1") == "cleared"


def test_the_limits_are_per_state_and_set_by_the_deployment(ctx: Context) -> None:
    delivered_with_rows(ctx, "limit-1", status=notifications.QUEUED)
    ctx.now = lambda: NOW + dt.timedelta(seconds=30)
    assert sweep.findings(ctx)["stalled-notifications"] == 0
    ctx.settings = ctx.settings.model_copy(update={"sweep_limits": {"notification": 10}})
    assert sweep.findings(ctx)["stalled-notifications"] == 1


def test_omvant_sweep_runs_once_and_prints_its_counts(ctx: Context, sqlite_url: str) -> None:
    delivered_with_rows(ctx, "cli-1", status=notifications.SENT)
    with ctx.engine.begin() as conn:
        conn.execute(sa.update(cases_table).values(updated_at=NOW - dt.timedelta(days=1)))
    result = CliRunner().invoke(app, ["sweep", "--json", "--database", sqlite_url])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["notified-recorded"] == 1
    assert state(ctx, "cli-1") == "notified"


def test_each_run_is_recorded_for_on_call(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        assert sweep.last_run(conn) is None
    delivered_with_rows(ctx, "seen-1", status=notifications.SENT)
    ctx.now = lambda: LATER
    counts = sweep.run(ctx)
    with ctx.engine.connect() as conn:
        last = sweep.last_run(conn)
    assert last is not None
    assert last["counts"] == dict(sorted(counts.items()))
    assert last["counts"]["notified-recorded"] == 1
    assert dt.datetime.fromisoformat(last["at"]).tzinfo is not None


def test_a_channel_sent_that_a_notified_case_does_not_name_is_added_to_its_record(
    ctx: Context,
) -> None:
    delivered_with_rows(ctx, "unnamed-1", status=notifications.SENT)
    # recorded notified on the e-mail; the SMS's mark committed, its channel never recorded
    notified_on_email(ctx, "unnamed-1")
    assert sweep.run(ctx)["channels-recorded"] == 0  # within the limit: a worker may be at it
    ctx.now = lambda: LATER
    assert sweep.run(ctx)["channels-recorded"] == 1
    with ctx.engine.connect() as conn:
        channels = conn.execute(
            sa.select(cases_table.c.channels).where(cases_table.c.id == "unnamed-1")
        ).scalar()
    assert channels == "email,sms"
    assert sweep.run(ctx)["channels-recorded"] == 0
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}  # nothing sent: the record only


def test_a_paused_dispatchs_notifications_wait_for_its_resume_not_for_the_sweep(
    ctx: Context,
) -> None:
    delivered_with_rows(ctx, "held-1", status=notifications.QUEUED)
    with ctx.engine.begin() as conn:
        batches.create(
            conn,
            batch_id="b-paused",
            name="paused",
            clinic_hsa_id="SE2321000016-VC01",
            sender_hsa_id="SE2321000016-S101",
            template_id="kallelse-screening",
            total=1,
        )
        conn.execute(
            sa.update(cases_table).where(cases_table.c.id == "held-1").values(batch_id="b-paused")
        )
        batches.set_status(conn, "b-paused", BatchStatus.PAUSED)
    ctx.now = lambda: LATER
    assert sweep.run(ctx)["stalled-notifications"] == 0
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}  # the pause holds, past the sweep's limit too
    with ctx.engine.begin() as conn:
        batches.set_status(conn, "b-paused", BatchStatus.RUNNING)
    assert sweep.run(ctx)["notifications-sent"] == 1  # resumed: re-driven as any other
    assert ctx.sms.sends == {"held-1:sms": 1}


def test_a_dispatch_still_moving_keeps_its_queued_cases_and_notifications_from_the_sweep(
    ctx: Context,
) -> None:
    """A 100,000-case dispatch keeps cases queued longer than any limit (the chaos run at
    100,000 cases had the sweep re-drive 24,820 of them): while another case of the same
    dispatch moves, none of its cases or queued notifications is stalled."""
    residents = reachable_residents(ctx.settings.seed, 2, frozenset({"sms"}))
    waiting, moving = (
        cleared_item(f"deep-{n}", p, channels=["sms"], batch_id="b-deep")
        for n, p in enumerate(residents)
    )
    with ctx.engine.begin() as conn:
        store_cleared(conn, [waiting, moving])
        conn.execute(sa.update(cases_table).values(updated_at=NOW))
    delivered_with_rows(ctx, "queued-1", status=notifications.QUEUED)
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.update(cases_table).where(cases_table.c.id == "queued-1").values(batch_id="b-deep")
        )
        conn.execute(  # the dispatch moves: one of its cases changed just now
            sa.update(cases_table).where(cases_table.c.id == "deep-1").values(updated_at=LATER)
        )
    ctx.now = lambda: LATER
    found = sweep.findings(ctx)
    assert found.get("stalled-cleared", 0) == 0
    assert found["stalled-notifications"] == 0
    assert sweep.run(ctx).get("notifications-sent", 0) == 0
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert ctx.sms.sends == {}
    ctx.now = lambda: LATER + dt.timedelta(hours=1)  # the dispatch has stopped moving
    found = sweep.findings(ctx)
    assert found["stalled-cleared"] == 2
    assert found["stalled-notifications"] == 1
    assert sweep.run(ctx)["notifications-sent"] == 1
    assert ctx.sms.sends == {"queued-1:sms": 1}


def test_a_delivered_case_whose_sms_waits_for_the_end_of_quiet_hours_is_not_stalled(
    ctx: Context,
) -> None:
    """Outside review of issue 11: every SMS-only resident counted stalled-delivered each night."""
    delivered_with_rows(ctx, "night-1", status=notifications.QUEUED)
    with ctx.engine.begin() as conn:  # the SMS is due when quiet hours end, 10 h from NOW
        conn.execute(sa.update(notification_ledger).values(due_at=NOW + dt.timedelta(hours=10)))
    ctx.now = lambda: LATER  # an hour later, still inside quiet hours
    assert sweep.findings(ctx).get("stalled-delivered", 0) == 0
    assert isinstance(ctx.sms, SimulatedSmsGateway)
    assert sweep.run(ctx).get("notifications-sent", 0) == 0
    assert ctx.sms.sends == {}
    ctx.now = lambda: NOW + dt.timedelta(hours=11)  # due an hour ago, and not sent: stalled
    assert sweep.findings(ctx)["stalled-delivered"] == 1
    assert sweep.run(ctx)["notifications-sent"] == 1
