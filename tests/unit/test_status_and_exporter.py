"""``omvant status`` and ``omvant exporter`` read the same figures: failures by reason, lanes,
dispatches in flight, stuck cases (not those of a paused dispatch), notifications and latency."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from producers.cli import app
from producers.demo import InProcessPipeline, start_pipeline
from tests import oncall_scenario as sc
from tests.databases import migrated_engine
from workers import status
from workers.exporter import LatencyTracker, OmvantCollector, build_registry
from workers.queues import all_queues
from workers.settings import Settings
from workers.store import batches as batch_store
from workers.store.cases import utcnow
from workers.store.schema import cases


@pytest.fixture
def played(tmp_path: Path) -> Iterator[tuple[InProcessPipeline, sc.Scenario]]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/o.db",
        blob_dir=tmp_path / "blobs",
        max_retries=1,
        outage_retry_seconds=0,  # outages count against max_retries: dead-lettered after them
    )
    running = start_pipeline(settings, threads=4)
    scenario, directory = sc.build(seed=31)
    sc.run_failures(running, scenario, directory)
    yield running, scenario
    running.stop()


def _age(engine: sa.Engine, case_id: str, state: str, hours: float, batch: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            cases.update()
            .where(cases.c.id == case_id)
            .values(
                state=state,
                batch_id=batch,
                updated_at=utcnow() - dt.timedelta(hours=hours),
            )
        )


def test_status_shows_failures_lanes_batches_and_stuck_cases(
    played: tuple[InProcessPipeline, sc.Scenario],
) -> None:
    pipeline, scenario = played
    engine = pipeline.ctx.engine
    rows = sc.case_rows(engine, scenario.batch)
    good = [rows[r.idempotency_key].id for r in scenario.good]
    with engine.begin() as conn:
        batch_store.create(
            conn, batch_id="held", name="paused one", clinic_hsa_id=sc.CLINIC,
            sender_hsa_id=sc.SENDER, template_id=sc.TEMPLATE, total=5,
        )  # fmt: skip
        batch_store.set_status(conn, "held", batch_store.BatchStatus.PAUSED)
    _age(engine, good[0], "validated", 2, None)  # stuck
    _age(engine, good[1], "composed", 0.01, None)  # not yet
    _age(engine, good[2], "validated", 2, "held")  # waits on purpose: its dispatch is paused

    found = status.snapshot(pipeline.ctx.broker, engine)
    stuck = found["stuck"]["cases"]
    assert stuck["validated"] == 1
    assert sum(stuck.values()) == 1  # not the recent one, not the paused dispatch's
    assert {"received", "validated", "composed", "cleared"} <= set(stuck)
    assert len(found["queues"]) == len(all_queues())
    assert found["dead_letters"]["total"] == 4
    assert {g["reason"] for g in found["dead_letters"]["groups"]} == {
        "outage", "technical-failure", "template-unknown",
    }  # fmt: skip
    assert sum(q["dead_letters"] for q in found["queues"]) == 2
    assert [(b["id"], b["status"], b["in_flight"]) for b in found["batches"]] == [
        ("held", "paused", 5)
    ]

    registry = build_registry(pipeline.ctx.broker, engine, "")
    value = registry.get_sample_value
    assert value("omvant_cases_stuck", {"state": "validated"}) == 1
    assert value("omvant_batches_in_flight") == 1
    assert value("omvant_batch_cases_in_flight", {"batch": "held", "status": "paused"}) == 5
    pending = {
        s.labels["reason"]: s.value
        for family in registry.collect()
        if family.name == "omvant_failures_pending"
        for s in family.samples
    }
    assert pending == {"outage": 1, "technical-failure": 1, "template-unknown": 2}
    assert value("omvant_exporter_up") == 1
    sent = sum(
        s.value
        for family in registry.collect()
        if family.name == "omvant_notifications"
        for s in family.samples
        if s.labels["outcome"] == "sent"
    )
    assert sent >= len(scenario.good)


def test_the_latency_histogram_counts_each_notified_case_once(
    played: tuple[InProcessPipeline, sc.Scenario],
) -> None:
    pipeline, scenario = played
    engine = pipeline.ctx.engine
    tracker = LatencyTracker(since=utcnow() - dt.timedelta(hours=1))
    with engine.connect() as conn:
        first = tracker.observe_new(conn)
        again = tracker.observe_new(conn)
    notified = sc.settled_count(engine, scenario.batch, ("notified",))
    assert first == notified > 0
    assert again == 0
    late = LatencyTracker()  # started now: earlier cases are not its own
    with engine.connect() as conn:
        assert late.observe_new(conn) == 0


def test_one_scrape_counts_every_case_notified_before_it_began(
    played: tuple[InProcessPipeline, sc.Scenario],
) -> None:
    pipeline, scenario = played
    engine = pipeline.ctx.engine
    registry = CollectorRegistry()
    tracker = LatencyTracker(since=utcnow() - dt.timedelta(hours=1))
    registry.register(OmvantCollector(pipeline.ctx.broker, engine, "", tracker))
    notified = sc.settled_count(engine, scenario.batch, ("notified",))
    assert registry.get_sample_value("omvant_case_latency_seconds_count") == notified > 0


def test_omvant_status_prints_a_screen_and_json(
    played: tuple[InProcessPipeline, sc.Scenario],
) -> None:
    pipeline, _ = played
    database = pipeline.ctx.settings.database_url
    result = CliRunner().invoke(app, ["status", "--json", "--database", database])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert found["dead_letters"]["total"] == 4
    screen = CliRunner().invoke(app, ["status", "--database", database])
    assert screen.exit_code == 0, screen.output
    assert "failures pending: 4" in screen.stdout
    assert "recipient-validation" in screen.stdout


def test_a_broker_gone_while_the_exporter_serves_is_exporter_up_0_and_healthz_503(
    tmp_path: Path,
) -> None:
    from tests.ports import refusing_port
    from workers.broker import build_broker
    from workers.exporter import application

    url = f"sqlite:///{tmp_path}/o.db"
    engine = migrated_engine(url)
    with refusing_port() as port:
        gone = build_broker(f"redis://127.0.0.1:{port}/0")
        registry = build_registry(gone, engine, "")
        assert registry.get_sample_value("omvant_exporter_up") == 0
        said: list[str] = []
        body = application(registry)({"PATH_INFO": "/healthz"}, lambda s, _h: said.append(s))
    assert said == ["503 Service Unavailable"]
    assert json.loads(b"".join(body)) == {"status": "down"}
    engine.dispose()
