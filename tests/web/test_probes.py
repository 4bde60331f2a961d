"""``/healthz`` and ``/readyz``: liveness answers alone, readiness asks the database and broker."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from producers.web.app import create_app
from workers.settings import Settings


def test_healthz_answers_without_asking_any_server(tmp_path: object) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",  # type: ignore[call-arg]
        broker_url="amqp://guest:guest@127.0.0.1:1/%2F",
    )
    with TestClient(create_app(settings, migrate=False)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.integration
def test_readyz_is_ready_on_real_postgres_and_rabbitmq(
    postgres_url: str, rabbitmq_url: str
) -> None:
    settings = Settings(database_url=postgres_url, broker_url=rabbitmq_url)  # type: ignore[call-arg]
    with TestClient(create_app(settings, migrate=True)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


@pytest.mark.integration
def test_readyz_is_503_naming_the_broker_that_does_not_answer(postgres_url: str) -> None:
    settings = Settings(
        database_url=postgres_url,  # type: ignore[call-arg]
        broker_url="redis://127.0.0.1:1/0",
    )
    with TestClient(create_app(settings, migrate=True)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not-ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]


def test_readyz_is_503_when_the_database_does_not_answer() -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",  # type: ignore[call-arg]
        broker_url="memory://",
    )
    with TestClient(create_app(settings, migrate=False)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
