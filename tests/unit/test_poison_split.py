"""A chunk whose processes died under it too often is put back one case at a time, not set
aside whole: a long bulk chunk can meet that many ``kill -9`` without any case of its own being
at fault, and its cases must not wait for the sweep (``workers/poison.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import SkipMessage

from producers.scenario import build_dispatch
from workers.bootstrap import Context, build_context
from workers.poison import SetAsidePoison
from workers.settings import Settings
from workers.store.deliveries import started
from workers.store.engine import upgrade
from workers.store.schema import message_deliveries, rejected_messages

QUEUES = ("recipient-validation", "recipient-validation.urgent")


def wiring(tmp_path: Path) -> tuple[Context, StubBroker]:
    url = f"sqlite:///{tmp_path}/o.db"
    upgrade(url)
    broker = StubBroker()
    for queue in QUEUES:
        broker.declare_queue(queue)
    return build_context(Settings(database_url=url, blob_dir=tmp_path / "blobs"), broker), broker


def died_under(ctx: Context, raw: dict[str, Any], deaths: int) -> MessageProxy:
    """The message as the broker hands it out after its process died ``deaths`` times."""
    message = MessageProxy(
        dramatiq.Message(
            queue_name="recipient-validation",
            actor_name="validate_recipients",
            args=(raw,),
            kwargs={},
            options={},
        )
    )
    for _ in range(deaths):
        with ctx.engine.begin() as conn:
            started(conn, "recipient-validation", message.message_id)
    return message


def table_rows(ctx: Context, table: sa.Table) -> list[Any]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def test_a_chunk_that_died_too_often_goes_back_one_case_at_a_time(tmp_path: Path) -> None:
    ctx, broker = wiring(tmp_path)
    records = [r.model_dump(mode="json") for r in build_dispatch(3, seed=7, batch_id=None)]
    records[0] = {**records[0], "priority": "urgent"}
    raw = {"contract": "SendCase", "version": 2, "message_id": "m-1", "payload": records}
    message = died_under(ctx, raw, deaths=3)
    guard = SetAsidePoison(lambda: ctx, limit=3)
    with pytest.raises(SkipMessage):
        guard.before_process_message(broker, message)
    guard.after_skip_message(broker, message)  # as dramatiq's worker does after SkipMessage
    urgent = broker.queues["recipient-validation.urgent"]
    normal = broker.queues["recipient-validation"]
    assert (urgent.qsize(), normal.qsize()) == (1, 2)  # each case on its own lane
    parts = [dramatiq.Message.decode(q.get()).args[0] for q in (urgent, normal, normal)]
    assert sorted(p["message_id"] for p in parts) == ["m-1/0", "m-1/1", "m-1/2"]
    assert sorted(p["payload"][0]["personnummer"] for p in parts) == sorted(
        r["personnummer"] for r in records
    )
    assert all(len(p["payload"]) == 1 for p in parts)
    assert table_rows(ctx, rejected_messages) == []  # nothing set aside
    assert table_rows(ctx, message_deliveries) == []  # the chunk's starts forgotten
    ctx.engine.dispose()


def test_a_single_case_that_died_too_often_is_set_aside(tmp_path: Path) -> None:
    ctx, broker = wiring(tmp_path)
    record = build_dispatch(1, seed=7, batch_id=None)[0].model_dump(mode="json")
    raw = {"contract": "SendCase", "version": 2, "message_id": "m-2", "payload": [record]}
    message = died_under(ctx, raw, deaths=3)
    guard = SetAsidePoison(lambda: ctx, limit=3)
    with pytest.raises(SkipMessage):
        guard.before_process_message(broker, message)
    assert [r.reason for r in table_rows(ctx, rejected_messages)] == ["poison-message"]
    assert all(broker.queues[q].qsize() == 0 for q in QUEUES)
    ctx.engine.dispose()


def test_a_chunk_within_the_limit_runs_as_it_is(tmp_path: Path) -> None:
    ctx, broker = wiring(tmp_path)
    records = [r.model_dump(mode="json") for r in build_dispatch(2, seed=7, batch_id=None)]
    raw = {"contract": "SendCase", "version": 2, "message_id": "m-3", "payload": records}
    message = died_under(ctx, raw, deaths=2)
    SetAsidePoison(lambda: ctx, limit=3).before_process_message(broker, message)
    assert all(broker.queues[q].qsize() == 0 for q in QUEUES)
    assert table_rows(ctx, rejected_messages) == []
    ctx.engine.dispose()


def test_a_chunk_of_another_stages_contract_is_set_aside_not_sent_to_that_stage(
    tmp_path: Path,
) -> None:
    """On recipient-validation an AttachmentsCleared chunk is refused (wrong-queue); put back on
    its contract's stage it would reach the inbox without validation, composition or scan."""
    ctx, broker = wiring(tmp_path)
    onward = ("notification-dispatch", "notification-dispatch.urgent")
    for queue in onward:
        broker.declare_queue(queue)
    records = [{"case_id": f"case-{n}", "clinic_hsa_id": "SE1"} for n in range(3)]
    raw = {"contract": "AttachmentsCleared", "version": 1, "message_id": "m-4", "payload": records}
    message = died_under(ctx, raw, deaths=3)
    with pytest.raises(SkipMessage):
        SetAsidePoison(lambda: ctx, limit=3).before_process_message(broker, message)
    assert all(broker.queues[q].qsize() == 0 for q in (*QUEUES, *onward))
    assert [r.reason for r in table_rows(ctx, rejected_messages)] == ["poison-message"]
    ctx.engine.dispose()


class AwayOnce:
    """The real engine, except that its ``nth`` transaction finds the database down."""

    def __init__(self, engine: sa.Engine, nth: int) -> None:
        self.engine, self.left = engine, nth

    def begin(self) -> Any:
        self.left -= 1
        if self.left == 0:
            raise sa.exc.OperationalError("BEGIN", {}, ConnectionRefusedError("restarting"))
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()


def test_a_put_back_chunk_is_not_run_whole_too_when_the_database_blinks(tmp_path: Path) -> None:
    """Forgetting the chunk's starts fails once, after its parts are enqueued: the chunk is
    still skipped (acknowledged), not failed (dramatiq would retry it whole, each case twice),
    and its starts are forgotten once the database is back."""
    ctx, broker = wiring(tmp_path)
    records = [r.model_dump(mode="json") for r in build_dispatch(2, seed=7, batch_id=None)]
    raw = {"contract": "SendCase", "version": 2, "message_id": "m-5", "payload": records}
    message = died_under(ctx, raw, deaths=3)
    blinking = dataclasses.replace(ctx, engine=AwayOnce(ctx.engine, nth=2))  # type: ignore[arg-type]
    guard = SetAsidePoison(lambda: blinking, limit=3)
    with pytest.raises(SkipMessage):
        guard.before_process_message(broker, message)
    guard.after_skip_message(broker, message)
    assert sum(broker.queues[q].qsize() for q in QUEUES) == 2  # each case once
    assert table_rows(ctx, message_deliveries) == []
    ctx.engine.dispose()
