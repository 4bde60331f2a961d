"""The alert rules, the Prometheus configuration and the Grafana dashboard are files that work:
promtool checks the rules and runs their unit tests, every metric they name is one the code
exports (with the labels they use), and every alert has a runbook section."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import IN_CI
from workers import metrics as worker_metrics
from workers.broker import build_broker
from workers.exporter import build_registry
from workers.store.engine import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "omvant.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
METRIC = re.compile(r"\bomvant_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(omvant_[a-z0-9_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        message = "promtool is not installed (Debian package prometheus; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_configuration() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def exported(tmp_path: Path) -> dict[str, set[str]]:
    """Every sample name the workers and the exporter export, with its labels."""
    database = f"sqlite:///{tmp_path}/m.db"
    upgrade(database)
    broker = build_broker("memory://")
    # the workers' metrics as declared, the exporter's as it collects them
    found: list[tuple[str, str, set[str]]] = [
        (m._name, m._type, set(m._labelnames))
        for m in vars(worker_metrics).values()
        if isinstance(m, MetricWrapperBase)
    ]
    found += [
        (f.name, f.type, set(getattr(f, "_labelnames", ())))
        for f in build_registry(broker, make_engine(database), "").collect()
    ]
    names: dict[str, set[str]] = {}
    for name, kind, labels in found:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(kind, [""]):
            names.setdefault(name + suffix, set()).update(labels)
    return names


def exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    found = [
        (f"alert {rule['alert']}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [
        (f"panel {panel['title']}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    return found


def test_every_metric_the_alerts_and_the_dashboard_name_is_exported(tmp_path: Path) -> None:
    names = exported(tmp_path)
    for where, expr in exprs():
        for metric in METRIC.findall(expr):
            assert metric in names, f"{where} names {metric}, which nothing exports"


def test_the_labels_the_alerts_and_the_dashboard_use_are_exported(tmp_path: Path) -> None:
    names = exported(tmp_path)
    for where, expr in exprs():
        metrics = METRIC.findall(expr)
        for metric, selector in SELECTOR.findall(expr):
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|=)", selector):
                assert label in names[metric], f"{where}: {metric} has no label {label}"
        for grouping in GROUPING.findall(expr):
            for label in [x.strip() for x in grouping.split(",") if x.strip()]:
                if label in {"le", "instance", "job"}:
                    continue
                assert any(label in names[m] for m in metrics), f"{where}: nothing has {label}"


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    used = {m for _, expr in exprs() for m in METRIC.findall(expr)}
    for metric in (
        "omvant_queue_depth", "omvant_failures_pending", "omvant_failure_oldest_age_seconds",
        "omvant_messages_processed_total", "omvant_cases_rejected_total",
        "omvant_messages_retried_total", "omvant_message_processing_seconds_bucket",
        "omvant_notifications_total", "omvant_case_latency_seconds_bucket",
        "omvant_batches_in_flight", "omvant_cases_stuck",
    ):  # fmt: skip
        assert metric in used, metric


def test_every_alert_has_a_runbook_section_with_commands() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    runbook = RUNBOOK.read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    for group in rules["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbook.md"
            section = runbook.split(f"## {anchor_title(runbook, anchor)}", 1)[1].split("\n## ", 1)[
                0
            ]
            assert "omvant " in section, f"{rule['alert']}: its runbook section has no command"


def anchor_title(runbook: str, anchor: str) -> str:
    for line in runbook.splitlines():
        if line.startswith("## ") and re.sub(r"[^a-z0-9-]", "", line[3:].lower()) == anchor:
            return line[3:]
    raise AssertionError(anchor)
