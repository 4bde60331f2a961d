"""A dispatch from a CSV file through real worker processes, followed by ``omvant batches``,
with single urgent cases alongside; on RabbitMQ and on Redis, with PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from tests.e2e.harness import OMVANT, running_workers, wait_until, worker_env
from tests.residents_list import write_residents_csv
from workers.adapters import population
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.broker import build_broker
from workers.enqueue import push_chunk
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases

pytestmark = pytest.mark.e2e

RESIDENTS = 400
CLINIC = "SE2321000016-VC03"
SENDER = "SE2321000016-S101"


def omvant(env: dict[str, str], *args: str, timeout: float = 180, status: int = 0) -> str:
    done = subprocess.run(
        [OMVANT, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == status, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("broker_fixture", ["rabbitmq_url", "redis_url"])
def test_a_csv_dispatch_completes_with_the_counts_the_dry_run_predicted(
    broker_fixture: str,
    request: pytest.FixtureRequest,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
) -> None:
    broker_url = request.getfixturevalue(broker_fixture)
    upgrade(postgres_url)
    env = worker_env(
        broker_url=broker_url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
    )
    listing = write_residents_csv(
        tmp_path / "residents.csv",
        population.draw_residents(RESIDENTS, seed=31),
        extra_rows=[("19121212-1213", "Broken")],  # a broken check digit
    )
    common = ["--template", "kallelse-screening", "--clinic", CLINIC, "--sender", SENDER]
    predicted = json.loads(
        omvant(env, "dispatch", str(listing), *common, "--dry-run", "--json", status=1)
    )  # exit status 1: some lines would be rejected (the broken check digit at least)
    assert predicted["recipients"] == RESIDENTS + 1
    assert {
        "line": RESIDENTS + 2,
        "reason": "invalid-identity-number",
        "detail": "check-digit",
    } in (predicted["lines"])
    batch_id = f"{queue_prefix}csv"
    follower = subprocess.Popen(
        [
            *(OMVANT, "batches", "show", batch_id, "--follow", "--json"),
            *("--interval", "0.2", "--timeout", "300"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    # enqueued before any worker runs, so the follower sees the dispatch before it moves
    sent = json.loads(
        omvant(
            env,
            "dispatch",
            str(listing),
            *common,
            "--fragment",
            "tid",
            "--batch-id",
            batch_id,
            "--json",
        )
    )
    assert follower.stdout is not None
    first = json.loads(follower.stdout.readline())
    assert first["settled"] == 0
    with running_workers(env, tmp_path / "logs", processes=1, threads=4):
        assert sent["enqueued"] == RESIDENTS + 1
        # single urgent cases while the dispatch runs
        directory = SimulatedAccountDirectory(1177)
        urgent_residents = [
            n
            for n in population.test_personnummer()[:300]
            if directory.account(n).status == AccountStatus.ACTIVE and directory.account(n).channels
        ][:5]
        probe = build_broker(broker_url)
        for index, number in enumerate(urgent_residents):
            push_chunk(
                probe,
                [
                    SendCaseV2(
                        clinic_hsa_id="SE2321000016-VC01",
                        sender_hsa_id=SENDER,
                        template_id="meddelande-om-provsvar",
                        personnummer=number,
                        priority="urgent",
                        idempotency_key=f"{queue_prefix}urgent:{index}",
                    )
                ],
                correlation_id=f"{queue_prefix}urgent"[:64],
                prefix=queue_prefix,
            )
            time.sleep(0.05)
        probe.close()
        # read, not communicate(timeout=...): that reads the pipe past what readline() above
        # has buffered already, and lost the start of the next line whenever it was there
        out = follower.stdout.read()
        follower.wait(timeout=30)
        followed = [json.dumps(first), *out.splitlines()]
        engine = make_engine(postgres_url)

        def urgent_states() -> list[str]:
            with engine.connect() as conn:
                return sorted(
                    conn.execute(
                        sa.select(cases.c.state).where(
                            cases.c.idempotency_key.startswith(f"{queue_prefix}urgent:")
                        )
                    ).scalars()
                )

        # the urgent cases are not the dispatch's: they may settle just after it
        assert wait_until(
            lambda: urgent_states() == ["notified"] * len(urgent_residents), timeout=60
        ), urgent_states()
    snapshots = [json.loads(line) for line in followed]
    final = snapshots[-1]
    assert len(snapshots) >= 2  # it followed the dispatch while it ran
    assert final["settled"] == final["total"] == RESIDENTS + 1
    assert final["in_flight"] == 0
    assert final["rejected"] == predicted["not_reachable"]
    assert final["reached"]["notified"] == predicted["reachable"], final
    listed = json.loads(omvant(env, "batches", "list", "--json"))
    assert sent["batch_id"] in [b["id"] for b in listed]
    engine.dispose()
