"""The chaos suite as CI runs it: ``omvant chaos`` with 5,000 cases on each broker
(``OMVANT_TEST_CHAOS_CASES``), on servers of its own, judged at the simulators
(``producers/chaos/``). Larger runs are made by hand (``make chaos``, 20,000 cases by
default). Locally it skips when a server binary is missing; in CI (``CI=true``) it fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from producers.chaos.servers import RABBITMQ_BIN
from tests.conftest import server_missing
from tests.e2e.harness import OMVANT

pytestmark = [pytest.mark.e2e]

CASES = int(os.environ.get("OMVANT_TEST_CHAOS_CASES", "5000"))


def have(binary: str, *folders: str) -> bool:
    return bool(shutil.which(binary)) or any(Path(f, binary).exists() for f in folders)


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_dispatch_under_faults_loses_nothing_and_notifies_every_reachable_resident_once(
    broker: str, tmp_path: Path
) -> None:
    needed = [("redis-server",), ("pg_ctl", "/usr/lib/postgresql/15/bin")]
    if broker == "rabbitmq":
        needed.append(("rabbitmq-server", RABBITMQ_BIN))
    for binary, *folders in needed:
        if not have(binary, *folders):
            server_missing(f"{binary} (for a server of the suite's own)", FileNotFoundError(binary))
    done = subprocess.run(
        [OMVANT, "chaos", "--broker", broker, "--cases", str(CASES), "--json"],
        capture_output=True,
        text=True,
        timeout=1800,  # about 5 min at ease; 13 min at a load average of 80
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")},
    )
    assert done.stdout, done.stderr[-3000:]
    result = json.loads(done.stdout)
    record = os.environ.get("OMVANT_TEST_CHAOS_RECORD")  # a folder to keep the figures in
    if record:
        Path(record, f"chaos-{broker}-{CASES}.json").write_text(done.stdout, encoding="utf-8")
    misses = [c for c in result["checks"] if not c["ok"]]
    assert misses == [], (misses, done.stderr[-3000:])
    assert result["faults_ok"], result["faults"]
    faults = result["fault_counts"]
    assert faults["worker processes killed (kill -9), at least"] >= 10
    assert faults["broker restarts"] == faults["PostgreSQL crash-restarts"] == 1
    assert result["counts"]["cases"] == CASES
    assert result["counts"]["inbox_deliveries"] == result["counts"]["reachable"]
    assert done.returncode == 0
