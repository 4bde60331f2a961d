"""docker-compose.yml and the routing table agree: every queue is consumed, every service runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

from tests.cli_commands import omvant_commands_in_shell, resolves, worker_queues
from workers.queues import Queues, all_queues
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


def test_every_lane_of_every_queue_has_one_consuming_service() -> None:
    consumed = [
        q for svc in compose_services().values() for q in worker_queues(svc.get("command") or [])
    ]
    assert sorted(consumed) == sorted(all_queues())
    assert {STAGES[s].queue for svc in compose_services().values() for s in worker_stages(svc)} == (
        set(Queues)
    )


def test_every_worker_service_runs_a_stage_that_exists() -> None:
    for name, service in compose_services().items():
        for stage in worker_stages(service):
            assert stage in STAGES, f"service {name} runs unknown stage {stage}"


def test_every_routed_queue_is_a_known_queue_with_a_unique_actor() -> None:
    assert {route.queue for route in ROUTES.values()} == set(Queues)
    names = [route.actor_name for route in ROUTES.values()]
    assert len(names) == len(set(names))


def test_every_route_names_the_stage_module_that_consumes_its_contract() -> None:
    for contract, route in ROUTES.items():
        module = importlib.import_module(route.module)
        assert route.processor() is module.process, contract
        assert route.stage == module.STAGE, contract  # the module takes its name from the table
    assert len({route.module for route in ROUTES.values()}) == len(ROUTES)


def test_every_stage_names_the_state_it_takes_its_cases_in() -> None:
    """A stage without one would end cases of any state up to cleared when it rejects or
    fails (``case_states.ends_until``): a stage added to the table must say its input."""
    from workers.case_states import STAGE_INPUT

    assert set(STAGE_INPUT) == set(STAGES)


def test_services_get_their_configuration_from_the_environment() -> None:
    for name, service in compose_services().items():
        if worker_stages(service):
            env = service["environment"]
            assert "amqp://" in env["OMVANT_BROKER_URL"], name
            assert "postgresql://" in env["OMVANT_DATABASE_URL"], name


def omvant_command_lines(service: dict) -> list[list[str]]:
    """The omvant command lines a service of the Omvänt image runs."""
    entrypoint = service.get("entrypoint")
    if entrypoint:
        assert entrypoint[:2] == ["/bin/sh", "-c"], entrypoint
        return omvant_commands_in_shell(entrypoint[2])
    return [list(service.get("command") or [])]


def omvant_services() -> dict[str, dict]:
    return {n: s for n, s in compose_services().items() if s.get("image", "").startswith("omvant")}


def test_every_omvant_service_runs_a_command_that_exists() -> None:
    services = omvant_services()
    assert len(services) >= 12
    for name, service in services.items():
        lines = omvant_command_lines(service)
        assert lines and all(lines), name
        for line in lines:
            assert resolves(line), f"service {name} runs omvant {' '.join(line)}"
    assert not resolves(["worker", "--no-such-option"])
    assert omvant_commands_in_shell("while true; do omvant cases follow-up; sleep 9; done") == [
        ["cases", "follow-up"]
    ]


def test_the_bridges_web_exporter_and_periodic_jobs_run() -> None:
    commands = {
        tuple(line[:2]) for s in omvant_services().values() for line in omvant_command_lines(s)
    }
    for wanted in [
        ("db", "upgrade"),
        ("intake",),
        ("inbox-events",),
        ("serve", "--host"),
        ("exporter", "--host"),
        ("cases", "follow-up"),
    ]:
        assert any(c[: len(wanted)] == wanted for c in commands), wanted


def test_profiles_add_simulators_monitoring_and_clamav() -> None:
    profiles: dict[str, set[str]] = {}
    for name, service in compose_services().items():
        for profile in service.get("profiles", []):
            profiles.setdefault(profile, set()).add(name)
    assert set(profiles) == {"sims", "monitoring", "clamav"}
    assert {"prometheus", "grafana"} <= profiles["monitoring"]
    assert "clamav" in profiles["clamav"]
    sims = {tuple(omvant_command_lines(compose_services()[n])[0][:2]) for n in profiles["sims"]}
    assert {
        ("sim", "directory"),
        ("sim", "sms-gateway"),
        ("sim", "smtp-sink"),
        ("sim", "email-api"),
        ("sim", "inbox"),
    } <= sims
    core = [n for n, s in compose_services().items() if "profiles" not in s]
    assert not any(n in core for n in ("prometheus", "grafana", "clamav"))


def test_every_mounted_file_exists_and_prometheus_scrapes_every_worker() -> None:
    for name, service in compose_services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, service in compose_services().items():
        if worker_stages(service):
            assert f"{name}:9464" in targets, f"Prometheus does not scrape {name}"
            assert service["environment"]["OMVANT_METRICS_PORT"] == "9464"
    assert "exporter:9465" in targets


def test_the_sims_profile_serves_what_the_documented_settings_point_the_workers_at() -> None:
    """The compose file's header says which settings wire the workers to the simulators; each
    names a sims service that listens on all addresses on that port, and each is a setting the
    services pass on from the environment."""
    header = (ROOT / "docker-compose.yml").read_text().split("\nx-omvant-environment", 1)[0]
    wired = re.findall(r"(OMVANT_[A-Z_]+)=(?:http|smtp)://([a-z-]+):([0-9]+)", header)
    assert {name for name, _, _ in wired} == {
        "OMVANT_DIRECTORY_URL", "OMVANT_SMS_GATEWAY_URL", "OMVANT_SMTP_URL", "OMVANT_INBOX_URL",
        "OMVANT_EMAIL_API_URL",
    }  # fmt: skip
    services = compose_services()
    worker_env = services["notification-sending"]["environment"]
    for setting, host, port in wired:
        service = services[host]
        assert service.get("profiles") == ["sims"], host
        command = omvant_command_lines(service)[0]
        assert command[command.index("--port") + 1] == port, host
        assert command[command.index("--host") + 1] == "0.0.0.0", host
        assert resolves(command), command
        assert setting in worker_env, setting


def test_the_answer_key_must_come_from_the_environment() -> None:
    """Workers outside the embedded default refuse to start without OMVANT_ANSWER_KEY: compose
    passes it on and stops with a message when it is unset (never a key in this file)."""
    for name, service in omvant_services().items():
        value = service["environment"]["OMVANT_ANSWER_KEY"]
        assert value.startswith("${OMVANT_ANSWER_KEY:?"), name
