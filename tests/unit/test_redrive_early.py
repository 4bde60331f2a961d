"""A case whose stage message was lost at ``received``, ``validated`` or ``composed`` is sent
on by the sweep, from the record (``workers/redrive_early.py``), and ends notified once: one
inbox message, one notification per channel. A second sweep sends nothing; a case moving
normally is not touched; a case made before its request was kept is counted, not sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.reachable import reachable_residents
from tests.redrive_support import NOW, lose_at, notified_once, request, stage_context, taken
from tests.redrive_support import run as run_stage
from workers import sweep
from workers.bootstrap import Context
from workers.store.schema import case_bodies, cases


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    yield from stage_context(sqlite_url, tmp_path)


def later(ctx: Context, stalled: str) -> None:
    """An hour on: ``stalled`` has not moved since; every other case moved just now."""
    ctx.now = lambda: NOW + dt.timedelta(hours=1)
    with ctx.engine.begin() as conn:
        conn.execute(sa.update(cases).values(updated_at=NOW + dt.timedelta(hours=1)))
        conn.execute(sa.update(cases).where(cases.c.id == stalled).values(updated_at=NOW))


@pytest.mark.parametrize(
    ("state", "with_file"),
    [
        ("received", False),
        ("received", True),
        ("validated", False),
        ("validated", True),
        ("composed", True),  # a case without attachments is cleared by composition itself
    ],
)
def test_a_case_whose_stage_message_was_lost_ends_notified_once_by_the_sweep(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, state: str, with_file: bool
) -> None:
    residents = reachable_residents(2, ctx.settings.seed)
    lost = request(ctx, "lost", residents[0], with_file=with_file)
    moving = request(ctx, "moving", residents[1], with_file=with_file)
    case_id = lose_at(ctx, monkeypatch, lost, state)
    moving_id = lose_at(ctx, monkeypatch, moving, state)  # at the same state, but just now
    later(ctx, case_id)
    counts = sweep.run(ctx)
    assert counts[f"stalled-{state}"] == 1
    assert counts[f"redriven-{state}"] == 1
    again = taken(ctx)
    assert [e["case_ids"] for e in again] == [[case_id]]  # the moving case is not touched
    for envelope in again:
        run_stage(ctx, envelope)
    notified_once(ctx, case_id)
    second = sweep.run(ctx)
    assert not any(v for k, v in second.items() if k.startswith(("redriven-", "stalled-")))
    assert taken(ctx) == []
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(cases.c.state).where(cases.c.id == moving_id)).scalar() == (
            state
        )


@pytest.mark.parametrize("state", ["received", "validated"])
def test_a_stalled_case_made_before_its_request_was_kept_is_counted_not_sent(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    [resident] = reachable_residents(1, ctx.settings.seed)
    case_id = lose_at(ctx, monkeypatch, request(ctx, "old", resident, with_file=False), state)
    with ctx.engine.begin() as conn:  # written before migration 0017
        conn.execute(sa.delete(case_bodies).where(case_bodies.c.part == "request"))
    later(ctx, case_id)
    counts: Any = sweep.run(ctx)
    assert counts[f"stalled-{state}"] == 1
    assert counts[f"no-request-{state}"] == 1
    assert counts[f"redriven-{state}"] == 0
    assert taken(ctx) == []


def test_the_request_is_kept_sealed(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    [resident] = reachable_residents(1, ctx.settings.seed)
    lose_at(ctx, monkeypatch, request(ctx, "sealed", resident, with_file=False), "validated")
    with ctx.engine.connect() as conn:
        [kept] = (
            conn.execute(sa.select(case_bodies.c.sealed).where(case_bodies.c.part == "request"))
            .scalars()
            .all()
        )
    assert kept and resident not in kept and "halsning" not in kept
