"""A case whose message to inbox delivery was lost is sent on by the sweep, from the record
(``workers/redrive.py``): the record built again is the message that was lost, and the
resident gets it in the inbox once, even when the lost message turns up after all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa

from contracts.registry import parse
from contracts.send_case import SendCaseV2
from producers import attachment_samples as samples
from tests.reachable import reachable_residents
from workers import sweep
from workers.actors import declare_actors, run_message
from workers.attachments.ownership import store_attachment
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.routes import ROUTES
from workers.settings import Settings
from workers.stage import emit
from workers.store.engine import upgrade
from workers.store.schema import cases

CLINIC = "SE2321000016-VC01"
NOW = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url, blob_dir=tmp_path / "blobs", broker_url="memory://"
    )
    context = build_context(settings, build_broker(settings.broker_url))
    declare_actors(context.broker, lambda: context)  # the queues; the tests run the stages
    context.now = lambda: NOW
    yield context
    context.engine.dispose()


def taken(ctx: Context) -> list[dict[str, Any]]:
    """Every envelope on the in-process broker's queues, taken off them."""
    envelopes = []
    for queue in ctx.broker.queues.values():  # type: ignore[attr-defined]
        while not queue.empty():
            envelopes.append(dramatiq.Message.decode(queue.get_nowait()).args[0])
    return envelopes


def run(ctx: Context, envelope: dict[str, Any]) -> None:
    contract = envelope["contract"]
    run_message(contract, ROUTES[contract].processor(), ctx, (envelope,), {})


def until(ctx: Context, contract: str) -> list[dict[str, Any]]:
    """Run the stages on what the broker holds until only ``contract`` messages are left."""
    while True:
        envelopes = taken(ctx)
        if all(e["contract"] == contract for e in envelopes):
            return envelopes
        for envelope in envelopes:
            run(ctx, envelope)


def request(ctx: Context, key: str, resident: str, *, with_file: bool) -> SendCaseV2:
    files = []
    if with_file:
        files.append(
            store_attachment(
                ctx.engine,
                ctx.blobs,
                samples.pdf(1),
                owner_hsa_id=CLINIC,
                filename="kallelse.pdf",
                declared_type="application/pdf",
            )
        )
    return SendCaseV2(
        clinic_hsa_id=CLINIC,
        sender_hsa_id="SE2321000016-S101",
        template_id="meddelande-till-invanare",
        fragments=["halsning"],
        personnummer=resident,
        attachments=files,
        idempotency_key=key,
    )


def later(ctx: Context) -> None:
    """An hour on: past every sweep limit."""
    ctx.now = lambda: NOW + dt.timedelta(hours=1)
    with ctx.engine.begin() as conn:
        conn.execute(sa.update(cases).values(updated_at=NOW))


def test_a_cleared_case_whose_message_was_lost_is_sent_to_the_inbox_once_by_the_sweep(
    ctx: Context,
) -> None:
    residents = reachable_residents(2, ctx.settings.seed)
    sent = [
        request(ctx, "with-file", residents[0], with_file=True),
        request(ctx, "plain", residents[1], with_file=False),
    ]
    emit(ctx, sent, correlation_id="lost-chunk")
    [lost] = until(ctx, "AttachmentsCleared")  # the broker loses it
    later(ctx)
    counts = sweep.run(ctx)
    assert counts["stalled-cleared"] == 2
    assert counts["redriven-cleared"] == 2
    [again] = taken(ctx)
    assert parse(again).items == parse(lost).items  # the message that was lost, rebuilt
    assert again["correlation_id"] == "lost-chunk"
    run(ctx, again)
    run(ctx, lost)  # the lost message turns up after all
    with ctx.engine.connect() as conn:
        states = dict(conn.execute(sa.select(cases.c.id, cases.c.state)).all())
    assert set(states.values()) == {"delivered"}
    inbox: Any = ctx.inbox
    assert sorted(inbox.delivered_case_ids()) == sorted(states)  # each once
    assert sweep.run(ctx)["redriven-cleared"] == 0  # nothing stalled at cleared any more


def test_a_stalled_case_whose_record_is_not_complete_is_counted_not_sent(ctx: Context) -> None:
    [resident] = reachable_residents(1, ctx.settings.seed)
    emit(ctx, [request(ctx, "old", resident, with_file=True)], correlation_id="c")
    until(ctx, "AttachmentsCleared")
    with ctx.engine.begin() as conn:  # cleared before attachments were kept with the content
        conn.execute(sa.update(cases).values(content=None))
    later(ctx)
    counts = sweep.run(ctx)
    assert counts["stalled-cleared"] == 1
    assert counts["not-rebuilt-cleared"] == 1
    assert counts["redriven-cleared"] == 0
    assert taken(ctx) == []
