"""A case whose message to inbox delivery was lost is sent on by the sweep, from the record
(``workers/redrive.py``): the record built again is the message that was lost, and the
resident gets it in the inbox once, even when the lost message turns up after all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contracts.registry import parse
from tests.reachable import reachable_residents
from tests.redrive_support import NOW, request, run, stage_context, taken, until
from workers import sweep
from workers.bootstrap import Context
from workers.stage import emit
from workers.store.schema import case_bodies, cases


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    yield from stage_context(sqlite_url, tmp_path)


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
    lost = until(ctx, "AttachmentsCleared")  # the broker loses them
    later(ctx)
    counts = sweep.run(ctx)
    assert counts["stalled-cleared"] == 2
    assert counts["redriven-cleared"] == 2
    [again] = taken(ctx)
    were = sorted((i for e in lost for i in parse(e).items), key=lambda i: i.case_id)
    assert sorted(parse(again).items, key=lambda i: i.case_id) == were  # rebuilt as they were
    assert again["correlation_id"] == "lost-chunk"
    run(ctx, again)
    for envelope in lost:
        run(ctx, envelope)  # the lost messages turn up after all
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
        conn.execute(sa.delete(case_bodies).where(case_bodies.c.part == "content"))
    later(ctx)
    counts = sweep.run(ctx)
    assert counts["stalled-cleared"] == 1
    assert counts["not-rebuilt-cleared"] == 1
    assert counts["redriven-cleared"] == 0
    assert taken(ctx) == []
