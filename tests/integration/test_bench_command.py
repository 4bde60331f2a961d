"""``omvant bench`` runs its measurements on a real broker and says whether it finished.

One small run (300 cases) checks every promised figure: the rates and the ratio, the no-op
drain before and after, the load average, the enqueue rate, CPU per case for each stage's own
worker process, the servers' CPU, and the profile of one stage written to a file. Nothing here
is timed: the figures must be there, consistent and non-zero, not fast.
"""

from __future__ import annotations

import json
import os
import pstats
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from producers.bench_workers import URGENT_GROUP
from tests.conftest import PG_ADMIN_URL
from workers.routes import STAGES

pytestmark = pytest.mark.integration

CASES = 300
PROFILED = "notification-sending"
BUSY_STAGES = [s for s in STAGES if s != "read-receipts"]
"""The stages every case passes through (read receipts come only from residents reading)."""


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
    assert figures["broker"] == "redis" and figures["cases"] == CASES
    assert figures["noop_msgs_per_s"] > 0 and figures["pipeline_cases_per_s"] > 0
    expected = figures["pipeline_cases_per_s"] / figures["noop_msgs_per_s"]
    assert figures["ratio"] == pytest.approx(expected, abs=0.002)
    assert figures["pipeline_p99_ms"] > 0 and figures["urgent_p99_ms"] >= figures["urgent_p50_ms"]
    assert figures["enqueue_cases_per_s"] > 0
    assert 0 < figures["enqueue_cpu_ms_per_case"] < 1  # the dispatching thread's own CPU

    # the no-op drain before and after, each with its ratio; the load at start and end
    assert figures["noop_before"]["msgs_per_s"] == figures["noop_msgs_per_s"]
    for run in ("noop_before", "noop_after"):
        noop = figures[run]
        assert noop["msgs_per_s"] > 0 and noop["cpu_ms_per_message"] > 0
        assert noop["ratio"] == pytest.approx(
            figures["pipeline_cases_per_s"] / noop["msgs_per_s"], abs=0.002
        )
    assert all(len(figures["load_average"][at]) == 3 for at in ("start", "end"))

    # CPU per case of each stage's own worker process, their sum, the servers
    cpu = figures["cpu_ms_per_case"]
    assert cpu["layout"] == "stages" and "/proc/<pid>/stat" in cpu["how"]
    assert set(cpu["stages"]) == {*STAGES, URGENT_GROUP}
    assert cpu["stages"][URGENT_GROUP] > 0  # the urgent probe's cases ran in their own process
    # ... at the bench's own CPU priority, every other worker process 3 steps nicer
    niceness = figures["worker_niceness"]
    own = os.nice(0)
    assert niceness == {URGENT_GROUP: [own], **{s: [own + 3] for s in STAGES}}, niceness
    # ... with 2 threads (--threads) per urgent lane; the no-op drain with its own 3
    assert (figures["threads"], figures["noop_threads"]) == (2, 3)
    assert figures["urgent_threads"] == 2 * len(BUSY_STAGES)
    assert all(cpu["stages"][s] > 0 for s in BUSY_STAGES), cpu["stages"]
    assert cpu["workers_total"] == pytest.approx(sum(cpu["stages"].values()), abs=0.01)
    assert cpu["cases_counted"] >= CASES
    for server in ("postgres", "postgres_bench_database", "broker"):
        assert cpu[server] == "not local" or cpu[server] > 0, (server, cpu[server])
    assert cpu["dispatching_client"] > 0
    assert set(cpu["idle_cpu_percent"]) == {*STAGES, URGENT_GROUP}
    written = figures["postgres_writes_per_case"]  # PostgreSQL's own counters of the database
    assert written["commits"] > 0 and written["rows_updated"] > 0 and written["rows_inserted"] > 0

    # the profile of one stage, written where the bench says
    profile = figures["profile"]
    assert profile["stage"] == PROFILED and profile["processes"] >= 1
    stats = pstats.Stats(profile["pstats"])
    profiled_files = {path for path, _line, _name in stats.stats}  # type: ignore[attr-defined]
    assert any(path.endswith("workers/notification_sending.py") for path in profiled_files)
    assert "notification_sending.py" in Path(profile["summary"]).read_text()
    assert f"profile of {PROFILED}: {profile['pstats']}" in result.stderr


def test_the_bench_refuses_an_unknown_stage_to_profile(tmp_path: Path) -> None:
    command = [
        omvant(), "bench", "--broker", "redis://127.0.0.1:6379/0", "--profile", "no-such-stage",
        "--log-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "unknown stage 'no-such-stage'" in result.stderr


def test_the_bench_refuses_a_log_dir_it_cannot_make(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    command = [
        omvant(), "bench", "--broker", "redis://127.0.0.1:6379/0", "--log-dir", str(taken),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert f"cannot use --log-dir {taken}" in result.stderr
    assert "Traceback" not in result.stderr


def omvant() -> str:
    return str(Path(sys.executable).with_name("omvant"))


def run_bench(broker: str, database: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    command = [
        omvant(), "bench", "--broker", broker, "--database", database, "--cases", str(CASES),
        "--noop-messages", "200", "--processes", "1", "--threads", "2",
        "--noop-threads", "3",
        # 60 messages a stage, not one 300-case chunk: a stage's CPU is read in 10 ms ticks,
        # and attachment checking one chunk of cases without files took less than one
        "--bulk-chunk-size", "5",
        "--urgent-every", "1", "--urgent-worker", "--bulk-nice", "3",
        "--log-dir", str(tmp_path / "logs"),
        "--profile", PROFILED,
        "--json",
    ]  # fmt: skip
    # A bound, not a timing: booting seven worker processes takes minutes on a loaded machine
    # (and the urgent probe sends one case a second, not ten: on a machine that gives the run
    # a few per cent of a core, ten single-case messages a second are more than it carries).
    # On time-out the bench is interrupted (SIGINT) so it stops its worker processes itself.
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=180)
        pytest.fail(f"omvant bench did not finish in 30 minutes: {stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
