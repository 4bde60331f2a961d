"""What each worker process counts, for Prometheus (prometheus-client).

``omvant worker`` forks dramatiq processes; each counts into files under
``PROMETHEUS_MULTIPROC_DIR`` (which ``omvant worker`` creates fresh before it starts them), and
one small server forked from dramatiq's main process (``workers/metrics_server.py``) adds them
up at ``/metrics``. In one process (the demo, the tests) the same metrics live in memory.

Labels: ``stage`` as ``omvant worker STAGE`` names it, ``lane`` (normal, urgent, bulk-N),
``reason`` a stable reason code. What the database knows better than any one process (queue
depths, failures, notifications per channel and outcome, case latency) is exported by
``omvant exporter`` (``workers/exporter.py``).
"""

from __future__ import annotations

import os
import threading
import time
from contextvars import ContextVar
from pathlib import Path

import dramatiq
from dramatiq.broker import MessageProxy
from prometheus_client import Counter, Gauge, Histogram

from workers.after_message import AfterMessage
from workers.queues import NORMAL
from workers.routes import ROUTES

_folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _folder:  # prometheus-client writes there as soon as a metric exists
    Path(_folder).mkdir(parents=True, exist_ok=True)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

MESSAGES_PROCESSED = Counter(
    "omvant_messages_processed",
    "Messages a stage finished without an error.",
    ["stage", "lane"],
)
MESSAGES_RETRIED = Counter(
    "omvant_messages_retried",
    "Messages that raised and were put back for a retry.",
    ["stage", "lane"],
)
MESSAGES_FAILED = Counter(
    "omvant_messages_failed",
    "Messages dead-lettered after their retries (reason: outage or technical-failure).",
    ["stage", "lane", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "omvant_message_processing_seconds",
    "Time a stage spent on one message (a chunk of cases), errors included.",
    ["stage", "lane"],
    buckets=BUCKETS,
)
CASES_PROCESSED = Counter(
    "omvant_cases_processed",
    "Cases in the messages a stage finished.",
    ["stage", "lane"],
)
CASES_REJECTED = Counter(
    "omvant_cases_rejected",
    "Cases a stage rejected, by reason code.",
    ["stage", "lane", "reason"],
)
CASES_FAILED = Counter(
    "omvant_cases_failed",
    "Cases whose message was dead-lettered, by reason code.",
    ["stage", "lane", "reason"],
)
HEARTBEAT = Gauge(
    "omvant_worker_heartbeat_timestamp_seconds",
    "When a worker process of this omvant worker last said it lives (the newest of them).",
    multiprocess_mode="max",
)
HEARTBEAT_SECONDS = 5.0

_STAGE_OF_ACTOR: dict[str, str] = {
    **{route.actor_name: route.stage for route in ROUTES.values()},
    **{route.urgent_actor_name: route.stage for route in ROUTES.values()},
}

_lane: ContextVar[tuple[str, str] | None] = ContextVar("omvant_stage_lane", default=None)


def stage_and_lane(actor_name: str, queue_name: str) -> tuple[str, str]:
    """The stage an actor belongs to and the lane its queue is (from the queue's suffix, so
    that the queue prefix does not matter)."""
    stage = _STAGE_OF_ACTOR.get(actor_name, actor_name)
    route = next((r for r in ROUTES.values() if r.stage == stage), None)
    suffix = queue_name.rsplit(".", 1)[-1]
    lane = suffix if route is not None and suffix in route.lanes() else NORMAL
    return stage, lane


def current_lane() -> str:
    """The lane of the message this thread is working on (normal outside a message)."""
    found = _lane.get()
    return found[1] if found else NORMAL


def count_rejections(stage: str, reasons: list[str]) -> None:
    """Count the cases a stage rejected now, on the lane of the message it works on."""
    lane = current_lane()
    for reason in reasons:
        CASES_REJECTED.labels(stage, lane, reason).inc()


def count_dead_letter(message: MessageProxy, reason: str, cases: int) -> None:
    """Count one dead-lettered message and its cases."""
    stage, lane = stage_and_lane(message.actor_name, message.queue_name)
    MESSAGES_FAILED.labels(stage, lane, reason).inc()
    CASES_FAILED.labels(stage, lane, reason).inc(cases)


def _payload_size(message: MessageProxy) -> int:
    raw = message.args[0] if len(message.args) == 1 else None
    payload = raw.get("payload") if isinstance(raw, dict) else None
    return len(payload) if isinstance(payload, list) else 0


class StageMetrics(AfterMessage):
    """Counts messages and cases per stage and lane, and times each message.

    Placed before ``Retries`` (``build_broker``), so its "after" hook runs after Retries has
    said whether the message failed for good.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        _lane.set(stage_and_lane(message.actor_name, message.queue_name))
        self._started[message.message_id] = time.perf_counter()

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        stage, lane = stage_and_lane(message.actor_name, message.queue_name)
        started = self._started.pop(message.message_id, None)
        if started is not None:
            PROCESSING_SECONDS.labels(stage, lane).observe(time.perf_counter() - started)
        _lane.set(None)
        if exception is None:
            MESSAGES_PROCESSED.labels(stage, lane).inc()
            CASES_PROCESSED.labels(stage, lane).inc(_payload_size(message))
        elif not message.failed:
            MESSAGES_RETRIED.labels(stage, lane).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        _lane.set(None)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=_beat, name="omvant-heartbeat", daemon=True).start()


def _beat() -> None:
    """Say every few seconds that this worker process lives (``/healthz`` reads it)."""
    while True:
        HEARTBEAT.set(time.time())
        time.sleep(HEARTBEAT_SECONDS)
