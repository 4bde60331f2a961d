"""``omvant sweep`` sends a case stalled at ``cleared`` to inbox delivery on the deployment's
broker (not an in-process one no worker consumes)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from tests.reachable import reachable_residents
from tests.redrive_support import request as send_case
from tests.redrive_support import stage_context, until
from workers.bootstrap import Context
from workers.broker import build_broker, queue_depth
from workers.queues import queue_name
from workers.stage import emit
from workers.store.schema import cases

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    yield from stage_context(sqlite_url, tmp_path)


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_the_sweep_command_sends_a_stalled_cleared_case_on_the_real_broker(
    kind: str, request: pytest.FixtureRequest, ctx: Context, sqlite_url: str, queue_prefix: str
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    [resident] = reachable_residents(1, ctx.settings.seed)
    emit(ctx, [send_case(ctx, "stalled", resident, with_file=False)], correlation_id="c")
    until(ctx, "AttachmentsCleared")  # lost with the in-process broker
    with ctx.engine.begin() as conn:
        conn.execute(sa.update(cases).values(updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    result = CliRunner().invoke(
        app,
        ["sweep", "--json", "--database", sqlite_url],
        env={"OMVANT_BROKER_URL": url, "OMVANT_QUEUE_PREFIX": queue_prefix},
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["redriven-cleared"] == 1
    broker = build_broker(url)
    try:
        assert queue_depth(broker, queue_name("notification-dispatch", queue_prefix)) == 1
    finally:
        broker.close()
