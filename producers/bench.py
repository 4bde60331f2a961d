"""``omvant bench``: the pipeline's speed against dramatiq's own, in one run.

On the same broker and database, with the same worker processes and threads, it measures:

a. a bare dramatiq no-op actor draining N messages (msgs/s): the queue is filled first, then
   the workers start; the rate is counted from the first message taken to the queue's end;
b. an N-case dispatch (one template, drawn test residents) through all five stages
   (cases/s from the first chunk enqueued to the last case settled; each notified case's
   latency from its *enqueue time* -- when the broker confirmed the message carrying it -- to
   its ``notified_at``);
c. single urgent cases sent every 100 ms while (b) runs: latency from enqueue to notified.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers.client import OmvantClient, Recipient
from producers.intake import push_chunk
from producers.processes import DramatiqWorkers, worker_env
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.population import draw_residents, test_personnummer
from workers.broker import broker_kind, build_broker, forget_queues, queue_depth
from workers.queues import all_queues, queue_name
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import ensure_database, make_engine, upgrade
from workers.store.schema import cases as cases_table

NOOP_QUEUE = "bench-noop"
"""The queue of the no-op yardstick actor (``producers/bench_noop.py``)."""
NOOP_ACTOR = "bench_noop"

Say = Callable[[str], None]

CLINIC = "SE2321000016-VC01"
URGENT_CLINIC = "SE2321000016-VC02"
SENDER = "SE2321000016-S101"
TEMPLATE = "kallelse-screening"
FRAGMENTS = ("tid", "avboka")


@dataclass(frozen=True)
class BenchConfig:
    """How big and how parallel the run is."""

    cases: int = 100_000
    noop_messages: int = 100_000
    processes: int = 2
    threads: int = 8
    urgent_every: float = 0.1
    timeout: float = 3600.0
    log_dir: Path = Path("bench-logs")


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def measure_noop(settings: Settings, config: BenchConfig, say: Say) -> float:
    """(a) msgs/s of a no-op actor draining a full queue."""
    import dramatiq

    name = queue_name(NOOP_QUEUE, settings.queue_prefix)
    filler = build_broker(settings.broker_url, confirm=False)
    filler.declare_queue(name)
    say(f"filling {name} with {config.noop_messages} no-op messages")
    for _ in range(config.noop_messages):
        filler.enqueue(
            dramatiq.Message(queue_name=name, actor_name=NOOP_ACTOR, args=(), kwargs={}, options={})
        )
    deadline = time.monotonic() + 60
    while queue_depth(filler, name) < config.noop_messages and time.monotonic() < deadline:
        time.sleep(0.05)
    env = worker_env(settings)
    say(f"draining with {config.processes} processes x {config.threads} threads")
    with DramatiqWorkers(
        "producers.bench_noop",
        [name],
        env,
        processes=config.processes,
        threads=config.threads,
        log_path=config.log_dir / "noop-workers.log",
    ):
        deadline = time.monotonic() + config.timeout
        depth = queue_depth(filler, name)
        while depth >= config.noop_messages and time.monotonic() < deadline:
            time.sleep(0.005)
            depth = queue_depth(filler, name)
        started, at_start = time.monotonic(), depth
        while depth > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            depth = queue_depth(filler, name)
        seconds = time.monotonic() - started
    filler.close()
    return at_start / seconds if seconds > 0 else 0.0


def reachable_residents(settings: Settings, count: int) -> list[str]:
    """Test residents the simulated directory can reach (for the urgent probe)."""
    directory = SimulatedAccountDirectory(settings.seed)
    found = []
    for number in test_personnummer():
        account = directory.account(number)
        if account.status == AccountStatus.ACTIVE and account.channels:
            found.append(number)
            if len(found) >= count:
                break
    return found


class UrgentProbe(threading.Thread):
    """Sends one urgent case every ``every`` seconds until stopped; remembers when."""

    def __init__(self, settings: Settings, every: float) -> None:
        super().__init__(name="urgent-probe", daemon=True)
        self.settings = settings
        self.every = every
        self.sent: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.residents = reachable_residents(settings, 200)

    def run(self) -> None:
        broker = build_broker(self.settings.broker_url)
        index = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            key = f"{self.settings.queue_prefix}urgent:{index}"
            request = SendCaseV2(
                clinic_hsa_id=URGENT_CLINIC,
                sender_hsa_id=SENDER,
                template_id="meddelande-om-provsvar",
                fragments=["normalt"],
                personnummer=self.residents[index % len(self.residents)],
                priority="urgent",
                idempotency_key=key,
            )
            push_chunk(
                broker, [request], correlation_id=key[:64], prefix=self.settings.queue_prefix
            )
            self.sent[request.resolved_case_id()] = time.time()
            index += 1
            next_at += self.every
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        broker.close()


def _settled(engine: sa.Engine, batch_id: str) -> int:
    with engine.connect() as conn:
        return notifications.count_settled(conn, batch_id=batch_id)


def epoch_seconds(value: dt.datetime) -> float:
    """Seconds since the epoch of a (naive means UTC) timestamp."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def _index(idempotency_key: str) -> int:
    """The position in the dispatch list of a dispatch case (its key is ``<batch>:<index>``)."""
    return int(idempotency_key.rsplit(":", 1)[1])


def measure_pipeline(settings: Settings, config: BenchConfig, say: Say) -> dict[str, Any]:
    """(b) and (c): the dispatch through the workers, with urgent cases alongside.

    The simulated providers' rate limits are lifted: the benchmark measures what the pipeline
    can carry, and a deployment's SMS/e-mail rate is a policy set per provider contract.
    """
    env = worker_env(settings, OMVANT_SMS_PER_SECOND="0", OMVANT_EMAIL_PER_SECOND="0")
    queues = [queue_name(q, settings.queue_prefix) for q in all_queues()]
    engine = make_engine(settings.database_url)
    with (
        DramatiqWorkers(
            "workers.app",
            queues,
            env,
            processes=config.processes,
            threads=config.threads,
            log_path=config.log_dir / "pipeline-workers.log",
        ),
        OmvantClient(settings) as client,
    ):
        say("warming up the pipeline workers")
        warm = client.dispatch(
            [Recipient(n, {}) for n in reachable_residents(settings, 10)],
            template_id=TEMPLATE,
            clinic_hsa_id=CLINIC,
            sender_hsa_id=SENDER,
            fragments=FRAGMENTS,
            total=10,
            name="bench warm-up",
        )
        deadline = time.monotonic() + 120
        while _settled(engine, warm.id) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        batch_id = f"bench-{uuid.uuid4().hex[:12]}"
        residents = draw_residents(config.cases, seed=settings.seed)
        enqueued_at: list[float] = []

        def chunk_sent(n: int) -> None:
            now = time.time()
            enqueued_at.extend([now] * n)

        probe = UrgentProbe(settings, config.urgent_every)
        say(f"dispatching {config.cases} cases (urgent probe every {config.urgent_every} s)")
        started = time.time()
        probe.start()
        client.dispatch(
            (Recipient(n, {}) for n in residents),
            template_id=TEMPLATE,
            clinic_hsa_id=CLINIC,
            sender_hsa_id=SENDER,
            fragments=FRAGMENTS,
            total=config.cases,
            name="bench",
            batch_id=batch_id,
            chunk_size=settings.chunk_size,
            progress=chunk_sent,
        )
        enqueue_seconds = time.time() - started
        say(f"enqueued in {enqueue_seconds:.1f} s; waiting for every case to settle")
        deadline = time.monotonic() + config.timeout
        done = _settled(engine, batch_id)
        while done < config.cases and time.monotonic() < deadline:
            time.sleep(1.0)
            done = _settled(engine, batch_id)
            say(f"settled {done}/{config.cases}")
        probe.stop_event.set()
        probe.join(timeout=5)
        time.sleep(1.0)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                cases_table.c.idempotency_key,
                cases_table.c.state,
                cases_table.c.notified_at,
                cases_table.c.updated_at,
            ).where(cases_table.c.batch_id == batch_id)
        ).all()
        urgent_rows = conn.execute(
            sa.select(cases_table.c.id, cases_table.c.notified_at).where(
                cases_table.c.id.in_(list(probe.sent))
            )
        ).all()
    settled = _settled(engine, batch_id)
    engine.dispose()
    finished = max((epoch_seconds(r.updated_at) for r in rows), default=time.time())
    latencies = [
        (epoch_seconds(r.notified_at) - enqueued_at[int(r.idempotency_key.rsplit(":", 1)[1])])
        * 1000
        for r in rows
        if r.notified_at is not None
    ]
    urgent = [
        (epoch_seconds(r.notified_at) - probe.sent[r.id]) * 1000
        for r in urgent_rows
        if r.notified_at is not None
    ]
    states: dict[str, int] = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    seconds = finished - started
    return {
        "pipeline_cases_per_s": round(len(rows) / seconds, 1) if seconds > 0 else 0.0,
        "pipeline_seconds": round(seconds, 2),
        "enqueue_seconds": round(enqueue_seconds, 2),
        "pipeline_p50_ms": _ms(percentile(latencies, 0.50)),
        "pipeline_p95_ms": _ms(percentile(latencies, 0.95)),
        "pipeline_p99_ms": _ms(percentile(latencies, 0.99)),
        "urgent_p50_ms": _ms(percentile(urgent, 0.50)),
        "urgent_p99_ms": _ms(percentile(urgent, 0.99)),
        "urgent_sent": len(probe.sent),
        "urgent_notified": len(urgent),
        "settled": settled,
        "states": states,
        "batch_id": batch_id,
    }


def run_bench(settings: Settings, config: BenchConfig, say: Say | None = None) -> dict[str, Any]:
    """Run (a), (b) and (c) on a fresh queue prefix; return the figures."""
    say = say or (lambda _m: None)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = settings.model_copy(update={"queue_prefix": prefix})
    config.log_dir.mkdir(parents=True, exist_ok=True)
    ensure_database(settings.database_url)
    upgrade(settings.database_url)
    janitor = build_broker(settings.broker_url)
    kind = broker_kind(janitor)
    try:
        noop = measure_noop(settings, config, say)
        say(f"no-op actor: {noop:.0f} msgs/s")
        pipeline = measure_pipeline(settings, config, say)
    finally:
        names = [queue_name(q, prefix) for q in [*all_queues(), NOOP_QUEUE]]
        forget_queues(janitor, names)
        janitor.close()
    load = os.getloadavg()
    return {
        "noop_msgs_per_s": round(noop, 1),
        "pipeline_cases_per_s": pipeline["pipeline_cases_per_s"],
        "ratio": round(pipeline["pipeline_cases_per_s"] / noop, 3) if noop else None,
        "pipeline_p99_ms": pipeline["pipeline_p99_ms"],
        "urgent_p50_ms": pipeline["urgent_p50_ms"],
        "urgent_p99_ms": pipeline["urgent_p99_ms"],
        "broker": kind,
        "cases": config.cases,
        "complete": pipeline["settled"] >= config.cases,
        "database": make_engine(settings.database_url).dialect.name,
        "processes": config.processes,
        "threads": config.threads,
        "chunk_size": settings.chunk_size,
        "noop_messages": config.noop_messages,
        "load_average_1m_at_end": round(load[0], 2),
        "details": pipeline,
    }
