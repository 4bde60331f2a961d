"""``omvant bench``: the pipeline's speed against dramatiq's own, in one run.

On the same broker and database, with the same worker processes, it measures:

a. a bare dramatiq no-op actor draining N messages (msgs/s): the queue is filled first, then
   the workers start, with dramatiq's own default of 8 threads a process (``noop_threads``,
   whatever the pipeline's threads: on Redis the drain with 4 halves, and a ratio to it would
   flatter the pipeline); the rate is counted from the first message taken to the queue's end;
b. an N-case dispatch (one template, drawn test residents) through all five stages
   (cases/s from the first chunk enqueued to the last case settled; each notified case's
   latency from its *enqueue time* -- when the broker confirmed the message carrying it -- to
   its ``notified_at``);
c. single urgent cases sent every 100 ms while (b) runs: latency from enqueue to notified;
d. (a) again after (b), so a change in the machine's load during the run shows as two ratios;
e. CPU time per case (``producers/bench_cpu.py``) of the worker processes, per stage when each
   stage runs in worker processes of its own (``layout="stages"``, the default), of the local
   PostgreSQL cluster and of the local broker, over (b)'s window (the urgent lanes run in a
   worker process of their own with ``urgent_worker``: ``urgent-lanes``), and of (b)'s enqueue
   alone (``enqueue_cpu_ms_per_case``: the dispatching thread's CPU, the urgent probe's not);
f. with ``profile=STAGE``, a cProfile of that stage's worker processes
   (``producers/bench_profile.py``).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers import bench_cpu, bench_database, bench_hops
from producers.bench_workers import (
    BY_STAGE,
    URGENT_GROUP,
    merge_profile,
    start_workers,
    stop_all,
)
from producers.client import OmvantClient, Recipient
from producers.processes import DramatiqWorkers, worker_env
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.population import draw_residents, test_personnummer
from workers.broker import broker_kind, build_broker, forget_queues, queue_depth
from workers.enqueue import push_chunk
from workers.queues import all_queues, queue_name
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import ensure_database, make_engine, upgrade
from workers.store.schema import cases as cases_table
from workers.store.sql import aware_utc

NOOP_QUEUE = "bench-noop"
"""The queue of the no-op yardstick actor (``producers/bench_noop.py``)."""
NOOP_ACTOR = "bench_noop"

Say = Callable[[str], None]

CLINIC = "SE2321000016-VC01"
URGENT_CLINIC = "SE2321000016-VC02"
SENDER = "SE2321000016-S101"
TEMPLATE = "kallelse-screening"
FRAGMENTS = ("tid", "avboka")
NOT_LOCAL = "not local"


def threads_for_cores(cores: int | None = None) -> int:
    """Threads per worker process when none are asked for: two per core this process may run
    on, 4 to 8. Every stage has processes of its own, so on 2 cores 8 threads each put about
    50 threads (and their PostgreSQL backends) on 2 cores: the urgent cases then waited behind
    them (2 December, 100,000 cases on RabbitMQ: 4 threads gave urgent p99 0.51 s against
    1.16 s with 8, and 1,202 cases/s against 1,106)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(4, min(8, 2 * (cores or os.cpu_count() or 1)))


@dataclass(frozen=True)
class BenchConfig:
    """How big and how parallel the run is."""

    cases: int = 100_000
    noop_messages: int = 100_000
    processes: int = 2
    threads: int = field(default_factory=threads_for_cores)
    noop_threads: int = 8
    """Threads per process of the no-op drain (a): dramatiq's own default."""
    urgent_every: float = 0.1
    timeout: float = 3600.0
    log_dir: Path = Path("bench-logs")
    layout: str = BY_STAGE
    profile: str | None = None
    """A stage (``omvant worker`` name) to profile, or None."""
    idle_seconds: float = 5.0
    """How long the workers' idle CPU is measured before the dispatch."""
    profile_clock: str = "cpu"
    """``cpu`` (each thread's CPU time) or ``wall`` (waits included)."""
    urgent_worker: bool = True
    """The urgent lanes have a worker process of their own (``omvant worker --lanes urgent``)."""
    bulk_nice: int = 10
    """With ``urgent_worker``: the niceness added to the other worker processes."""
    urgent_processes: int = 1
    """With ``urgent_worker``: the urgent lanes' worker processes."""
    urgent_nice: int = 0
    urgent_threads: int | None = None
    """With ``urgent_worker``: threads per urgent lanes' process (default: ``threads`` per
    urgent lane)."""
    """With ``urgent_worker``: the urgent lanes' processes' niceness (below 0 needs the right)."""


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class NoopFigures:
    """What one no-op drain measured."""

    msgs_per_s: float
    cpu_ms_per_message: float | None
    load_average: tuple[float, float, float]


def measure_noop(settings: Settings, config: BenchConfig, say: Say, run: str) -> NoopFigures:
    """(a) msgs/s of a no-op actor draining a full queue, and its CPU per message."""
    import dramatiq

    name = queue_name(NOOP_QUEUE, settings.queue_prefix)
    filler = build_broker(settings.broker_url, confirm=False)
    filler.declare_queue(name)
    say(f"filling {name} with {config.noop_messages} no-op messages ({run})")
    for _ in range(config.noop_messages):
        filler.enqueue(
            dramatiq.Message(queue_name=name, actor_name=NOOP_ACTOR, args=(), kwargs={}, options={})
        )
    deadline = time.monotonic() + 60
    while queue_depth(filler, name) < config.noop_messages and time.monotonic() < deadline:
        time.sleep(0.05)
    env = worker_env(settings)
    say(f"draining with {config.processes} processes x {config.noop_threads} threads")
    with DramatiqWorkers(
        "producers.bench_noop",
        [name],
        env,
        processes=config.processes,
        threads=config.noop_threads,
        log_path=config.log_dir / f"noop-workers-{run}.log",
    ) as workers:
        deadline = time.monotonic() + config.timeout
        depth = queue_depth(filler, name)
        while depth >= config.noop_messages and time.monotonic() < deadline:
            time.sleep(0.005)
            depth = queue_depth(filler, name)
        cpu_start = bench_cpu.tree_seconds(workers.pid)
        started, at_start = time.monotonic(), depth
        while depth > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            depth = queue_depth(filler, name)
        seconds = time.monotonic() - started
        cpu_end = bench_cpu.tree_seconds(workers.pid)
    filler.close()
    cpu = (
        None
        if cpu_start is None or cpu_end is None or not at_start
        else (round((cpu_end - cpu_start) * 1000 / at_start, 4))
    )
    return NoopFigures(
        msgs_per_s=at_start / seconds if seconds > 0 else 0.0,
        cpu_ms_per_message=cpu,
        load_average=_load(),
    )


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


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
    return aware_utc(value).timestamp()


def _index(idempotency_key: str) -> int:
    """The position in the dispatch list of a dispatch case (its key is ``<batch>:<index>``)."""
    return int(idempotency_key.rsplit(":", 1)[1])


def warm_up(client: OmvantClient, engine: sa.Engine, settings: Settings) -> None:
    """Ten cases through every stage, so each process has its connections and caches."""
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


def measure_pipeline(settings: Settings, config: BenchConfig, say: Say) -> dict[str, Any]:
    """(b) and (c): the dispatch through the workers, with urgent cases alongside.

    The simulated providers' rate limits are lifted: the benchmark measures what the pipeline
    can carry, and a deployment's SMS/e-mail rate is a policy set per provider contract.
    """
    env = worker_env(settings, OMVANT_SMS_PER_SECOND="0", OMVANT_EMAIL_PER_SECOND="0")
    engine = make_engine(settings.database_url)
    postmaster, backends = postgres_processes(engine, settings.database_url)
    workers = start_workers(
        settings,
        env,
        layout=config.layout,
        processes=config.processes,
        threads=config.threads,
        log_dir=config.log_dir,
        profile=config.profile,
        profile_clock=config.profile_clock,
        urgent_worker=config.urgent_worker,
        bulk_nice=config.bulk_nice,
        urgent_processes=config.urgent_processes,
        urgent_nice=config.urgent_nice,
        urgent_threads=config.urgent_threads,
        trace_dir=bench_hops.trace_dir(config.log_dir, settings.queue_prefix),
    )
    with ExitStack() as stack:
        stack.callback(stop_all, workers)
        client = stack.enter_context(OmvantClient(settings))
        say("warming up the pipeline workers")
        warm_up(client, engine, settings)
        roots = {name: w.pid for name, w in workers.items()}
        niceness = {name: bench_cpu.tree_niceness(pid) for name, pid in roots.items()}
        threads = {name: w.threads for name, w in workers.items()}
        idle = bench_cpu.idle_percent(roots, seconds=config.idle_seconds)
        batch_id = f"bench-{uuid.uuid4().hex[:12]}"
        residents = draw_residents(config.cases, seed=settings.seed)
        enqueued_at: list[float] = []

        def chunk_sent(n: int) -> None:
            now = time.time()
            enqueued_at.extend([now] * n)

        probe = UrgentProbe(settings, config.urgent_every)
        say(f"dispatching {config.cases} cases (urgent probe every {config.urgent_every} s)")
        window = bench_cpu.CpuWindow(
            roots,
            postmaster=postmaster,
            database_backends=backends,
            broker=bench_cpu.broker_pid(settings.broker_url),
        )
        window.start()
        written_before = bench_database.write_counters(engine)
        started = time.time()
        probe.start()
        enqueue_seconds, enqueue_cpu = _timed(
            lambda: client.dispatch(
                (Recipient(n, {}) for n in residents),
                template_id=TEMPLATE,
                clinic_hsa_id=CLINIC,
                sender_hsa_id=SENDER,
                fragments=FRAGMENTS,
                total=config.cases,
                name="bench",
                batch_id=batch_id,
                progress=chunk_sent,
            ),
            started,
        )
        say(f"enqueued in {enqueue_seconds:.1f} s; waiting for every case to settle")
        deadline = time.monotonic() + config.timeout
        done = _settled(engine, batch_id)
        while done < config.cases and time.monotonic() < deadline:
            time.sleep(1.0)
            window.sample()
            done = _settled(engine, batch_id)
            say(f"settled {done}/{config.cases}")
        window.stop()
        window_seconds = time.time() - started
        carried = config.cases + len(probe.sent)
        probe.stop_event.set()
        probe.join(timeout=5)
        time.sleep(1.0)
    time.sleep(1.0)  # the workers' backends report their counts as they end
    written = bench_database.per_case(
        written_before, bench_database.write_counters(engine), carried
    )
    profile = None
    if config.profile:
        profile = {**merge_profile(config.log_dir, config.profile), "clock": config.profile_clock}
    figures = {
        **outcome(engine, batch_id, probe.sent, enqueued_at, started),
        "urgent_breakdown": bench_hops.breakdown(
            engine, probe.sent, config.log_dir, settings.queue_prefix, started
        ),
    }
    engine.dispose()
    return {
        **figures,
        "enqueue_seconds": round(enqueue_seconds, 2),
        "urgent_sent": len(probe.sent),
        "enqueue_cases_per_s": (
            round(config.cases / enqueue_seconds, 1) if enqueue_seconds > 0 else None
        ),
        "enqueue_cpu_ms_per_case": round(enqueue_cpu * 1000 / config.cases, 4),
        "cpu_ms_per_case": {
            **cpu_figures(window, list(workers), carried, window_seconds, config),
            "idle_cpu_percent": idle,
        },
        "postgres_writes_per_case": written,
        "profile": profile,
        "worker_niceness": niceness,
        "worker_threads": threads,
    }


def _timed(send: Callable[[], object], started: float) -> tuple[float, float]:
    """Seconds from ``started`` (``time.time()``) until ``send()`` returned, and the CPU
    seconds of the calling thread in ``send()`` (the dispatch's own, not the urgent probe's)."""
    cpu = time.thread_time()
    send()
    return time.time() - started, time.thread_time() - cpu


def outcome(
    engine: sa.Engine,
    batch_id: str,
    urgent_sent: dict[str, float],
    enqueued_at: list[float],
    started: float,
) -> dict[str, Any]:
    """(b)'s rate and latencies and (c)'s, read back from the cases table."""
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
                cases_table.c.id.in_(list(urgent_sent))
            )
        ).all()
    settled = _settled(engine, batch_id)
    finished = max((epoch_seconds(r.updated_at) for r in rows), default=time.time())
    latencies = [
        (epoch_seconds(r.notified_at) - enqueued_at[int(r.idempotency_key.rsplit(":", 1)[1])])
        * 1000
        for r in rows
        if r.notified_at is not None
    ]
    urgent = [
        (epoch_seconds(r.notified_at) - urgent_sent[r.id]) * 1000
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
        "pipeline_p50_ms": _ms(percentile(latencies, 0.50)),
        "pipeline_p95_ms": _ms(percentile(latencies, 0.95)),
        "pipeline_p99_ms": _ms(percentile(latencies, 0.99)),
        "urgent_p50_ms": _ms(percentile(urgent, 0.50)),
        "urgent_p99_ms": _ms(percentile(urgent, 0.99)),
        "urgent_notified": len(urgent),
        "settled": settled,
        "states": states,
        "batch_id": batch_id,
    }


def postgres_processes(
    engine: sa.Engine, database_url: str
) -> tuple[int | None, Callable[[], list[int]] | None]:
    """The local PostgreSQL cluster's postmaster and a way to list the bench database's
    backends; (None, None) when the database is not a PostgreSQL server on this machine."""
    if engine.dialect.name != "postgresql" or not bench_cpu.is_local(database_url):
        return None, None
    with engine.connect() as conn:
        backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    stat = bench_cpu.read_stat(int(backend))
    if stat is None:  # another PID namespace (a container): its processes are not ours to read
        return None, None

    def backends() -> list[int]:
        with engine.connect() as conn:
            query = sa.text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [int(pid) for pid in conn.execute(query).scalars()]

    return stat.ppid, backends


HOW_MEASURED = (
    "CPU time (user+system from /proc/<pid>/stat, reaped children included) used between the "
    "first chunk enqueued and the last case settled, divided by the cases carried (the "
    "dispatch's plus the urgent probe's). {layout} postgres: every process of the local "
    "cluster (other clients of a shared server included); postgres_bench_database: the "
    "backends connected to the bench's database; broker: the process listening on the "
    "broker's port; dispatching_client: the bench's own process (enqueue, urgent probe, polling)."
)


def cpu_figures(
    window: bench_cpu.CpuWindow,
    groups: list[str],
    carried: int,
    window_seconds: float,
    config: BenchConfig,
) -> dict[str, Any]:
    """(e): CPU milliseconds per case, per worker group and for the servers."""

    def per_case(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000 / carried, 4)

    by_group = {name: window.seconds(name) for name in groups}
    known = [v for v in by_group.values() if v is not None]
    layout = (
        "stages: one dramatiq worker process per stage, each its own tree."
        if config.layout == BY_STAGE
        else 'shared: every worker process consumes every stage ("all"); no per-stage split.'
    ) + (
        " urgent-lanes: one process consuming every stage's urgent lane (the stages' own"
        " processes consume the other lanes)."
        if config.urgent_worker
        else ""
    )
    return {
        "stages": {name: per_case(seconds) for name, seconds in by_group.items()},
        "workers_total": per_case(sum(known)) if len(known) == len(by_group) else None,
        "postgres": per_case(window.seconds("postgres"))
        if "postgres" in window.roots
        else NOT_LOCAL,
        "postgres_bench_database": per_case(window.backend_seconds())
        if window.database_backends is not None
        else NOT_LOCAL,
        "broker": per_case(window.seconds("broker")) if "broker" in window.roots else NOT_LOCAL,
        "dispatching_client": per_case(window.own_seconds),
        "cases_counted": carried,
        "window_seconds": round(window_seconds, 2),
        "layout": config.layout,
        "how": HOW_MEASURED.format(layout=layout),
    }


def run_bench(settings: Settings, config: BenchConfig, say: Say | None = None) -> dict[str, Any]:
    """(a), then (b) with (c) and (e), then (a) again, on a fresh queue prefix: the figures."""
    say = say or (lambda _m: None)
    load_at_start = _load()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = settings.model_copy(update={"queue_prefix": prefix})
    config.log_dir.mkdir(parents=True, exist_ok=True)
    ensure_database(settings.database_url)
    upgrade(settings.database_url)
    janitor = build_broker(settings.broker_url)
    kind = broker_kind(janitor)
    try:
        before = measure_noop(settings, config, say, "before")
        say(f"no-op actor: {before.msgs_per_s:.0f} msgs/s")
        pipeline = measure_pipeline(settings, config, say)
        after = measure_noop(settings, config, say, "after")
        say(f"no-op actor after the pipeline: {after.msgs_per_s:.0f} msgs/s")
    finally:
        names = [queue_name(q, prefix) for q in [*all_queues(), NOOP_QUEUE]]
        forget_queues(janitor, names)
        janitor.close()
    load = _load()
    rate = pipeline["pipeline_cases_per_s"]
    cpu = pipeline.pop("cpu_ms_per_case")
    written = pipeline.pop("postgres_writes_per_case")
    profile = pipeline.pop("profile")
    niceness = pipeline.pop("worker_niceness")
    threads = pipeline.pop("worker_threads")
    return {
        "noop_msgs_per_s": round(before.msgs_per_s, 1),
        "pipeline_cases_per_s": rate,
        "ratio": _ratio(rate, before.msgs_per_s),
        "pipeline_p99_ms": pipeline["pipeline_p99_ms"],
        "urgent_p50_ms": pipeline["urgent_p50_ms"],
        "urgent_p99_ms": pipeline["urgent_p99_ms"],
        "broker": kind,
        "cases": config.cases,
        "complete": pipeline["settled"] >= config.cases,
        "database": make_engine(settings.database_url).dialect.name,
        "processes": config.processes,
        "threads": config.threads,
        "noop_threads": config.noop_threads,
        "chunk_size": settings.chunk_size,
        "bulk_chunk_size": settings.bulk_chunk_size,
        "noop_messages": config.noop_messages,
        "load_average_1m_at_end": load[0],
        "layout": config.layout,
        "urgent_worker": config.urgent_worker,
        "bulk_nice": config.bulk_nice if config.urgent_worker else 0,
        "worker_niceness": niceness,
        "urgent_processes": config.urgent_processes if config.urgent_worker else 0,
        "urgent_threads": threads.get(URGENT_GROUP, 0),
        "enqueue_cases_per_s": pipeline["enqueue_cases_per_s"],
        "enqueue_cpu_ms_per_case": pipeline["enqueue_cpu_ms_per_case"],
        "cpu_ms_per_case": cpu,
        "postgres_writes_per_case": written,
        "noop_before": _noop(before, rate),
        "noop_after": _noop(after, rate),
        "load_average": {"start": list(load_at_start), "end": list(load)},
        "profile": profile,
        "details": pipeline,
    }


def _ratio(rate: float, noop: float) -> float | None:
    return round(rate / noop, 3) if noop else None


def _noop(figures: NoopFigures, pipeline_rate: float) -> dict[str, Any]:
    return {
        "msgs_per_s": round(figures.msgs_per_s, 1),
        "ratio": _ratio(pipeline_rate, figures.msgs_per_s),
        "cpu_ms_per_message": figures.cpu_ms_per_message,
        "load_average_at_end": list(figures.load_average),
    }
