"""Start and stop real ``omvant worker`` processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.registry import envelope_for
from tests.ports import SERVE_PORT, answer_when_up, port_said
from tests.processes import OMVANT, stop_process
from workers.adapters import population
from workers.broker import build_broker
from workers.enqueue import enqueue
from workers.queues import Queues


def worker_env(
    *,
    broker_url: str,
    database_url: str,
    queue_prefix: str,
    blob_dir: Path,
    outbox: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a worker process gets: ``OMVANT_*`` for this test only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    env.update(
        OMVANT_ANSWER_KEY=os.environ["OMVANT_ANSWER_KEY"],
        OMVANT_BROKER_URL=broker_url,
        OMVANT_DATABASE_URL=database_url,
        OMVANT_QUEUE_PREFIX=queue_prefix,
        OMVANT_BLOB_DIR=str(blob_dir),
        OMVANT_LOG_LEVEL="WARNING",
        OMVANT_MAX_RETRIES="2",
    )
    if outbox is not None:
        env["OMVANT_SIM_OUTBOX"] = str(outbox)
    env.update(extra or {})
    return env


def worker_env_in(
    tmp_path: Path, broker_url: str, database_url: str, queue_prefix: str, **extra: str
) -> dict[str, str]:
    """``worker_env`` with the blobs in ``tmp_path / "blobs"`` and ``extra`` settings on top."""
    return worker_env(
        broker_url=broker_url,
        database_url=database_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        extra=extra,
    )


def assert_ready(worker: WorkerProcess, *, timeout: float = 90) -> None:
    """Wait until the worker says ``worker.ready``; fail with the end of its log if it does not."""
    assert wait_until(lambda: "worker.ready" in worker.output(), timeout=timeout), worker.output()[
        -2000:
    ]


class WorkerProcess:
    """One ``omvant worker`` process (dramatiq's main process and its children)."""

    def __init__(
        self,
        env: Mapping[str, str],
        stages: list[str],
        log_path: Path,
        processes: int = 1,
        threads: int = 4,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        # as the compose file's migrate service does: workers refuse a schema not up to date
        subprocess.run([OMVANT, "db", "upgrade"], env=dict(env), check=True, capture_output=True)
        self.process = subprocess.Popen(
            [OMVANT, "worker", *stages, "--processes", str(processes), "--threads", str(threads)],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would (its worker processes too, even
        when the main process is gone already)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully (SIGTERM); kill if it takes longer than ``timeout`` seconds."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        """What the process has written so far."""
        return self.log_path.read_text(errors="replace")


def push_file(
    env: Mapping[str, str], path: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``omvant push PATH`` as an integration team runs it; the test fails unless it succeeds."""
    pushed = subprocess.run(
        [OMVANT, "push", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    return pushed


def push_cases(env: Mapping[str, str], path: Path, keys: Sequence[str]) -> None:
    """Write one ``SendCase`` a key to ``path`` (the test residents in turn) and push it."""
    numbers = population.test_personnummer()
    records = [
        {
            "clinic_hsa_id": "SE2321000016-VC01",
            "sender_hsa_id": "SE2321000016-S101",
            "template_id": "meddelande-till-invanare",
            "fragments": ["halsning"],
            "personnummer": numbers[i % len(numbers)],
            "idempotency_key": key,
        }
        for i, key in enumerate(keys)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    push_file(env, path, timeout=60)


def enqueue_dispatch(broker_url: str, items: Sequence[Any], prefix: str) -> None:
    """Put one ``dispatch_notifications`` message for ``items`` on the broker."""
    enqueue(
        build_broker(broker_url),
        Queues.NOTIFICATION_DISPATCH,
        "dispatch_notifications",
        envelope_for(items).model_dump(mode="json"),
        prefix=prefix,
    )


def crash_when(
    env: Mapping[str, str],
    stages: list[str],
    log: Path,
    condition: Callable[[], bool],
    *,
    timeout: float = 120,
) -> None:
    """Run a one-thread worker on ``stages`` and SIGKILL it as soon as ``condition`` holds (the
    test fails with the end of its log if it never does within ``timeout`` seconds)."""
    worker = WorkerProcess(env, stages, log, threads=1)
    try:
        assert wait_until(condition, timeout=timeout), worker.output()[-3000:]
        worker.kill()
    finally:
        worker.stop()


@contextmanager
def running_workers(
    env: Mapping[str, str],
    log_dir: Path,
    stages: list[str] | None = None,
    *,
    processes: int = 1,
    threads: int = 4,
) -> Iterator[WorkerProcess]:
    """Run ``omvant worker [stages]`` for the duration of the block."""
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(
        env, stages or [], log_dir / f"worker-{time.monotonic_ns()}.log", processes, threads
    )
    try:
        yield worker
    finally:
        worker.stop()


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextmanager
def omvant_serve(env: Mapping[str, str], log: Path, timeout: float = 90) -> Iterator[str]:
    """``omvant serve --port 0`` for the block: the server binds a free port itself (no port to
    race another process for) and says which; yields its base URL once ``/readyz`` is 200."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [OMVANT, "serve", "--port", "0"], env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def alive() -> bool:
            return process.poll() is None

        port = port_said(log.read_text, SERVE_PORT, alive=alive, timeout=timeout)
        base = f"http://127.0.0.1:{port}"
        assert wait_until(
            lambda: answer_when_up(f"{base}/readyz", alive=alive).status_code == 200,
            timeout=timeout,
        ), log.read_text()[-2000:]
        yield base
    finally:
        stop_process(process)
