"""Real ``omvant worker`` processes whose servers are not there, or go away: bounded waits,
a few lines, exit status 2, and a main process that follows its children (and back)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from producers.chaos.servers import RedisServer, ServerError
from tests.conftest import server_missing
from tests.e2e.harness import OMVANT, WorkerProcess, assert_ready, wait_until, worker_env_in
from tests.ports import refusing_port
from workers.store.engine import upgrade

pytestmark = pytest.mark.e2e


def run_worker(
    env: dict[str, str], timeout: float = 90, stages: tuple[str, ...] = ()
) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [OMVANT, "worker", *stages, "--processes", "1", "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    return done.returncode, lines, time.monotonic() - started


STARTUP_TIMEOUT = 5
GAVE_UP = re.compile(r"gave up after (\d+) attempts? in (\d+) s")


@pytest.mark.parametrize(
    "broker",
    ["redis://:secret@127.0.0.1:{port}/0", "amqp://guest:secret@127.0.0.1:{port}/%2F"],
    ids=["redis", "rabbitmq"],
)
def test_a_worker_whose_broker_is_down_retries_then_exits_2_with_one_line_per_attempt(
    broker: str, postgres_url: str, tmp_path: Path
) -> None:
    with refusing_port() as port:  # held: no server can start listening there meanwhile
        env = worker_env_in(
            tmp_path,
            broker.format(port=port),
            postgres_url,
            "i11c.dead.",
            OMVANT_STARTUP_TIMEOUT_SECONDS=str(STARTUP_TIMEOUT),
        )
        status, lines, _seconds = run_worker(env)
    assert status == 2, lines
    # the timeout counts from the process's start (imports too): 0.5 + 1 + 2 s of waiting at
    # most, then what is left: at most four retries, then the verdict
    assert 2 <= len(lines) <= 5, lines
    assert all(line.startswith("omvant worker: waiting for the broker") for line in lines[:-1])
    assert lines[-1].startswith("omvant worker: cannot reach the broker")
    assert "OMVANT_STARTUP_TIMEOUT_SECONDS" in lines[-1]
    assert all("secret" not in line and "***" in line for line in lines)
    # the wait is the setting's, as the worker measured it (not the wall time of a process
    # that also imports and starts up, which load stretches): 5 s, and the last probe's moment
    gave_up = GAVE_UP.search(lines[-1])
    assert gave_up, lines[-1]
    assert int(gave_up.group(1)) == len(lines)  # one line per attempt, the last the verdict
    assert STARTUP_TIMEOUT <= int(gave_up.group(2)) <= STARTUP_TIMEOUT + 1, gave_up.group(0)


def test_a_worker_whose_database_is_down_exits_2_after_the_timeout(
    redis_url: str, tmp_path: Path
) -> None:
    with refusing_port() as port:
        env = worker_env_in(
            tmp_path,
            redis_url,
            f"postgresql://postgres@127.0.0.1:{port}/omvant",
            "i11c.dead.",
            OMVANT_STARTUP_TIMEOUT_SECONDS="2",
        )
        status, lines, _seconds = run_worker(env)
    assert status == 2, lines
    assert 1 <= len(lines) <= 4, lines  # from the process start: imports may take the budget
    assert lines[-1].startswith("omvant worker: cannot reach the database at postgresql://")


S3_BUCKET = {
    "OMVANT_BLOB_URL": "s3://omvant-blobs/dead",
    "AWS_ACCESS_KEY_ID": "omvant-test",
    "AWS_SECRET_ACCESS_KEY": "omvant-test-secret",
    "AWS_DEFAULT_REGION": "eu-north-1",
}
"""Blobs on S3, for the case whose S3 endpoint does not answer."""


@pytest.mark.parametrize(
    ("stage", "variable", "url", "server"),
    [
        ("notification-sending", "OMVANT_SMTP_URL", "smtp://mail:secret@127.0.0.1:{port}", "SMTP"),
        (
            "notification-sending",
            "OMVANT_SMS_GATEWAY_URL",
            "http://sms:secret@127.0.0.1:{port}/send",
            "SMS gateway",
        ),
        (
            "read-receipts",
            "OMVANT_EMAIL_API_URL",
            "http://api:secret@127.0.0.1:{port}/",
            "e-mail API",
        ),
        ("attachment-check", "OMVANT_CLAMD_URL", "tcp://127.0.0.1:{port}", "virus scanner"),
        (
            "recipient-validation",
            "OMVANT_DIRECTORY_URL",
            "http://127.0.0.1:{port}/",
            "account directory",
        ),
        (
            "notification-dispatch",
            "OMVANT_INBOX_URL",
            "http://inbox:secret@127.0.0.1:{port}/",
            "1177 inbox API",
        ),
        (
            "attachment-check",
            "OMVANT_S3_ENDPOINT_URL",
            "http://s3:secret@127.0.0.1:{port}",
            "blob store (S3)",
        ),
    ],
    ids=["smtp", "sms-gateway", "email-api", "clamd", "directory", "inbox", "s3-blobs"],
)
def test_a_worker_whose_stage_server_is_down_exits_2_with_one_line_naming_it(
    stage: str,
    variable: str,
    url: str,
    server: str,
    redis_url: str,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    upgrade(postgres_url)  # a schema up to date: only the stage's server can stop the worker
    with refusing_port() as port:
        env = worker_env_in(
            tmp_path,
            redis_url,
            postgres_url,
            "i13.dead.",
            **{"OMVANT_STARTUP_TIMEOUT_SECONDS": "2", variable: url.format(port=port)},
            **(S3_BUCKET if variable == "OMVANT_S3_ENDPOINT_URL" else {}),
        )
        status, lines, _seconds = run_worker(env, stages=(stage,))
    assert status == 2, lines
    # one line per attempt (how many fit in 2 s depends on the load), the last the verdict
    assert all(line.startswith(f"omvant worker: waiting for the {server}") for line in lines[:-1])
    assert lines[-1].startswith(f"omvant worker: cannot reach the {server}"), lines[-1]
    assert f"127.0.0.1:{port}" in lines[-1] and "check " in lines[-1], lines[-1]
    assert variable in lines[-1] and "OMVANT_STARTUP_TIMEOUT_SECONDS" in lines[-1], lines[-1]
    assert all("secret" not in line for line in lines), lines


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_worker_processes_killed_while_starting_bring_the_main_process_down_in_seconds(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix)
    worker = WorkerProcess(env, [], tmp_path / "worker.log", processes=2, threads=2)
    try:
        assert wait_until(lambda: len(children_of(worker.process.pid)) == 2, timeout=60)
        for child in children_of(worker.process.pid):  # still importing: not yet booted
            os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        status = worker.process.wait(timeout=60)
        assert time.monotonic() - killed < 8  # dramatiq's own default waited 30 s
        assert status != 0
    finally:
        worker.kill()


def test_worker_processes_stop_when_their_main_process_is_killed(
    redis_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    env = worker_env_in(tmp_path, redis_url, postgres_url, queue_prefix)
    worker = WorkerProcess(env, [], tmp_path / "worker.log", processes=2, threads=2)
    try:
        assert wait_until(lambda: worker.output().count("worker.ready") == 1, timeout=90), (
            worker.output()[-2000:]
        )
        children = children_of(worker.process.pid)
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)
        assert wait_until(lambda: not any(alive(c) for c in children), timeout=10)
    finally:
        worker.kill()


OUTAGE_TIMEOUT = 15


def test_a_running_worker_whose_broker_goes_away_says_little_and_exits_2(
    postgres_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    try:
        redis = RedisServer(tmp_path / "servers").start()
    except ServerError as exc:
        server_missing("redis-server (the binary, for a Redis of the test's own)", exc)
    env = worker_env_in(
        tmp_path,
        redis.url,
        postgres_url,
        queue_prefix,
        OMVANT_OUTAGE_TIMEOUT_SECONDS=str(OUTAGE_TIMEOUT),
    )
    worker = WorkerProcess(env, [], tmp_path / "worker.log", processes=1, threads=2)
    try:
        assert_ready(worker)
        before = len(worker.output().splitlines())
        redis.stop()
        stopped = time.monotonic()
        status = worker.process.wait(timeout=OUTAGE_TIMEOUT + 60)  # it must end by itself
        lasted = time.monotonic() - stopped
        lines = worker.output().splitlines()[before:]
    finally:
        worker.kill()
        redis.stop()
    assert status == 2, lines
    assert lasted >= OUTAGE_TIMEOUT  # the outage began when the server stopped: not earlier
    # how long it waited, as the worker measured from the outage's first error (the wall time
    # from the stop adds the consumers' noticing and the process's exit, which load stretches)
    waited = re.search(r"cannot reach the broker \S+ for (\d+) s", "\n".join(lines))
    assert waited, lines
    assert OUTAGE_TIMEOUT <= int(waited.group(1)) <= OUTAGE_TIMEOUT + 2, waited.group(0)
    # dramatiq alone: two lines per queue (34 of them) every 3 s, for ever
    said = [line for line in lines if "omvant.worker" in line]
    assert 4 <= len(said) <= 6, lines  # at 0, 3, 6, 12 s, and the verdict
    assert "giving up, exit status 2" in said[-1]
    assert len(lines) <= len(said) + 6, lines
