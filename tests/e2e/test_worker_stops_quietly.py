"""A clean SIGTERM of a real ``omvant worker`` on RabbitMQ, after a little work, logs no
tracebacks: when it stops, dramatiq closes every thread's pika connection from the stopping
thread, and the idle ones (a worker thread's publishing connection, the main thread's) have been
closed by RabbitMQ for missed heartbeats by then; pika reports each at ERROR with a traceback
unless the product keeps pika quiet. A two-second heartbeat makes those connections stale in
seconds instead of minutes."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.harness import assert_ready, push_cases, running_workers, wait_until, worker_env_in
from workers.store.engine import make_engine
from workers.store.schema import cases

pytestmark = pytest.mark.e2e

HEARTBEAT_SECONDS = 2
_PIKA_ERROR = re.compile(r"^.*\bpika\b.*\bERROR\b|^\s*ERROR\b.*\bpika\b", re.MULTILINE)


def test_sigterm_after_work_exits_cleanly_without_tracebacks(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env_in(
        tmp_path,
        f"{rabbitmq_url}?heartbeat={HEARTBEAT_SECONDS}",
        postgres_url,
        queue_prefix,
        OMVANT_LOG_LEVEL="INFO",
    )
    keys = [f"stop-{queue_prefix}{i}" for i in range(3)]
    with running_workers(env, tmp_path / "logs", threads=2) as worker:
        assert_ready(worker)
        push_cases(env, tmp_path / "cases.jsonl", keys)
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
    assert "worker.stopped" in output, output[-2000:]


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def _stop(pid: int, signum: signal.Signals, how: str) -> None:
    if how == "main":  # as systemd or Kubernetes: the process omvant worker became
        os.kill(pid, signum)
    elif how == "group":  # as a terminal's Ctrl-C, or a process manager signalling the group
        os.killpg(pid, signum)
    else:  # the group's two copies a worker process gets, made to arrive apart (no coalescing)
        for child in _children(pid):
            os.kill(child, signum)
        time.sleep(0.2)
        os.kill(pid, signum)  # dramatiq's main process forwards it: the second copy


@pytest.mark.parametrize(
    ("signum", "how"),
    [
        (signal.SIGTERM, "main"),
        (signal.SIGTERM, "group"),
        (signal.SIGTERM, "group-copies-apart"),
        (signal.SIGINT, "main"),
        (signal.SIGINT, "group"),
    ],
    ids=lambda v: v.name.lower() if isinstance(v, signal.Signals) else v,
)
def test_a_stop_exits_0_whether_the_signal_reaches_the_main_process_or_the_whole_group(
    redis_url: str,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
    signum: signal.Signals,
    how: str,
) -> None:
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix, OMVANT_LOG_LEVEL="INFO")
    with running_workers(env, tmp_path / "logs", ["composition"], processes=2, threads=1) as worker:
        assert_ready(worker)
        _stop(worker.process.pid, signum, how)
        returncode = worker.process.wait(timeout=60)
        output = worker.output()
    assert returncode == 0, output[-3000:]
    assert "Killing worker process" not in output, output[-3000:]
    assert output.count("worker.stopped") == 2, output[-3000:]
