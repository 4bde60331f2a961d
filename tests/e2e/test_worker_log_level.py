"""``OMVANT_LOG_LEVEL=DEBUG`` reaches a real ``omvant worker`` process (dramatiq's own logging
included), and identity numbers stay masked there too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.harness import push_cases, running_workers, wait_until, worker_env
from workers.adapters import population
from workers.store.engine import make_engine
from workers.store.schema import cases

pytestmark = pytest.mark.e2e


def test_debug_reaches_the_worker_and_numbers_stay_masked(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    level = "DEBUG"
    env = worker_env(
        broker_url=redis_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        extra={"OMVANT_LOG_LEVEL": level},
    )
    number = population.test_personnummer()[0]  # push_cases sends the first test resident
    with running_workers(env, tmp_path / "logs", threads=1) as worker:
        assert wait_until(lambda: "ready for action" in worker.output(), timeout=60), (
            worker.output()[-2000:]
        )
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
    digits = re.sub(r"\D", "", number)
    assert digits not in re.sub(r"[-+ ]", "", output)
