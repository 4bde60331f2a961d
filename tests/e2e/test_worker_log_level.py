"""``OMVANT_LOG_LEVEL=DEBUG`` reaches a real ``omvant worker`` process (dramatiq's own logging
included), and identity numbers stay masked there too; at the default level dramatiq's own
INFO lines are quiet and Omvänt's ``worker.ready`` and ``worker.stopped`` say what they said."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.harness import assert_ready, push_cases, running_workers, wait_until, worker_env_in
from workers.adapters import population
from workers.store.engine import make_engine
from workers.store.schema import cases

pytestmark = pytest.mark.e2e


def test_debug_reaches_the_worker_and_numbers_stay_masked(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    level = "DEBUG"
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix, OMVANT_LOG_LEVEL=level)
    number = population.test_personnummer()[0]  # push_cases sends the first test resident
    with running_workers(env, tmp_path / "logs", threads=1) as worker:
        assert_ready(worker, timeout=60)
        push_cases(env, tmp_path / "cases.jsonl", [f"log-{level}"])
        engine = make_engine(postgres_url)

        def settled() -> bool:
            with engine.connect() as conn:
                state = conn.execute(
                    sa.select(cases.c.state).where(cases.c.idempotency_key == f"log-{level}")
                ).scalar()
            return state in ("notified", "delivered", "rejected", "failed")

        assert wait_until(settled, timeout=60), worker.output()[-3000:]
        engine.dispose()
        output = worker.output()
    assert "[DEBUG]" in output
    assert "Worker process is ready for action" in output  # dramatiq's own, shown at DEBUG
    digits = re.sub(r"\D", "", number)
    assert digits not in re.sub(r"[-+ ]", "", output)


DRAMATIQ_INFO_LINES = (
    "is booting up",
    "ready for action",
    "Sending signal",
    "Stopping worker process",
    "Shutting down",
    "Worker has been shut down",
)
"""What dramatiq's main and worker processes say at INFO while starting and stopping."""


def test_at_the_default_level_dramatiq_is_quiet_and_omvant_says_ready_and_stopped(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix)
    env.pop("OMVANT_LOG_LEVEL")  # the default: INFO
    with running_workers(env, tmp_path / "logs", ["composition"], processes=2, threads=1) as worker:
        assert_ready(worker)
        os.kill(worker.process.pid, signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0, worker.output()[-3000:]
        output = worker.output()
    said = [line for line in DRAMATIQ_INFO_LINES if line in output]
    assert not said, output[-3000:]
    ready = [line for line in output.splitlines() if "worker.ready" in line]
    assert len(ready) == 1, output[-3000:]  # once, when both processes consume
    assert "processes=2" in ready[0] and "composition" in ready[0], ready
    assert output.count("worker.stopped") == 2, output[-3000:]
