"""A clean SIGTERM of a real ``omvant worker`` on RabbitMQ, after a little work, logs no
tracebacks: when it stops, dramatiq closes every thread's pika connection from the stopping
thread, and the idle ones (a worker thread's publishing connection, the main thread's) have been
closed by RabbitMQ for missed heartbeats by then; pika reports each at ERROR with a traceback
unless the product keeps pika quiet. A two-second heartbeat makes those connections stale in
seconds instead of minutes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.harness import OMVANT, running_workers, wait_until, worker_env
from workers.adapters import population
from workers.store.engine import make_engine
from workers.store.schema import cases

pytestmark = pytest.mark.e2e

HEARTBEAT_SECONDS = 2
_PIKA_ERROR = re.compile(r"^.*\bpika\b.*\bERROR\b|^\s*ERROR\b.*\bpika\b", re.MULTILINE)


def _push(env: dict[str, str], path: Path, keys: list[str]) -> None:
    numbers = population.test_personnummer()
    lines = [
        json.dumps(
            {
                "clinic_hsa_id": "SE2321000016-VC01",
                "sender_hsa_id": "SE2321000016-S101",
                "template_id": "meddelande-till-invanare",
                "fragments": ["halsning"],
                "personnummer": numbers[i % len(numbers)],
                "idempotency_key": key,
            }
        )
        for i, key in enumerate(keys)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pushed = subprocess.run(
        [OMVANT, "push", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr


def test_sigterm_after_work_exits_cleanly_without_tracebacks(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env(
        broker_url=f"{rabbitmq_url}?heartbeat={HEARTBEAT_SECONDS}",
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        extra={"OMVANT_LOG_LEVEL": "INFO"},
    )
    keys = [f"stop-{queue_prefix}{i}" for i in range(3)]
    with running_workers(env, tmp_path / "logs", threads=2) as worker:
        assert wait_until(lambda: "ready for action" in worker.output(), timeout=90), (
            worker.output()[-2000:]
        )
        _push(env, tmp_path / "cases.jsonl", keys)
        engine = make_engine(postgres_url)

        def settled() -> bool:
            with engine.connect() as conn:
                states = conn.execute(
                    sa.select(cases.c.state).where(cases.c.idempotency_key.in_(keys))
                ).scalars()
                done = [s for s in states if s in ("notified", "delivered", "rejected", "failed")]
            return len(done) == len(keys)

        assert wait_until(settled, timeout=90), worker.output()[-3000:]
        engine.dispose()
        time.sleep(5 * HEARTBEAT_SECONDS)  # idle connections: closed by RabbitMQ meanwhile
        assert worker.alive(), worker.output()[-3000:]
        # as systemd or Kubernetes stop it: SIGTERM to the process omvant worker became
        os.kill(worker.process.pid, signal.SIGTERM)
        returncode = worker.process.wait(timeout=60)
        output = worker.output()
    assert returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-4000:]
    assert not _PIKA_ERROR.search(output), _PIKA_ERROR.findall(output)[:5]
    assert "Shutting down" in output or "stopped" in output.lower(), output[-2000:]
