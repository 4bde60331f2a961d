"""deploy/kubernetes/ is current, valid for Kubernetes, and agrees with the routing table.

Offline: the core kinds are validated against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: an unknown field is an error); KEDA's kinds are checked for
the fields KEDA requires. Overlays are rendered the way kustomize does for what they use
(resources, components, namespace, ConfigMap patches); where ``kubectl`` is installed the test
also checks that ``kubectl kustomize`` gives the same objects.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from producers import deploy_manifests
from tests.cli_commands import resolves, worker_queues
from workers.queues import URGENT, lane_queue, lanes_of
from workers.routes import STAGES

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = {"dev": "redis", "production": "rabbitmq"}
WORKLOADS = {"Deployment", "Job", "CronJob"}


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def kustomization(folder: Path) -> dict[str, Any]:
    return load(folder / "kustomization.yaml")[0]


def build(folder: Path) -> list[dict[str, Any]]:
    """What ``kustomize build folder`` gives, for the features these files use."""
    spec = kustomization(folder)
    documents: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        documents += build(target) if target.is_dir() else load(target)
    for entry in spec.get("components", []):
        documents += build((folder / entry).resolve())
    for patch in spec.get("patches", []):
        change = yaml.safe_load(patch["patch"])
        for doc in documents:
            if (doc["kind"], doc["metadata"]["name"]) == (
                change["kind"],
                change["metadata"]["name"],
            ):
                doc.setdefault("data", {}).update(change.get("data", {}))
    if "namespace" in spec:
        for doc in documents:
            doc["metadata"]["namespace"] = spec["namespace"]
    return documents


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec["template"]["spec"]["containers"])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(KUBE / "overlays" / request.param)


def test_the_committed_manifests_are_what_the_routing_table_gives() -> None:
    assert deploy_manifests.stale(KUBE) == [], "run: omvant deploy kubernetes"


def test_every_core_object_is_valid_kubernetes(overlay: tuple[str, list[dict]]) -> None:
    _, documents = overlay
    core = [d for d in documents if not d["apiVersion"].startswith("keda.sh/")]
    assert len(core) > 20
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_object_is_refused_by_the_validator() -> None:
    broken = build(KUBE / "overlays" / "production")[0]
    broken = {**broken, "spec": {"nonsense": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_lane_of_every_stage_has_a_consumer_and_a_scaler(
    overlay: tuple[str, list[dict]],
) -> None:
    name, documents = overlay
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    consumed: list[str] = []
    urgent_replicas = 0
    for deployment in deployments.values():
        args = containers(deployment)[0]["args"]
        queues = worker_queues(args)
        consumed += queues
        if queues and all(q.endswith(f".{URGENT}") for q in queues):
            urgent_replicas += deployment["spec"]["replicas"]
    every_lane = {lane_queue(r.queue, lane) for r in STAGES.values() for lane in lanes_of(r.queue)}
    assert sorted(consumed) == sorted(every_lane), "every lane consumed, and by one Deployment"
    # the urgent lanes have a Deployment of their own, never scaled to zero, two pods or more
    urgent = {lane_queue(r.queue, URGENT) for r in STAGES.values() if URGENT in lanes_of(r.queue)}
    assert urgent and urgent_replicas >= 2

    scaled = [d for d in documents if d["kind"] == "ScaledObject"]
    watched: set[str] = set()
    for obj in scaled:
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert spec["minReplicaCount"] >= 1, "an urgent lane must never lose its last consumer"
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == OVERLAYS[name]
            assert trigger["authenticationRef"]["name"] == "omvant-broker"
            meta = trigger["metadata"]
            if trigger["type"] == "rabbitmq":
                assert meta["mode"] == "QueueLength" and int(meta["value"]) > 0
                watched.add(meta["queueName"])
            else:
                assert meta["listName"].startswith("dramatiq:") and int(meta["listLength"]) > 0
                watched.add(meta["listName"].removeprefix("dramatiq:"))
    assert watched == every_lane - urgent
    auth = [d for d in documents if d["kind"] == "TriggerAuthentication"]
    assert [a["metadata"]["name"] for a in auth] == ["omvant-broker"]


def test_every_deployment_waits_for_the_schema_before_it_starts(
    overlay: tuple[str, list[dict]],
) -> None:
    """Each Deployment's program refuses a stale schema (exit 2): without the wait its pods
    restart in a loop until the migration Job has finished."""
    _, documents = overlay
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert len(deployments) >= len(STAGES)
    for doc in deployments:
        (init,) = pod_spec(doc)["initContainers"]
        args = init["args"]
        assert args[:3] == ["db", "check", "--wait"], doc["metadata"]["name"]
        assert float(args[3]) >= 60
        assert resolves(args)
        assert init["image"] == containers(doc)[0]["image"]
        assert init["securityContext"]["runAsNonRoot"] is True
        assert {"limits", "requests"} <= set(init["resources"])


def test_every_workload_runs_a_command_that_exists(overlay: tuple[str, list[dict]]) -> None:
    _, documents = overlay
    workloads = [d for d in documents if d["kind"] in WORKLOADS]
    assert {d["kind"] for d in workloads} == WORKLOADS
    for doc in workloads:
        for container in containers(doc):
            assert resolves(container["args"]), (doc["metadata"]["name"], container["args"])
    assert not resolves(["worker", "--no-such-option"])
    assert not resolves(["no-such-command"])


def test_pods_run_unprivileged_with_limits_probes_and_no_secrets_inline(
    overlay: tuple[str, list[dict]],
) -> None:
    _, documents = overlay
    assert not [d for d in documents if d["kind"] == "Secret"], "secrets never live in the repo"
    for doc in (d for d in documents if d["kind"] in WORKLOADS):
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in containers(doc):
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert set(container["resources"]) == {"requests", "limits"}
            refs = [e.get("secretRef", {}).get("name") for e in container["envFrom"]]
            assert deploy_manifests.SECRET in refs
            assert not any("value" in e and "PASSWORD" in e["name"] for e in container["env"])
            if doc["kind"] == "Deployment" and container["args"][0] in {"worker", "serve"}:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert "readinessProbe" in container


def test_every_deployment_has_a_disruption_budget_and_traffic_is_denied_by_default(
    overlay: tuple[str, list[dict]],
) -> None:
    name, documents = overlay
    namespace = "omvant" if name == "production" else "omvant-dev"
    assert {d["metadata"].get("namespace") for d in documents} == {namespace}
    budgets = {
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
        for d in documents
        if d["kind"] == "PodDisruptionBudget"
    }
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        assert tuple(sorted(deployment["spec"]["selector"]["matchLabels"].items())) in budgets
    policies = {d["metadata"]["name"]: d for d in documents if d["kind"] == "NetworkPolicy"}
    deny = policies["omvant-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {
        p["port"] for rule in policies["omvant-egress"]["spec"]["egress"] for p in rule["ports"]
    }
    assert {5432, 5672, 6379, 53} <= egress_ports
    assert 22 not in egress_ports


def test_production_runs_quorum_queues_and_dev_does_not() -> None:
    config = {
        name: next(d for d in build(KUBE / "overlays" / name) if d["kind"] == "ConfigMap")
        for name in OVERLAYS
    }
    assert config["production"]["data"]["OMVANT_RABBITMQ_QUORUM"] == "true"
    assert config["dev"]["data"]["OMVANT_RABBITMQ_QUORUM"] == "false"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_same_objects(overlay: tuple[str, list[dict]]) -> None:
    name, documents = overlay
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBE / "overlays" / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    ours = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert theirs == ours
