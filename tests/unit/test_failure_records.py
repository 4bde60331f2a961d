"""Failures are recorded when they happen and can be replayed once (in-process broker, SQLite).

The same scenario runs on RabbitMQ and Redis in tests/integration/test_dlq_on_real_brokers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from producers.demo import InProcessPipeline, start_pipeline, wait_for
from tests import oncall_scenario as sc
from workers import failures, replay
from workers.dead_letters import xq_depth
from workers.queues import Queues, lane_queue, lanes_of
from workers.settings import Settings
from workers.store import failures as store
from workers.store.failures import Selection
from workers.store.schema import access_log, case_events, rejected_messages
from workers.store.schema import failures as failures_table


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[InProcessPipeline]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/o.db",
        blob_dir=tmp_path / "blobs",
        max_retries=1,
        outage_retry_seconds=0,  # outages count against max_retries: dead-lettered after them
        chunk_size=20,
        template_cache_seconds=0.1,
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


def _xq_total(pipeline: InProcessPipeline) -> int:
    return sum(len(v) for v in pipeline.ctx.broker.dead_letters_by_queue.values())  # type: ignore[attr-defined]


def test_outage_poison_and_unknown_template_leave_records_and_replay_puts_them_through_once(
    pipeline: InProcessPipeline,
) -> None:
    scenario, directory = sc.build()
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)

    assert sc.failure_reasons(engine) == [
        ("outage", "dead-letter", 3),
        ("technical-failure", "dead-letter", 1),
        ("template-unknown", "rejected-case", 1),
        ("template-unknown", "rejected-case", 1),
    ]
    grouped = failures.summary(engine)
    by_reason = {(g["queue"].split(".")[0], g["reason"]): g for g in grouped["groups"]}
    assert by_reason[("recipient-validation", "outage")]["cases"] == 3
    assert by_reason[("recipient-validation", "technical-failure")]["count"] == 1
    assert by_reason[("message-composition", "template-unknown")]["count"] == 2
    assert all(g["oldest_age_seconds"] is not None for g in grouped["groups"])
    assert _xq_total(pipeline) == 2  # the outage chunk and the poison case

    # the poison record: exception, attempts, times, a traceback with the number masked
    with engine.connect() as conn:
        poison = conn.execute(
            sa.select(failures_table).where(failures_table.c.reason == "technical-failure")
        ).one()
    assert poison.exception_type == "builtins.RuntimeError"
    assert poison.attempts == 2  # max_retries=1: the first try and one retry
    assert poison.first_failed_at < poison.last_failed_at
    assert "falls over on" in poison.traceback
    assert directory.poison not in poison.traceback
    assert directory.poison[:8] + "-****" in poison.traceback
    assert json.loads(poison.body)["payload"][0]["personnummer"] == scenario.poison.personnummer

    # replaying before the fix: the template is still unknown, so the cases come back
    sc.create_template(engine, scenario.new_template)
    report = replay.replay(
        engine, pipeline.ctx.broker, Selection(reason="template-unknown"), who="test:oncall"
    )
    assert report.totals() == {"replayed": 2}
    report = replay.replay(
        engine, pipeline.ctx.broker, Selection(reason="outage"), who="test:oncall"
    )
    assert report.totals() == {"replayed": 1}
    assert report.dead_letter_copies_removed == 1
    done = ("notified", "delivered")
    fixed = [*scenario.outage, *scenario.unknown_template, *scenario.good]
    assert wait_for(lambda: sc.settled_count(engine, scenario.batch, done), 8, timeout=60) == 8
    rows = sc.case_rows(engine, scenario.batch)
    assert {rows[r.idempotency_key].state for r in fixed} <= set(done)
    assert rows[scenario.poison.idempotency_key].state == "failed"
    sent = sc.notifications_per_case(engine, [rows[r.idempotency_key].id for r in fixed])
    assert {case for case, _channel in sent} == {rows[r.idempotency_key].id for r in fixed}
    assert set(sent.values()) == {1}, sent  # one per channel each: nothing doubled
    assert _xq_total(pipeline) == 1  # only the poison case's copy is left

    # running it again is a no-op: replayed records are never sent again
    again = replay.replay(engine, pipeline.ctx.broker, Selection(reason="outage"), who="t")
    assert again.outcomes == []
    by_id = replay.replay(
        engine, pipeline.ctx.broker, replay.selected([o.id for o in report.outcomes]), who="t"
    )
    assert by_id.totals() == {"skipped": 1}

    # the reopened cases' history says who put them back
    with engine.connect() as conn:
        stages = conn.execute(
            sa.select(case_events.c.stage).where(
                case_events.c.case_id == rows[scenario.outage[0].idempotency_key].id
            )
        ).scalars()
        assert "replay" in list(stages)
    audit = failures.audit_log(engine)
    replays = [e for e in audit if e["action"] == "replay"]
    assert replays[-1]["who"] == "test:oncall"
    assert replays[-1]["outcome"]["totals"] == {"replayed": 2}
    assert replays[-1]["selection"]["reason"] == "template-unknown"
    assert failures.summary(engine)["total"] == 1  # the poison case waits for its fix


def test_a_replay_of_a_case_that_settled_meanwhile_sends_nothing(
    pipeline: InProcessPipeline,
) -> None:
    scenario, directory = sc.build(seed=77)
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)
    with engine.begin() as conn:
        outage = store.select(conn, Selection(reason="outage"))[0]
        conn.execute(
            sa.text("UPDATE cases SET state='notified', state_rank=50, reason=NULL WHERE id IN "
                    "(SELECT value FROM json_each(:ids))"),
            {"ids": json.dumps(outage.case_ids)},
        )  # fmt: skip
    dry = replay.replay(
        engine, pipeline.ctx.broker, Selection(reason="outage"), who="t", dry_run=True
    )
    assert dry.totals() == {"would-settled": 1}
    report = replay.replay(engine, pipeline.ctx.broker, Selection(reason="outage"), who="t")
    assert report.totals() == {"settled": 1}
    assert failures.summary(engine, Selection(reason="outage"))["total"] == 0


def test_show_masks_personnummer_and_leaves_text_out_unless_asked_and_logs_the_access(
    pipeline: InProcessPipeline,
) -> None:
    scenario, directory = sc.build(seed=99)
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)
    with engine.connect() as conn:
        rejected = store.select(conn, Selection(reason="template-unknown"))[0]
    masked = failures.show(engine, rejected.id, who="SE2321000016-OC01")
    assert masked is not None
    text = json.dumps(masked, ensure_ascii=False)
    number = scenario.unknown_template[0].personnummer.replace("-", "")
    others = {r.personnummer.replace("-", "") for r in scenario.unknown_template}
    assert not any(n in text for n in others)
    assert "Välkommen på besök" not in text and "[left out]" in text
    assert masked["reason"] == "template-unknown"
    assert masked["contract"] == "RecipientValidated"
    full = failures.show(engine, rejected.id, who="SE2321000016-OC01", show_personnummer=True)
    assert full is not None
    assert full["body"]["payload"][0]["personnummer"] in others
    assert full["body"]["payload"][0]["free_text"] == "Hej! Välkommen på besök."
    with engine.connect() as conn:
        logged = conn.execute(
            sa.select(access_log.c.user_hsa_id, access_log.c.action, access_log.c.unmasked)
        ).all()
    assert [(r.user_hsa_id, r.action, r.unmasked) for r in logged] == [
        ("SE2321000016-OC01", "dlq-show", False),
        ("SE2321000016-OC01", "dlq-show", True),
    ]
    assert number in others


def test_rejected_messages_are_part_of_the_view_and_can_be_purged(
    pipeline: InProcessPipeline,
) -> None:
    import dramatiq

    broker = pipeline.ctx.broker
    broker.enqueue(
        dramatiq.Message(
            queue_name="recipient-validation",
            actor_name="validate_recipients",
            args=("not an envelope",),
            kwargs={},
            options={},
        )
    )
    broker.join("recipient-validation")  # type: ignore[attr-defined]
    engine = pipeline.ctx.engine
    grouped = failures.summary(engine)["groups"]
    assert [(g["queue"], g["reason"], g["kind"], g["count"]) for g in grouped] == [
        ("recipient-validation", "malformed-message", "unreadable", 1)
    ]
    rows = failures.listing(engine, Selection())
    assert rows[0]["id"].startswith("R")
    report = replay.replay(engine, broker, replay.selected([rows[0]["id"]]), who="t")
    assert report.totals() == {"not-replayable": 1}
    purged = replay.purge(engine, broker, Selection(reason="malformed-message"), who="t")
    assert purged.totals() == {"purged": 1}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rejected_messages)).scalar() == 0
    assert failures.audit_log(engine)[0]["action"] == "purge"


def test_purge_closes_dead_letters_and_removes_their_broker_copies(
    pipeline: InProcessPipeline,
) -> None:
    scenario, directory = sc.build(seed=5)
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)
    lanes = [
        lane_queue(Queues.RECIPIENT_VALIDATION, lane)
        for lane in lanes_of(Queues.RECIPIENT_VALIDATION)
    ]
    assert sum(xq_depth(pipeline.ctx.broker, q) for q in lanes) == 2
    report = replay.purge(
        engine, pipeline.ctx.broker, Selection(queue="recipient-validation"), who="t"
    )
    assert report.totals() == {"purged": 2}
    assert report.dead_letter_copies_removed == 2
    assert sum(xq_depth(pipeline.ctx.broker, q) for q in lanes) == 0
    with engine.connect() as conn:
        bodies = conn.execute(
            sa.select(failures_table.c.body).where(failures_table.c.status == "purged")
        ).scalars()
        assert list(bodies) == [None, None]
    assert failures.summary(engine, Selection(queue="recipient-validation"))["total"] == 0


def test_a_case_rejected_for_an_unknown_fragment_goes_through_after_the_template_has_it(
    pipeline: InProcessPipeline,
) -> None:
    from workers.stage import emit
    from workers.templates import store as template_store

    engine = pipeline.ctx.engine
    number = sc.reachable_residents(1, seed=12)[0]
    batch = "fragment-fix"
    case = sc.request(number, batch, 0).model_copy(update={"fragments": ["ny-rad"]})
    emit(pipeline.ctx, [case], correlation_id=batch)
    assert wait_for(lambda: sc.settled_count(engine, batch, ("rejected",)), 1, timeout=30) == 1
    assert sc.failure_reasons(engine) == [("fragment-unknown", "rejected-case", 1)]

    # the fix: a new version of the template with the fragment (the case arrived before it)
    with engine.begin() as conn:
        current = template_store.load(conn, sc.TEMPLATE)
        assert current is not None
        fragments = {**current.fragments, "ny-rad": "En ny rad."}
        template_store.revise(conn, current.model_copy(update={"fragments": fragments}))
    report = replay.replay(
        engine, pipeline.ctx.broker, Selection(reason="fragment-unknown"), who="t"
    )
    assert report.totals() == {"replayed": 1}
    done = ("notified", "delivered")
    assert wait_for(lambda: sc.settled_count(engine, batch, done), 1, timeout=30) == 1
    row = next(iter(sc.case_rows(engine, batch).values()))
    assert row.template_version == current.version + 1


class BrokerDown:
    """A broker whose every enqueue fails, as during a broker outage in the middle of a replay."""

    def enqueue(self, message: object, *, delay: int | None = None) -> object:
        raise ConnectionError("the broker is down")


def test_a_replay_interrupted_after_the_mark_is_finished_by_the_next_one_and_sends_once(
    pipeline: InProcessPipeline,
) -> None:
    scenario, directory = sc.build(seed=21)
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)
    down = replay.replay(engine, BrokerDown(), Selection(reason="outage"), who="t")  # type: ignore[arg-type]
    assert down.totals() == {"failed": 1}
    with engine.connect() as conn:
        marked = store.select(conn, Selection(reason="outage"))
    assert [r.status.value for r in marked] == ["replaying"]  # still pending: not lost
    rows = sc.case_rows(engine, scenario.batch)
    assert {rows[r.idempotency_key].state for r in scenario.outage} == {"received"}  # reopened

    again = replay.replay(engine, pipeline.ctx.broker, Selection(reason="outage"), who="t")
    assert again.totals() == {"replayed": 1}
    done = ("notified", "delivered")
    outage = len(scenario.outage)
    ids = [o.idempotency_key for o in scenario.outage]
    # settled: notified, or delivered with no notification still to send (a case counted at
    # "delivered" alone could still have its notification on the way, and none sent yet)
    assert wait_for(
        lambda: sc.settled_count(engine, scenario.batch, done, keys=ids), outage, timeout=90
    ) == outage  # fmt: skip
    rows = sc.case_rows(engine, scenario.batch)
    sent = sc.notifications_per_case(engine, [rows[k].id for k in ids])
    assert set(sent.values()) == {1}, sent  # one of each channel, not two
    assert {case_id for case_id, _channel in sent} == {rows[k].id for k in ids}, sent
