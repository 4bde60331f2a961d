"""``omvant inbox-events`` says ``worker.ready`` once it consumes and ``worker.stopped`` when it
has stopped, as ``omvant worker`` does, even at ``OMVANT_LOG_LEVEL=WARNING``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pika

from tests.e2e.harness import wait_until, worker_env_in
from tests.processes import stop_process
from workers.store.engine import upgrade

OMVANT = "omvant"


def test_the_inbox_events_bridge_says_ready_once_it_consumes_and_stopped_when_it_ends(
    rabbitmq_url: str, queue_prefix: str, sqlite_url: str, tmp_path: Path
) -> None:
    import sys

    upgrade(sqlite_url)
    env = worker_env_in(tmp_path, rabbitmq_url, sqlite_url, queue_prefix, OMVANT_LOG_JSON="true")
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log:
        bridge = subprocess.Popen(
            [Path(sys.executable).with_name(OMVANT), "inbox-events"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            said = lambda: log_path.read_text(errors="replace")  # noqa: E731
            assert wait_until(lambda: "worker.ready" in said(), timeout=60), said()[-2000:]
            connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
            try:  # ready means consuming: the bridge's queue is there, with its consumer
                declared = connection.channel().queue_declare(
                    f"{queue_prefix}inbox-events", passive=True
                )
                assert declared.method.consumer_count == 1
            finally:
                connection.close()
        finally:
            stop_process(bridge)
    output = log_path.read_text(errors="replace")
    assert bridge.returncode == 0, output[-2000:]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    ready = [line for line in lines if line.get("event") == "worker.ready"]
    stopped = [line for line in lines if line.get("event") == "worker.stopped"]
    assert len(ready) == 1 and len(stopped) == 1, output[-2000:]
    assert ready[0]["stages"] == ["inbox-events"]
    assert ready[0]["queue"] == f"{queue_prefix}inbox-events"
    assert output.index("worker.ready") < output.index("worker.stopped")
    _forget(rabbitmq_url, queue_prefix)


def _forget(rabbitmq_url: str, queue_prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.queue_delete(f"{queue_prefix}inbox-events")
    channel.exchange_delete(f"{queue_prefix}omvant.inbox-events")
    connection.close()
