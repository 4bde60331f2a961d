"""``omvant demo``: the whole pipeline in one process on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

from producers.demo import run_demo
from tests.processes import run_omvant
from workers.settings import Settings


def test_the_demo_brings_every_case_to_a_final_state(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", blob_dir=tmp_path / "b")
    summary = run_demo(settings, count=400, open_share=0.5)
    assert summary["cases"] == 400
    assert summary["in_flight"] == 0
    assert summary["dead_lettered"] == 0
    assert summary["failed"] == 0
    rejected = sum(summary["rejected"].values())
    assert summary["delivered"] + rejected == 400
    assert len(summary["rejected"]) >= 5
    assert summary["notified"]["sms"] > 0 and summary["notified"]["email"] > 0
    assert 0 < summary["read"] < summary["delivered"]
    assert summary["read"] + summary["unread"] == summary["delivered"]


def test_omvant_demo_json_prints_the_promised_summary(tmp_path: Path) -> None:
    result = run_omvant(
        "demo",
        "--cases",
        "150",
        "--json",
        settings={"XDG_DATA_HOME": str(tmp_path / "data")},
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in (
        "cases",
        "delivered",
        "rejected",
        "notified",
        "read",
        "unread",
        "dead_lettered",
        "seconds",
    ):
        assert key in summary
    assert summary["cases"] == 150
    assert set(summary["notified"]) == {"sms", "email"}
    assert summary["home"] == str(tmp_path / "data" / "omvant")
    home = tmp_path / "data" / "omvant"
    assert (home / "omvant.db").exists(), "the embedded default is SQLite in the data folder"
    assert not (tmp_path / "omvant.db").exists(), "nothing is written to the working folder"


def test_the_demo_ignores_deployment_settings_that_reach_outside(tmp_path: Path) -> None:
    """A deployment's shell (inbox events URL, queue prefix, outside systems' URLs) set and no
    broker or database given: the demo runs its own pipeline, says what it ignored, finishes."""
    from tests.ports import refusing_port

    with refusing_port() as dead:
        outside = {
            "OMVANT_INBOX_EVENTS_URL": f"amqp://guest:guest@127.0.0.1:{dead}//",
            "OMVANT_QUEUE_PREFIX": "deployment-",
            "OMVANT_INBOX_URL": f"http://127.0.0.1:{dead}",
            "OMVANT_DIRECTORY_URL": f"http://127.0.0.1:{dead}",
            "OMVANT_EMAIL_API_URL": f"http://127.0.0.1:{dead}",
            "OMVANT_REDIS_URL": f"redis://127.0.0.1:{dead}/0",
        }
        result = run_omvant(
            "demo",
            "--cases",
            "60",
            "--json",
            settings={"XDG_DATA_HOME": str(tmp_path / "data"), **outside},
            cwd=tmp_path,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["in_flight"] == 0
    assert summary["read"] > 0, "the opened events reached the demo's own bridge"
    notes = [json.loads(line)["note"] for line in result.stderr.splitlines() if '"note"' in line]
    ignored = [n for n in notes if n["code"] == "demo-owns-settings"]
    assert len(ignored) == 1, result.stderr
    assert ignored[0]["ignored"] == sorted(outside)


def test_the_demo_uses_a_queue_prefix_of_its_own() -> None:
    from producers.demo import demo_settings

    settings, ignored = demo_settings(Settings(queue_prefix="deployment-", broker_url="memory://"))
    assert settings.queue_prefix.startswith("demo-")
    assert settings.inbox_events_url is None
    assert ignored == ["OMVANT_QUEUE_PREFIX"]
    assert demo_settings(Settings())[1] == []
