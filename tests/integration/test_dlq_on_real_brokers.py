"""Done when (issue 12), on RabbitMQ and on Redis with PostgreSQL: an outage, a poison case and
an unknown template each leave a failure record with the right reason; ``omvant dlq list``
groups them; after the fix, ``omvant dlq replay --reason ...`` puts them through exactly once;
the audit shows it; the broker's ``.XQ`` copies of replayed messages are gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.cli import app
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from tests import oncall_scenario as sc
from workers.broker import build_broker
from workers.dead_letters import xq_depth
from workers.queues import Queues, lane_queue, lanes_of, queue_name
from workers.settings import Settings
from workers.store.cases import utcnow
from workers.store.engine import upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def pipeline(
    broker_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> Iterator[InProcessPipeline]:
    upgrade(postgres_url)
    settings = Settings(
        broker_url=broker_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        max_retries=1,
        outage_retry_seconds=0,  # outages count against max_retries: dead-lettered after them
        template_cache_seconds=0.1,
    )
    running = start_pipeline(settings, threads=4)
    yield running
    running.stop()


def dlq(
    pipeline: InProcessPipeline, *args: str, user: str = "SE2321000016-OC01"
) -> dict[str, object]:
    return run(pipeline, "dlq", *args, user=user)


def run(
    pipeline: InProcessPipeline, *args: str, user: str = "SE2321000016-OC01"
) -> dict[str, object]:
    settings = pipeline.ctx.settings
    result = CliRunner().invoke(
        app,
        [*args, "--json", "--database", settings.database_url],
        env={"OMVANT_QUEUE_PREFIX": settings.queue_prefix, "OMVANT_USER_HSA_ID": user,
             "OMVANT_BROKER_URL": settings.broker_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # the in-process workers log while the command runs; its JSON starts on a line of its own
    return dict(json.loads(result.stdout[result.stdout.index("{\n") :]))


def dead_letters_on_broker(pipeline: InProcessPipeline) -> int:
    broker = build_broker(pipeline.ctx.settings.broker_url)
    try:
        queue = Queues.RECIPIENT_VALIDATION
        prefix = pipeline.ctx.settings.queue_prefix
        return sum(
            xq_depth(broker, queue_name(lane_queue(queue, lane), prefix))
            for lane in lanes_of(queue)
        )
    finally:
        broker.close()


def test_dlq_list_groups_failures_and_replay_by_reason_puts_them_through_once(
    pipeline: InProcessPipeline,
) -> None:
    # the session's database is shared with other tests: look at this test's failures only
    since = utcnow().isoformat()
    scenario, directory = sc.build(seed=4711)
    engine = pipeline.ctx.engine
    sc.run_failures(pipeline, scenario, directory)

    listed = dlq(pipeline, "list", "--since", since)
    groups = {(str(g["queue"]).split(".")[0], g["reason"]): g for g in listed["groups"]}  # type: ignore[attr-defined]
    assert groups[("recipient-validation", "outage")]["cases"] == 3, listed
    assert groups[("recipient-validation", "technical-failure")]["count"] == 1
    assert groups[("message-composition", "template-unknown")]["count"] == 2
    assert listed["total"] == 4
    assert dead_letters_on_broker(pipeline) == 2
    status = run(pipeline, "status")
    lanes = [q for q in status["queues"] if q["queue"] == "recipient-validation"]  # type: ignore[attr-defined]
    assert sum(q["dead_letters"] for q in lanes) == 2
    assert status["broker"] == pipeline.ctx.settings.broker_url.split(":")[0].replace(
        "amqp", "rabbitmq"
    )
    reasons = {g["reason"] for g in status["dead_letters"]["groups"]}  # type: ignore[index]
    assert {"outage", "technical-failure", "template-unknown"} <= reasons

    dry = dlq(pipeline, "replay", "--reason", "outage", "--since", since, "--dry-run")
    assert dry["totals"] == {"would-replay": 1}
    assert dlq(pipeline, "list", "--reason", "outage", "--since", since)["total"] == 1

    sc.create_template(engine, scenario.new_template)
    replayed = dlq(
        pipeline, "replay", "--reason", "template-unknown", "--since", since, "--rate", "20/s"
    )
    assert replayed["totals"] == {"replayed": 2}
    replayed = dlq(pipeline, "replay", "--reason", "outage", "--since", since)
    assert replayed["totals"] == {"replayed": 1}
    assert replayed["cases"] == 3
    assert replayed["dead_letter_copies_removed"] == 1

    fixed = [*scenario.outage, *scenario.unknown_template, *scenario.good]
    done = ("notified", "delivered")
    assert wait_for(lambda: sc.settled_count(engine, scenario.batch, done), 8, timeout=90) == 8
    rows = sc.case_rows(engine, scenario.batch)
    assert rows[scenario.poison.idempotency_key].state == "failed"
    assert rows[scenario.poison.idempotency_key].reason == "technical-failure"
    sent = sc.notifications_per_case(engine, [rows[r.idempotency_key].id for r in fixed])
    assert {case for case, _ in sent} == {rows[r.idempotency_key].id for r in fixed}
    assert set(sent.values()) == {1}, sent

    # safe to run twice: nothing is sent again
    assert dlq(pipeline, "replay", "--reason", "outage", "--since", since)["records"] == 0
    assert dead_letters_on_broker(pipeline) == 1  # the poison case's copy only
    left = dlq(pipeline, "list", "--since", since)
    assert [(g["reason"], g["count"]) for g in left["groups"]] == [("technical-failure", 1)]  # type: ignore[attr-defined]

    audit = dlq(pipeline, "audit", "--limit", "4")["entries"]
    replays = [e for e in audit if e["action"] == "replay" and not e["dry_run"]]  # type: ignore[attr-defined]
    assert [(e["who"], e["selection"]["reason"], e["outcome"]["totals"]) for e in replays] == [
        ("SE2321000016-OC01", "outage", {}),
        ("SE2321000016-OC01", "outage", {"replayed": 1}),
        ("SE2321000016-OC01", "template-unknown", {"replayed": 2}),
    ]
