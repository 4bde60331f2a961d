"""``omvant sweep`` re-drives a case stalled at ``received``, ``validated`` or ``composed``
through the deployment's broker, on PostgreSQL: the message it puts on the real broker, run
by the stages, ends the case notified once; a second sweep puts nothing there."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from producers.cli import app
from tests.reachable import reachable_residents
from tests.redrive_support import lose_at, notified_once, run, stage_context
from tests.redrive_support import request as send_case
from workers.actors import declare_actors
from workers.bootstrap import Context
from workers.broker import build_broker
from workers.queues import queue_name
from workers.routes import ROUTES
from workers.store.schema import cases

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key().decode()
FIRST_QUEUE = {
    "received": "SendCase",
    "validated": "RecipientValidated",
    "composed": "MessageComposed",
}


@pytest.fixture
def ctx(postgres_url: str, tmp_path: Path) -> Iterator[Context]:
    yield from stage_context(postgres_url, tmp_path, answer_key=KEY)


def sweep(url: str, database: str, prefix: str) -> dict[str, int]:
    result = CliRunner().invoke(
        app,
        ["sweep", "--json", "--database", database],
        env={"OMVANT_BROKER_URL": url, "OMVANT_QUEUE_PREFIX": prefix, "OMVANT_ANSWER_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    counts: dict[str, int] = json.loads(result.output.strip().splitlines()[-1])
    return counts


def drain(ctx: Context, url: str, queue: str, prefix: str) -> list[dict[str, Any]]:
    """Every envelope on a real broker's queue, taken off it (the stages run by hand)."""
    broker = build_broker(url)
    declare_actors(broker, lambda: ctx, prefix=prefix)
    envelopes = []
    try:
        consumer = broker.consume(queue, prefetch=10, timeout=1500)
        for message in consumer:
            if message is None:
                break
            envelopes.append(message.args[0])
            consumer.ack(message)
        consumer.close()
    finally:
        broker.close()
    return envelopes


@pytest.mark.parametrize("state", ["received", "validated", "composed"])
@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_the_sweep_command_redrives_a_stalled_case_through_the_real_broker_and_postgres(
    kind: str,
    state: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    ctx: Context,
    postgres_url: str,
    queue_prefix: str,
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    [resident] = reachable_residents(1, ctx.settings.seed)
    sent = send_case(ctx, f"stalled-{uuid.uuid4().hex[:8]}", resident, with_file=True)
    case_id = lose_at(ctx, monkeypatch, sent, state)
    with ctx.engine.begin() as conn:  # the other tests' cases in this database moved just now
        conn.execute(sa.update(cases).values(updated_at=dt.datetime.now(dt.UTC)))
        conn.execute(
            sa.update(cases)
            .where(cases.c.id == case_id)
            .values(updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        )
    counts = sweep(url, postgres_url, queue_prefix)
    assert counts[f"redriven-{state}"] == 1
    queue, _actor = ROUTES[FIRST_QUEUE[state]].lane("normal")
    envelopes = drain(ctx, url, queue_name(queue, queue_prefix), queue_prefix)
    assert [e["case_ids"] for e in envelopes] == [[case_id]]
    for envelope in envelopes:
        run(ctx, envelope)
    notified_once(ctx, case_id)
    assert not sweep(url, postgres_url, queue_prefix).get(f"redriven-{state}")
    assert drain(ctx, url, queue_name(queue, queue_prefix), queue_prefix) == []
