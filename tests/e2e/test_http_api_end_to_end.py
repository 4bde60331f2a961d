"""The HTTP API on real PostgreSQL and RabbitMQ with the pipeline running as worker processes:
a case posted twice with one Idempotency-Key is one case, reaches notified, reads so over
``GET /v1/cases/{id}``, and its status callbacks arrive signed, once each."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.harness import OMVANT, omvant_serve, running_workers, wait_until, worker_env
from tests.processes import stop_process
from tests.reachable import reachable_residents
from tests.web.api_support import CLINIC_A, CLINIC_B, make_key, record
from workers.adapters.webhook_receiver import WebhookReceiver
from workers.store.engine import make_engine
from workers.store.schema import cases

pytestmark = pytest.mark.e2e


@contextmanager
def omvant_process(env: dict[str, str], args: list[str], log: Path) -> Iterator[None]:
    """``omvant ARGS`` in the background for the block, stopped with SIGTERM."""
    with log.open("ab") as out:
        process = subprocess.Popen([OMVANT, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            stop_process(process)


def test_a_case_posted_twice_is_one_case_that_is_notified_and_called_back_once(
    postgres_url: str, rabbitmq_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    receiver = WebhookReceiver().start()
    try:
        key = make_key(postgres_url, "journal-e2e", [CLINIC_A], webhook_url=receiver.url)
        other = make_key(postgres_url, "journal-other", [CLINIC_B])
        receiver.signing_key = key.signing_key
        env = worker_env(
            broker_url=rabbitmq_url,
            database_url=postgres_url,
            queue_prefix=queue_prefix,
            blob_dir=tmp_path / "blobs",
        )
        with (
            running_workers(env, tmp_path / "logs", threads=2),
            omvant_serve(env, tmp_path / "serve.log") as base,
            omvant_process(env, ["webhooks", "send", "--poll", "0.2"], tmp_path / "hooks.log"),
        ):
            body = record(f"e2e-{queue_prefix}", personnummer=reachable_residents(1, 1177)[0])
            headers = {**key.headers, "Idempotency-Key": f"http-{queue_prefix}"}
            first = httpx.post(f"{base}/v1/cases", json=body, headers=headers, timeout=30)
            again = httpx.post(f"{base}/v1/cases", json=body, headers=headers, timeout=30)
            assert first.status_code == 202, first.text
            assert again.status_code == 200, again.text
            case_id = first.json()["case_ids"][0]
            assert again.json()["case_ids"] == [case_id]

            def state() -> str:
                answer = httpx.get(f"{base}/v1/cases/{case_id}", headers=key.headers, timeout=10)
                assert answer.status_code == 200, answer.text
                return str(answer.json()["state"])

            assert wait_until(lambda: state() == "notified", timeout=120), state()
            status = httpx.get(f"{base}/v1/cases/{case_id}", headers=key.headers).json()
            assert status["timestamps"]["notified_at"] is not None
            assert [n["status"] for n in status["notifications"]] == ["sent"] * len(
                status["notifications"]
            )
            assert status["notifications"]
            assert httpx.get(f"{base}/v1/cases/{case_id}", headers=other.headers).status_code == 404

            def called_back() -> set[str]:
                return {e["type"] for e in receiver.events.values() if e["case"]["id"] == case_id}

            assert wait_until(
                lambda: {"case.delivered", "case.notified"} <= called_back(), timeout=60
            ), (receiver.events, (tmp_path / "hooks.log").read_text())
        engine = make_engine(postgres_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(cases.c.id).where(cases.c.id == case_id)).all()
        engine.dispose()
        assert len(rows) == 1
        mine = [e for e in receiver.events.values() if e["case"]["id"] == case_id]
        assert sorted(e["type"] for e in mine) == ["case.delivered", "case.notified"]
        assert receiver.bad_signatures == 0
        assert receiver.deliveries == len(receiver.events)  # nothing delivered twice
        assert all("personnummer" not in str(e) for e in mine)
    finally:
        receiver.stop()
