"""``omvant exporter``: what the broker and the system of record know, for Prometheus.

One exporter per deployment (not one per worker, which would count every queue several times).
At each scrape it reads:

- queue depth per queue and lane (ready, delayed, dead letters) and consumers
  (``workers/queue_depth.py``, RabbitMQ and Redis);
- pending failure records per queue and reason, and the oldest failure's age
  (``workers/failures.py``);
- dispatches (batches) in flight, with each one's settled and in-flight cases;
- cases stuck longer than their limit (``workers/stuck.py``);
- notifications per channel and outcome from the notification ledger (the exactly-once
  record: a retried send is not counted twice), as counters;
- the end-to-end latency of each case notified since the last scrape (received to notified), as
  a histogram kept by this process.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import make_server

import dramatiq
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from workers import queue_depth, stuck
from workers.log import get_logger
from workers.routes import ROUTES
from workers.store import batches as batch_store
from workers.store import failures as failure_store
from workers.store.cases import utcnow
from workers.store.failures import Selection
from workers.store.schema import cases, notification_ledger
from workers.store.sql import aware_utc

log = get_logger(__name__)

LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
FINAL_NOTIFICATION_STATUSES = frozenset({"sent", "refused", "unconfirmed"})
"""Ledger statuses a row never leaves: their counts only grow (Prometheus counters)."""
OVERLAP = dt.timedelta(seconds=60)
"""How far back each scrape looks again for notified cases (transactions commit out of order)."""


class LatencyTracker:
    """Observes each newly notified case's received-to-notified time once."""

    def __init__(self, since: dt.datetime | None = None) -> None:
        self.histogram = Histogram(
            "omvant_case_latency_seconds",
            "Received to notified, per case notified since the exporter started.",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        """Not registered on its own: the collector reads the database, then yields it, so one
        scrape counts every case notified before it began."""
        self.floor = since or utcnow()
        """Cases notified before the exporter started are not observed."""
        self.watermark = self.floor
        self.recent: dict[str, dt.datetime] = {}

    def observe_new(self, conn: sa.Connection) -> int:
        """Observe the cases notified since the last call; returns how many."""
        rows = conn.execute(
            sa.select(cases.c.id, cases.c.received_at, cases.c.notified_at)
            .where(
                cases.c.notified_at.is_not(None),
                cases.c.notified_at > max(self.floor, self.watermark - OVERLAP),
            )
            .order_by(cases.c.notified_at)
            .limit(200_000)
        ).all()
        seen = 0
        for row in rows:
            if row.id in self.recent:
                continue
            notified = aware_utc(row.notified_at)
            self.recent[row.id] = notified
            self.histogram.observe(
                max(0.0, (notified - aware_utc(row.received_at)).total_seconds())
            )
            self.watermark = max(self.watermark, notified)
            seen += 1
        horizon = self.watermark - OVERLAP * 2
        self.recent = {k: v for k, v in self.recent.items() if v >= horizon}
        return seen


class OmvantCollector:
    """A Prometheus collector reading the broker and the database at each scrape."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        engine: sa.Engine,
        prefix: str,
        latency: LatencyTracker,
        stuck_limits: dict[str, float] | None = None,
    ) -> None:
        self.stuck_limits = stuck_limits or stuck.limits()
        self.broker = broker
        self.engine = engine
        self.prefix = prefix
        self.latency = latency
        self.lock = threading.Lock()
        self.up = 1

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now; a broker or database that cannot be read gives
        ``omvant_exporter_up 0`` and no other figures for it."""
        with self.lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        now = utcnow()
        up = GaugeMetricFamily("omvant_exporter_up", "1 if the broker and database were read.")
        ok = True
        try:
            yield from _queue_metrics(queue_depth.snapshot(self.broker, self.prefix))
        except Exception as exc:  # noqa: BLE001 - a scrape must say the broker failed, not die
            log.warning("exporter could not read the broker", error=type(exc).__name__)
            ok = False
        try:
            with self.engine.connect() as conn:
                self.latency.observe_new(conn)
                yield from _database_metrics(conn, now, self.prefix, self.stuck_limits)
        except Exception as exc:  # noqa: BLE001 - likewise for the database
            log.warning("exporter could not read the database", error=type(exc).__name__)
            ok = False
        yield from self.latency.histogram.collect()
        up.add_metric([], 1.0 if ok else 0.0)
        yield up


STAGE_OF_QUEUE = {str(route.queue): route.stage for route in ROUTES.values()}
"""Queue -> the stage consuming it, so queue depth and the workers' throughput can be compared."""


def _queue_metrics(lanes: Iterable[queue_depth.LaneDepth]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "omvant_queue_depth", "Messages ready on a queue's lane.", labels=["queue", "lane", "stage"]
    )
    delayed = GaugeMetricFamily(
        "omvant_queue_delayed",
        "Messages waiting for a retry or a paused dispatch (the lane's delay queue).",
        labels=["queue", "lane", "stage"],
    )
    dead = GaugeMetricFamily(
        "omvant_dead_letter_queue_depth",
        "Messages in the broker's dead-letter queue of a lane (.XQ; expires after 7 days).",
        labels=["queue", "lane", "stage"],
    )
    consumers = GaugeMetricFamily(
        "omvant_queue_consumers",
        "Consumers of a lane (RabbitMQ only).",
        labels=["queue", "lane", "stage"],
    )
    for lane in lanes:
        labels = [lane.queue, lane.lane, STAGE_OF_QUEUE.get(lane.queue, lane.queue)]
        depth.add_metric(labels, lane.ready)
        delayed.add_metric(labels, lane.delayed)
        dead.add_metric(labels, lane.dead_letters)
        if lane.consumers is not None:
            consumers.add_metric(labels, lane.consumers)
    yield from (depth, delayed, dead, consumers)


def _database_metrics(
    conn: sa.Connection, now: dt.datetime, prefix: str, stuck_limits: dict[str, float]
) -> Iterator[Metric]:
    pending = GaugeMetricFamily(
        "omvant_failures_pending",
        "Failure records waiting for on-call (omvant dlq list), by queue, reason and kind.",
        labels=["queue", "reason", "kind"],
    )
    oldest = GaugeMetricFamily(
        "omvant_failure_oldest_age_seconds",
        "Age of the oldest pending failure record, per queue.",
        labels=["queue"],
    )
    for group in failure_store.groups(conn, Selection(prefix=prefix)):
        pending.add_metric([group["queue"], group["reason"], group["kind"]], group["count"])
    for queue, when in failure_store.oldest_pending(conn, prefix).items():
        oldest.add_metric([queue], max(0.0, (now - when).total_seconds()))
    yield pending
    yield oldest
    yield from _batch_metrics(conn)
    stuck_cases = GaugeMetricFamily(
        "omvant_cases_stuck",
        "Cases not moved for longer than their state's limit (paused dispatches excluded).",
        labels=["state"],
    )
    for state, count in stuck.count_stuck(conn, now, stuck_limits).items():
        stuck_cases.add_metric([state], count)
    yield stuck_cases
    outcomes = CounterMetricFamily(
        "omvant_notifications",
        "Notifications that reached an outcome (sent, refused, unconfirmed), by channel, from "
        "the notification ledger.",
        labels=["channel", "outcome"],
    )
    waiting = GaugeMetricFamily(
        "omvant_notifications_waiting",
        "Notifications not settled yet (pending, retry, queued), by channel and status.",
        labels=["channel", "status"],
    )
    rows = conn.execute(
        sa.select(
            notification_ledger.c.channel, notification_ledger.c.status, sa.func.count()
        ).group_by(notification_ledger.c.channel, notification_ledger.c.status)
    )
    for channel, status, count in rows:
        if status in FINAL_NOTIFICATION_STATUSES:
            outcomes.add_metric([channel, status], int(count))
        else:
            waiting.add_metric([channel, status], int(count))
    yield outcomes
    yield waiting


def _batch_metrics(conn: sa.Connection) -> Iterator[Metric]:
    in_flight = GaugeMetricFamily("omvant_batches_in_flight", "Dispatches not finished yet.")
    cases_in_flight = GaugeMetricFamily(
        "omvant_batch_cases_in_flight",
        "A dispatch's cases not settled yet.",
        labels=["batch", "status"],
    )
    settled = CounterMetricFamily(
        "omvant_batch_cases_settled", "A dispatch's settled cases.", labels=["batch", "status"]
    )
    count = 0
    for batch in batch_store.list_all(conn, limit=200):
        if batch.status == batch_store.BatchStatus.CANCELLED:
            continue
        progress = batch_store.progress(conn, batch)
        if progress["finished"]:
            continue
        count += 1
        labels = [batch.id, batch.status.value]
        cases_in_flight.add_metric(labels, max(0, progress["in_flight"]))
        settled.add_metric(labels, progress["settled"])
    in_flight.add_metric([], count)
    yield from (in_flight, cases_in_flight, settled)


def build_registry(
    broker: dramatiq.Broker,
    engine: sa.Engine,
    prefix: str,
    sweep_limits: Mapping[str, float] | None = None,
) -> CollectorRegistry:
    """A registry holding the exporter's collector and its latency histogram
    (``sweep_limits``: the settings' own, for what counts as stuck)."""
    registry = CollectorRegistry()
    limits = stuck.limits(sweep_limits)
    registry.register(OmvantCollector(broker, engine, prefix, LatencyTracker(), limits))
    return registry


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def application(
    registry: CollectorRegistry,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """``/metrics`` and ``/healthz`` (200 when the last scrape could read everything)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            up = registry.get_sample_value("omvant_exporter_up") == 1.0
            start_response(
                "200 OK" if up else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps({"status": "ok" if up else "down"}).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]

    return app


def serve(registry: CollectorRegistry, host: str, port: int) -> Any:
    """A WSGI server for the exporter (call ``serve_forever`` on it)."""
    return make_server(host, port, application(registry), ThreadingWSGIServer)
