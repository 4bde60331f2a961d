"""Done when (issue 12): a running ``omvant worker``'s ``/metrics`` shows the counters moving
during a dispatch, ``/healthz`` answers, and ``omvant exporter`` shows the queue depth falling,
the notifications sent and the cases' end-to-end latency; on RabbitMQ and on Redis."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.registry import envelope_for
from tests import oncall_scenario as sc
from tests.e2e.harness import OMVANT, running_workers, wait_until, worker_env
from tests.ports import port_said
from tests.reachable import reachable_residents
from workers.broker import build_broker
from workers.enqueue import enqueue
from workers.queues import Queues
from workers.store.engine import make_engine, upgrade

pytestmark = pytest.mark.e2e

CASES = 200
CHUNK = 5


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()
    )


EXPORTER_PORT = r"omvant exporter on http://[^:\s]+:(\d+)/metrics"
WORKER_METRICS_PORT = r"serving /metrics and /healthz\W.*?port\W+(\d+)"
"""What the exporter and a worker's metrics server say once bound to port 0 (any free port:
no port chosen beforehand for another process to take first)."""


@contextmanager
def exporter(env: dict[str, str], log: Path) -> Iterator[int]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [OMVANT, "exporter", "--port", "0", "--host", "127.0.0.1"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            port = port_said(log.read_text, EXPORTER_PORT, alive=lambda: process.poll() is None)
            assert wait_until(lambda: _answers(port), timeout=120), log.read_text()
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def test_worker_metrics_move_during_a_dispatch_and_queue_depth_falls(
    broker_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    upgrade(postgres_url)
    env = worker_env(
        broker_url=broker_url, database_url=postgres_url, queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        # each inbox delivery takes 25 ms, so inbox delivery's counters rise over a second or
        # more: seen in steps by a scrape every 0.3 s (validation alone can finish between two)
        extra={"OMVANT_CHUNK_SIZE": str(CHUNK), "OMVANT_SIM_LATENCY_MS": "25"},
    )  # fmt: skip
    batch = f"metrics-{queue_prefix.rstrip('.')}"
    requests = [sc.request(n, batch, i) for i, n in enumerate(reachable_residents(CASES, seed=3))]
    broker = build_broker(broker_url)
    try:
        for start in range(0, CASES, CHUNK):
            envelope = envelope_for(requests[start : start + CHUNK], correlation_id=batch)
            enqueue(broker, Queues.RECIPIENT_VALIDATION, "validate_recipients",
                    envelope.model_dump(mode="json"), prefix=queue_prefix)  # fmt: skip
    finally:
        broker.close()

    with exporter(env, tmp_path / "exporter.log") as exporter_port:
        before = scrape(exporter_port)
        depth = total(before, "omvant_queue_depth", queue="recipient-validation", lane="normal")
        assert depth == CASES // CHUNK
        assert total(before, "omvant_exporter_up") == 1
        env_with_port = {**env, "OMVANT_METRICS_PORT": "0",
                         "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}  # fmt: skip
        with running_workers(env_with_port, tmp_path / "logs", processes=2, threads=2) as worker:
            worker_port = port_said(worker.output, WORKER_METRICS_PORT, alive=worker.alive)
            assert wait_until(lambda: _answers(worker_port), timeout=120), worker.output()
            seen: list[float] = []
            depths: list[float] = []

            engine = make_engine(postgres_url)
            ended = ("notified", "delivered", "rejected", "failed")

            def progressed() -> bool:
                samples = scrape(worker_port)
                seen.append(
                    total(samples, "omvant_cases_processed_total", stage="notification-dispatch")
                )
                depths.append(
                    total(scrape(exporter_port), "omvant_queue_depth", queue="recipient-validation")
                )
                return sc.settled_count(engine, batch, ended) == CASES and depths[-1] == 0

            assert wait_until(progressed, timeout=120, interval=0.3), (seen, worker.output())
            states = Counter(r.state for r in sc.case_rows(engine, batch).values())
            time.sleep(1)  # the last message's counters are written just after its commit
            samples = scrape(worker_port)
            health = httpx.get(f"http://127.0.0.1:{worker_port}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        # the counters moved while the dispatch ran (rising in steps), and the queue drained
        assert any(0 < v < CASES for v in seen), seen
        assert seen == sorted(seen)
        assert depths == sorted(depths, reverse=True)
        assert depths[-1] == 0
        processed = total(samples, "omvant_messages_processed_total", stage="recipient-validation")
        assert processed == CASES // CHUNK
        assert total(samples, "omvant_cases_processed_total", stage="recipient-validation") == CASES
        assert total(samples, "omvant_message_processing_seconds_count", stage="composition") > 0
        dispatched = total(samples, "omvant_cases_processed_total", stage="notification-dispatch")
        assert dispatched == states["notified"] + states["delivered"], (dispatched, states)
        after = scrape(exporter_port)
        sent = total(after, "omvant_notifications_total", outcome="sent")
        assert sent >= CASES  # every resident has at least one channel
        assert total(after, "omvant_case_latency_seconds_count") == states["notified"]
