"""``omvant bench`` runs its three measurements on a real broker and says whether it finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.integration


def test_a_small_bench_reports_every_promised_figure(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    database = postgres_url + "_bench"  # the bench creates its database if it is missing
    try:
        result = run_bench(redis_url, database, tmp_path)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database.rsplit("/", 1)[1]}" WITH (FORCE)')
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["complete"] is True
    assert figures["broker"] == "redis" and figures["cases"] == 200
    assert figures["noop_msgs_per_s"] > 0 and figures["pipeline_cases_per_s"] > 0
    expected = figures["pipeline_cases_per_s"] / figures["noop_msgs_per_s"]
    assert figures["ratio"] == pytest.approx(expected, abs=0.002)
    assert figures["pipeline_p99_ms"] > 0 and figures["urgent_p99_ms"] >= figures["urgent_p50_ms"]


def run_bench(broker: str, database: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    omvant = str(Path(sys.executable).with_name("omvant"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    command = [
        omvant, "bench", "--broker", broker, "--database", database, "--cases", "200",
        "--noop-messages", "400", "--processes", "1", "--threads", "4",
        "--log-dir", str(tmp_path / "logs"), "--json",
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
