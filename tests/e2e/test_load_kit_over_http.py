"""The load testers' kit against a running API: ``omvant loadtest replay --http`` replays a
recorded burst through ``POST /v1/cases``, and the locust file posts and polls cases."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import OMVANT, omvant_serve, running_workers, worker_env
from tests.web.api_support import CLINIC_A, Key, make_key

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api(
    postgres_url: str, rabbitmq_url: str, queue_prefix: str, tmp_path: Path
) -> Iterator[tuple[str, Key]]:
    key = make_key(postgres_url, f"load-{queue_prefix.rstrip('.')}", [CLINIC_A], rate=10_000)
    env = worker_env(
        broker_url=rabbitmq_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
    )
    with (
        running_workers(env, tmp_path / "logs", threads=4),
        omvant_serve(env, tmp_path / "serve.log") as base,
    ):
        yield base, key


def test_loadtest_replay_over_http_sends_a_recorded_burst_and_follows_it(
    api: tuple[str, Key], tmp_path: Path
) -> None:
    base, key = api
    burst = tmp_path / "burst.jsonl"
    subprocess.run(
        [OMVANT, "loadtest", "record", str(burst), "--synthetic", "60", "--seconds", "2"],
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [
            OMVANT, "loadtest", "replay", str(burst), "--http", base, "--token", key.token,
            "--clinic", CLINIC_A, "--speedup", "2", "--timeout", "120", "--json",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["sends"] == figures["accepted"] == 60
    assert figures["settled"] == 60, figures
    assert figures["http_statuses"].get("202", 0) >= 1
    assert set(figures["states"]) <= {"notified", "rejected", "read"}
    assert figures["states"].get("notified", 0) > 30  # the burst's faults are a few per cent
    assert figures["latency_p50_ms"] is not None and figures["cases_per_s"] > 0


def test_the_locust_file_posts_cases_and_sees_them_settle(
    api: tuple[str, Key], tmp_path: Path
) -> None:
    base, key = api
    locust = str(Path(sys.executable).with_name("locust"))
    done = subprocess.run(
        [
            locust, "-f", str(ROOT / "deploy" / "load" / "locustfile.py"), "--headless",
            "--users", "3", "--spawn-rate", "3", "--run-time", "12s", "--host", base,
            "--csv", str(tmp_path / "run"), "--only-summary",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMVANT_API_TOKEN": key.token, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert int(rows["POST /v1/cases"]["Request Count"]) > 0
    assert int(rows["POST /v1/cases"]["Failure Count"]) == 0
    assert int(rows["GET /v1/cases/{id}"]["Failure Count"]) == 0
    assert int(rows["settled"]["Request Count"]) > 0
