"""The Kubernetes manifests of ``deploy/kubernetes/``, written from the routing table.

One Deployment per stage (consuming every lane of its queue), the bridges, the web console,
the migration Job and the periodic jobs, and a KEDA ``ScaledObject`` per stage in two variants
(RabbitMQ and Redis queue depth). They are generated so that a stage or lane added to
``workers/routes.py`` cannot be forgotten here; ``omvant deploy kubernetes --check`` (and a
test) says when the committed files are stale. The files are plain YAML that kustomize reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workers.queues import URGENT, lane_queue, lanes_of
from workers.routes import STAGES

APP = "omvant"
IMAGE = "ghcr.io/omvant/omvant:0.1.0"
UID = 10177
METRICS_PORT = 9464
WEB_PORT = 8000
SECRET = "omvant-secrets"  # noqa: S105 - the name of the Secret object, not a secret
CONFIG = "omvant-config"


@dataclass(frozen=True)
class StageSizing:
    """How one stage's pods are sized and scaled (from the benchmark: dispatch dominates)."""

    threads: int
    cpu: str
    memory: str
    max_replicas: int
    target_depth: int
    """Messages (chunks of up to 100 cases) waiting per replica before KEDA adds one."""


SIZING: dict[str, StageSizing] = {
    "recipient-validation": StageSizing(8, "250m", "256Mi", 8, 20),
    "composition": StageSizing(8, "250m", "256Mi", 8, 20),
    "attachment-check": StageSizing(4, "500m", "512Mi", 8, 10),
    "read-receipts": StageSizing(8, "100m", "192Mi", 4, 50),
}
DEFAULT_SIZING = StageSizing(16, "500m", "384Mi", 16, 10)
"""Stages not named above (notification dispatch and sending): provider calls, many threads."""

PROBE_PATHS = {"liveness": "/healthz", "readiness": "/healthz"}


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env_from() -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": CONFIG}}, {"secretRef": {"name": SECRET}}]


def _volumes(blobs: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - a pod's own emptyDir
    if blobs:
        volumes.append({"name": "blobs", "persistentVolumeClaim": {"claimName": "omvant-blobs"}})
        mounts.append({"name": "blobs", "mountPath": "/var/lib/omvant/blobs"})
    return volumes, mounts


def _probe(path: str, port: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": 10,
        "periodSeconds": 15,
        "timeoutSeconds": 5,
        "failureThreshold": 4,
    }


def _container(
    name: str,
    args: list[str],
    *,
    cpu: str,
    memory: str,
    port: int | None,
    blobs: bool,
    probes: dict[str, str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    volumes, mounts = _volumes(blobs)
    container: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "envFrom": _env_from(),
        "env": [{"name": "OMVANT_METRICS_PORT", "value": str(METRICS_PORT)}],
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": _double(cpu), "memory": _double(memory)},
        },
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port}]
        if probes:
            container["livenessProbe"] = _probe(probes["liveness"], port)
            container["readinessProbe"] = _probe(probes["readiness"], port)
    return container, volumes


def _double(quantity: str) -> str:
    for unit in ("Mi", "Gi", "m"):
        if quantity.endswith(unit):
            return f"{int(quantity[: -len(unit)]) * 2}{unit}"
    return str(int(quantity) * 2)


def _pod_spec(container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "serviceAccountName": APP,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "fsGroup": UID},
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }


SCHEMA_WAIT_SECONDS = 900
"""How long a pod waits for the migration Job before its init container gives up (exit 2)."""


def schema_wait() -> dict[str, Any]:
    """The init container of every Deployment: its program refuses a stale schema (exit 2),
    so the pod waits (``omvant db check --wait``) for the migration Job instead of
    restarting in a loop until the Job has finished."""
    container, _ = _container(
        "wait-for-schema",
        ["db", "check", "--wait", str(SCHEMA_WAIT_SECONDS)],
        cpu="100m",
        memory="192Mi",
        port=None,
        blobs=False,
    )
    return container


def deployment(
    name: str, component: str, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Deployment of one container, with the labels every selector here uses; it starts
    once the database's schema is the image's (``schema_wait``)."""
    spec = _pod_spec(container, volumes)
    spec["initContainers"] = [schema_wait()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(component)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _labels(component)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {**_labels(component), "omvant.se/role": "worker"}},
                "spec": spec,
            },
        },
    }


def disruption_budget(name: str, component: str) -> dict[str, Any]:
    """At most one pod of a component away at a time during node drains."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": _labels(component)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(component)}},
    }


URGENT_LANES = "urgent-lanes"
"""The component of the Deployment consuming every stage's urgent lane."""
URGENT_REPLICAS = 2
"""Urgent lanes' pods: a node drain or a rolling update always leaves one consuming."""
URGENT_CPU = "500m"
"""The urgent lanes' pods' CPU request: a reservation, so bulk chunks on the same node never
take the core an urgent case needs (what ``omvant worker --nice`` gives on one host)."""


def stage_queues(stage: str, prefix: str = "") -> list[str]:
    """Every lane queue one stage's Deployment consumes: all but the urgent lane, which the
    urgent lanes' Deployment consumes (``urgent_documents``)."""
    queue = STAGES[stage].queue
    return [f"{prefix}{lane_queue(queue, lane)}" for lane in lanes_of(queue) if lane != URGENT]


def stage_documents(stage: str) -> list[dict[str, Any]]:
    """The Deployment and PodDisruptionBudget of one stage (every lane but the urgent one)."""
    size = SIZING.get(stage, DEFAULT_SIZING)
    container, volumes = _container(
        "worker",
        ["worker", stage, "--lanes", "others", "--processes", "1", "--threads", str(size.threads)],
        cpu=size.cpu,
        memory=size.memory,
        port=METRICS_PORT,
        blobs=True,
        probes=PROBE_PATHS,
    )
    name = f"omvant-{stage}"
    return [deployment(name, stage, container, volumes), disruption_budget(name, stage)]


def urgent_documents() -> list[dict[str, Any]]:
    """The Deployment and PodDisruptionBudget consuming every stage's urgent lane: one process
    (8 threads per lane: its single-case messages wait on PostgreSQL, not on the interpreter)
    with a CPU request of its own, never scaled to zero (no KEDA trigger)."""
    container, volumes = _container(
        "worker",
        ["worker", "--lanes", "urgent", "--processes", "1"],
        cpu=URGENT_CPU,
        memory="384Mi",
        port=METRICS_PORT,
        blobs=True,
        probes=PROBE_PATHS,
    )
    name = f"omvant-{URGENT_LANES}"
    document = deployment(name, URGENT_LANES, container, volumes)
    document["spec"]["replicas"] = URGENT_REPLICAS
    return [document, disruption_budget(name, URGENT_LANES)]


def scaled_object(stage: str, broker: str) -> dict[str, Any]:
    """KEDA scales a stage on the depth of the lanes its Deployment consumes (all but the
    urgent one); never below one replica, so a clinic's single case never waits for a scale-up
    from zero."""
    size = SIZING.get(stage, DEFAULT_SIZING)
    triggers: list[dict[str, Any]] = []
    for queue in stage_queues(stage):
        if broker == "rabbitmq":
            triggers.append(
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "amqp",
                        "queueName": queue,
                        "mode": "QueueLength",
                        "value": str(size.target_depth),
                    },
                    "authenticationRef": {"name": "omvant-broker"},
                }
            )
        else:
            triggers.append(
                {
                    "type": "redis",
                    "metadata": {
                        "listName": f"dramatiq:{queue}",
                        "listLength": str(size.target_depth),
                        "addressFromEnv": "OMVANT_REDIS_ADDRESS",
                    },
                    "authenticationRef": {"name": "omvant-broker"},
                }
            )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"omvant-{stage}", "labels": _labels(stage)},
        "spec": {
            "scaleTargetRef": {"name": f"omvant-{stage}"},
            "minReplicaCount": 1,
            "maxReplicaCount": size.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": triggers,
        },
    }


def trigger_authentication(broker: str) -> dict[str, Any]:
    """How KEDA reads the broker's address: from the same Secret the workers use."""
    parameter = "host" if broker == "rabbitmq" else "password"
    key = "OMVANT_BROKER_URL" if broker == "rabbitmq" else "OMVANT_REDIS_PASSWORD"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "omvant-broker", "labels": _labels("autoscaling")},
        "spec": {"secretTargetRef": [{"parameter": parameter, "name": SECRET, "key": key}]},
    }


BRIDGES = {
    "intake": ["intake"],
    "inbox-events": ["inbox-events"],
}
"""The bridges between outside systems and the queues (one replica each; kombu consumers)."""

CRON_JOBS = {
    "sweep": ("* * * * *", ["sweep", "--json"]),
}
"""Periodic jobs: the sweep (re-drives what has stalled; runs the unread follow-ups)."""


def bridge_documents(name: str, args: list[str]) -> list[dict[str, Any]]:
    """A bridge's Deployment and PodDisruptionBudget."""
    container, volumes = _container(
        name, args, cpu="100m", memory="192Mi", port=None, blobs=name == "intake"
    )
    full = f"omvant-{name}"
    return [deployment(full, name, container, volumes), disruption_budget(full, name)]


def web_documents() -> list[dict[str, Any]]:
    """The web console and HTTP API (``omvant serve``) and its Service."""
    container, volumes = _container(
        "web",
        ["serve", "--host", "0.0.0.0", "--port", str(WEB_PORT)],  # noqa: S104 - a pod listens on its own address
        cpu="250m",
        memory="256Mi",
        port=WEB_PORT,
        blobs=True,
        probes={"liveness": "/healthz", "readiness": "/readyz"},
    )
    web = deployment("omvant-web", "web", container, volumes)
    web["spec"]["replicas"] = 2
    web["spec"]["template"]["metadata"]["labels"]["omvant.se/role"] = "web"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "omvant-web", "labels": _labels("web")},
        "spec": {
            "selector": _labels("web"),
            "ports": [{"name": "http", "port": 80, "targetPort": WEB_PORT}],
        },
    }
    return [web, service, disruption_budget("omvant-web", "web")]


EXPORTER_PORT = 9465


def exporter_documents() -> list[dict[str, Any]]:
    """The one exporter of queue depths, dead letters, dispatches and stuck cases."""
    container, volumes = _container(
        "exporter",
        ["exporter", "--host", "0.0.0.0", "--port", str(EXPORTER_PORT)],  # noqa: S104 - the pod's own address
        cpu="100m",
        memory="192Mi",
        port=EXPORTER_PORT,
        blobs=False,
        probes={"liveness": "/metrics", "readiness": "/metrics"},
    )
    return [
        deployment("omvant-exporter", "exporter", container, volumes),
        disruption_budget("omvant-exporter", "exporter"),
    ]


def _job_template(name: str, args: list[str]) -> dict[str, Any]:
    container, volumes = _container(
        name, args, cpu="100m", memory="192Mi", port=None, blobs=name != "migrate"
    )
    spec = _pod_spec(container, volumes)
    spec["restartPolicy"] = "OnFailure"
    labels = {**_labels(name), "omvant.se/role": "worker"}
    return {"metadata": {"labels": labels}, "spec": spec}


def job_documents() -> list[dict[str, Any]]:
    """The migration Job (run first on every upgrade) and the CronJobs."""
    migrate = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "omvant-migrate", "labels": _labels("migrate")},
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86400,
            "template": _job_template("migrate", ["db", "upgrade"]),
        },
    }
    documents: list[dict[str, Any]] = [migrate]
    for name, (schedule, args) in CRON_JOBS.items():
        documents.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": f"omvant-{name}", "labels": _labels(name)},
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {
                        "spec": {"backoffLimit": 2, "template": _job_template(name, args)}
                    },
                },
            }
        )
    return documents


def shared_documents() -> list[dict[str, Any]]:
    """The ServiceAccount, the ConfigMap (no secrets) and the blob volume claim."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": APP, "labels": _labels("shared")},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG, "labels": _labels("shared")},
            "data": {
                "OMVANT_LOG_JSON": "true",
                "OMVANT_LOG_LEVEL": "INFO",
                "OMVANT_BLOB_DIR": "/var/lib/omvant/blobs",
                "OMVANT_CHUNK_SIZE": "100",
                "OMVANT_TIMEZONE": "Europe/Stockholm",
                "OMVANT_SMS_QUIET_HOURS": "21:00-08:00",
                "OMVANT_SMS_PER_SECOND": "50",
                "OMVANT_EMAIL_PER_SECOND": "200",
                "OMVANT_RABBITMQ_QUORUM": "false",
                "PROMETHEUS_MULTIPROC_DIR": "/tmp/omvant-metrics",  # noqa: S108 - the pod's own emptyDir
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "omvant-blobs", "labels": _labels("shared")},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "50Gi"}},
            },
        },
    ]


def _egress(port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"ports": [{"port": port, "protocol": protocol}]}


def network_policies() -> list[dict[str, Any]]:
    """Deny by default; workers reach only DNS, the broker, the database, the cache and the
    providers (SMTP, HTTPS); the web takes traffic on its port; Prometheus scrapes metrics."""
    providers = [
        _egress(53, "UDP"),
        _egress(53),
        _egress(5671),
        _egress(5672),
        _egress(5432),
        _egress(6379),
        _egress(3310),
        _egress(25),
        _egress(465),
        _egress(587),
        _egress(443),
    ]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "omvant-default-deny", "labels": _labels("network")},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "omvant-egress", "labels": _labels("network")},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                "policyTypes": ["Egress"],
                "egress": providers,
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "omvant-web-ingress", "labels": _labels("network")},
            "spec": {
                "podSelector": {"matchLabels": _labels("web")},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": WEB_PORT, "protocol": "TCP"}]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "omvant-metrics-ingress", "labels": _labels("network")},
            "spec": {
                "podSelector": {"matchLabels": {"omvant.se/role": "worker"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                                }
                            }
                        ],
                        "ports": [
                            {"port": METRICS_PORT, "protocol": "TCP"},
                            {"port": EXPORTER_PORT, "protocol": "TCP"},
                        ],
                    }
                ],
            },
        },
    ]


def _kustomization(resources: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
        **extra,
    }


def _component(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": resources,
    }


def _overlay(namespace: str, broker: str, patches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["../../base"],
        "components": [f"../../components/keda-{broker}"],
        "patches": patches,
    }


def _config_patch(values: dict[str, str]) -> dict[str, Any]:
    return {
        "patch": yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG}, "data": values},
            sort_keys=False,
        ),
    }


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every file below ``deploy/kubernetes/`` -> its YAML documents."""
    files: dict[str, list[dict[str, Any]]] = {
        "base/shared.yaml": shared_documents(),
        "base/network-policies.yaml": network_policies(),
        "base/web.yaml": web_documents(),
        "base/jobs.yaml": job_documents(),
        "base/exporter.yaml": exporter_documents(),
    }
    for stage in STAGES:
        files[f"base/stage-{stage}.yaml"] = stage_documents(stage)
    files[f"base/{URGENT_LANES}.yaml"] = urgent_documents()
    for name, args in BRIDGES.items():
        files[f"base/bridge-{name}.yaml"] = bridge_documents(name, args)
    base_files = sorted(f.removeprefix("base/") for f in files)
    files["base/kustomization.yaml"] = [
        _kustomization(base_files, labels=[{"pairs": {"app.kubernetes.io/part-of": APP}}])
    ]
    for broker in ("rabbitmq", "redis"):
        docs = [trigger_authentication(broker)] + [scaled_object(s, broker) for s in STAGES]
        files[f"components/keda-{broker}/scaled-objects.yaml"] = docs
        files[f"components/keda-{broker}/kustomization.yaml"] = [
            _component(["scaled-objects.yaml"])
        ]
    files["overlays/dev/kustomization.yaml"] = [
        _overlay("omvant-dev", "redis", [_config_patch({"OMVANT_LOG_LEVEL": "DEBUG"})])
    ]
    files["overlays/production/kustomization.yaml"] = [
        _overlay(
            "omvant",
            "rabbitmq",
            [_config_patch({"OMVANT_RABBITMQ_QUORUM": "true"})],
        )
    ]
    return files


HEADER = (
    "# Generated by `omvant deploy kubernetes` from workers/routes.py: edit the generator\n"
    "# (producers/deploy_manifests.py), not this file.\n"
)


def render() -> dict[str, str]:
    """Every file's text."""
    return {
        path: HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=100)
        for path, docs in manifests().items()
    }


def write(root: Path) -> list[str]:
    """Write the manifests below ``root``; return the files that changed."""
    changed = []
    for path, text in render().items():
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale(root: Path) -> list[str]:
    """Files below ``root`` that differ from what the routing table gives (or are missing)."""
    return [
        path
        for path, text in render().items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]
