"""docker-compose.yml and the routing table agree: every queue is consumed, every service runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from workers.queues import Queues
from workers.routes import ROUTES, STAGES

ROOT = Path(__file__).resolve().parents[2]


def compose_services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def worker_stages(service: dict) -> list[str]:
    command = service.get("command") or []
    if command[:1] != ["worker"]:
        return []
    stages = []
    for arg in command[1:]:
        if arg.startswith("--"):
            break
        stages.append(arg)
    return stages or list(STAGES)


def test_every_queue_has_a_consuming_service() -> None:
    consumed = {
        STAGES[s].queue
        for svc in compose_services().values()
        for s in worker_stages(svc)
        if s in STAGES
    }
    assert consumed == set(Queues)


def test_every_worker_service_runs_a_stage_that_exists() -> None:
    for name, service in compose_services().items():
        for stage in worker_stages(service):
            assert stage in STAGES, f"service {name} runs unknown stage {stage}"


def test_every_routed_queue_is_a_known_queue_with_a_unique_actor() -> None:
    assert {route.queue for route in ROUTES.values()} == set(Queues)
    names = [route.actor_name for route in ROUTES.values()]
    assert len(names) == len(set(names))


def test_services_get_their_configuration_from_the_environment() -> None:
    for name, service in compose_services().items():
        if worker_stages(service):
            env = service["environment"]
            assert env["OMVANT_BROKER_URL"].startswith("amqp://"), name
            assert env["OMVANT_DATABASE_URL"].startswith("postgresql://"), name
