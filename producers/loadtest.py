"""Load replay: record a send burst as JSONL with relative times, replay it against a test
environment at a chosen rate or speed-up, and report throughput and latency percentiles.

A recording line is ``{"t": seconds after the first send, "case": <SendCase v2 record>}``.
``record_from_database`` takes a real burst from the cases table (the fields the table keeps:
clinic, sender, template, resident, priority, batch); ``record_synthetic`` makes one from the
demo's realistic scenario. Replaying rewrites idempotency keys and batch ids so that every run
makes new cases.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from contracts.send_case import SendCaseV2
from producers.bench import epoch_seconds, percentile
from producers.processes import DramatiqWorkers, worker_env
from producers.scenario import build_dispatch
from workers.broker import build_broker, forget_queues
from workers.enqueue import push_chunk
from workers.queues import all_queues, queue_name
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import ensure_database, make_engine, upgrade
from workers.store.schema import cases

Say = Callable[[str], None]


@dataclass(frozen=True)
class Send:
    """One recorded send: when (seconds after the first) and what."""

    t: float
    case: SendCaseV2


def write_recording(path: Path, sends: list[Send]) -> int:
    """Write ``sends`` as JSONL; returns how many lines."""
    with path.open("w", encoding="utf-8") as out:
        for send in sends:
            record = {"t": round(send.t, 4), "case": send.case.model_dump(mode="json")}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(sends)


class RecordingError(ValueError):
    """A recording that cannot be replayed; the message names the line and why."""


def read_recording(path: Path) -> list[Send]:
    """Read a recording, sorted by time.

    Raises
    ------
    RecordingError
        A line that is not ``{"t": seconds, "case": SendCase}``, or a file that is not UTF-8.
    """
    sends = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    sends.append(_send(number, line))
    except UnicodeDecodeError:
        raise RecordingError(f"{path.name}: not UTF-8") from None
    return sorted(sends, key=lambda s: s.t)


def _send(number: int, line: str) -> Send:
    try:
        record = json.loads(line)
        return Send(float(record["t"]), SendCaseV2.model_validate(record["case"]))
    except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        # ValidationError is a ValueError; its text may quote a personnummer: name the field.
        what = (
            f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}"
            if isinstance(exc, ValidationError)
            else type(exc).__name__
        )
        raise RecordingError(
            f"line {number}: not a recorded send ({{'t': seconds, 'case': SendCase}}): {what}"
        ) from None


def record_synthetic(count: int, seconds: float, *, seed: int) -> list[Send]:
    """A burst of ``count`` realistic sends arriving at random over ``seconds``."""
    rng = random.Random(seed)
    requests = build_dispatch(count, seed=seed, batch_id=f"burst-{seed}")
    times = sorted(rng.uniform(0, seconds) for _ in requests)
    return [Send(t, r) for t, r in zip(times, requests, strict=True)]


def record_from_database(
    database_url: str, *, since: dt.datetime, until: dt.datetime, limit: int = 1_000_000
) -> list[Send]:
    """The cases received between ``since`` and ``until``, as a recording."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cases)
            .where(cases.c.received_at >= since, cases.c.received_at < until)
            .order_by(cases.c.received_at)
            .limit(limit)
        ).all()
    engine.dispose()
    if not rows:
        return []
    first = epoch_seconds(rows[0].received_at)
    return [
        Send(
            epoch_seconds(row.received_at) - first,
            SendCaseV2(
                clinic_hsa_id=row.clinic_hsa_id,
                sender_hsa_id=row.sender_hsa_id,
                template_id=row.template_id,
                personnummer=row.personnummer,
                priority=row.priority,
                idempotency_key=row.idempotency_key,
                batch_id=row.batch_id,
            ),
        )
        for row in rows
    ]


def _retagged(send: Send, run: str) -> SendCaseV2:
    batch = f"{run}-{send.case.batch_id}"[:64] if send.case.batch_id else None
    return send.case.model_copy(
        update={
            "case_id": None,
            "idempotency_key": f"{run}:{send.case.idempotency_key}"[:200],
            "batch_id": batch,
        }
    )


def ticks(
    sends: list[Send], speedup: float, rate: float | None, tick: float
) -> Iterator[tuple[float, list[Send]]]:
    """The sends grouped into ticks of ``tick`` seconds of replay time."""
    due = [(index / rate if rate else send.t / speedup, send) for index, send in enumerate(sends)]
    group: list[Send] = []
    start = 0.0
    for at, send in due:
        if group and at >= start + tick:
            yield start, group
            group = []
        if not group:
            start = at
        group.append(send)
    if group:
        yield start, group


def _rows_of_run(conn: sa.Connection, run: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(cases.c.id, cases.c.state, cases.c.notified_at, cases.c.updated_at).where(
                cases.c.idempotency_key.startswith(f"{run}:")
            )
        )
    )


def replay(
    settings: Settings,
    sends: list[Send],
    *,
    speedup: float = 1.0,
    rate: float | None = None,
    processes: int = 2,
    threads: int = 8,
    timeout: float = 1800.0,
    log_dir: Path = Path("loadtest-logs"),
    say: Say | None = None,
) -> dict[str, Any]:
    """Replay ``sends`` against fresh queues with worker processes; return the figures."""
    say = say or (lambda _m: None)
    run = f"lt{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"queue_prefix": f"{run}."})
    log_dir.mkdir(parents=True, exist_ok=True)
    ensure_database(settings.database_url)
    upgrade(settings.database_url)
    broker = build_broker(settings.broker_url)
    engine = make_engine(settings.database_url)
    queues = [queue_name(q, settings.queue_prefix) for q in all_queues()]
    sent_at: dict[str, float] = {}
    try:
        with DramatiqWorkers(
            "workers.app",
            queues,
            worker_env(settings),
            processes=processes,
            threads=threads,
            log_path=log_dir / f"{run}-workers.log",
        ):
            time.sleep(2.0)  # let the workers connect before the clock starts
            say(f"replaying {len(sends)} sends as run {run}")
            started = time.time()
            origin = time.monotonic()
            for at, group in ticks(sends, speedup, rate, tick=0.01):
                wait = origin + at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                requests = [_retagged(s, run) for s in group]
                push_chunk(broker, requests, correlation_id=run, prefix=settings.queue_prefix)
                now = time.time()
                for request in requests:
                    sent_at[request.resolved_case_id()] = now
            send_seconds = time.time() - started
            say(f"sent in {send_seconds:.1f} s; waiting for the cases to settle")
            deadline = time.monotonic() + timeout
            rows: list[Any] = []
            done = 0
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    rows = _rows_of_run(conn, run)
                    done = notifications.count_settled(conn, case_ids=[r.id for r in rows])
                if done >= len(sends):
                    break
                time.sleep(0.5)
            with engine.connect() as conn:  # read again: never behind what was counted
                rows = _rows_of_run(conn, run)
    finally:
        forget_queues(broker, queues)
        broker.close()
        engine.dispose()
    latencies = [
        (epoch_seconds(r.notified_at) - sent_at[r.id]) * 1000
        for r in rows
        if r.notified_at is not None and r.id in sent_at
    ]
    states: dict[str, int] = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    finished = max((epoch_seconds(r.updated_at) for r in rows), default=time.time())
    seconds = finished - started

    def ms(share: float) -> float | None:
        value = percentile(latencies, share)
        return None if value is None else round(value, 1)

    return {
        "sends": len(sends),
        "settled": done,
        "states": states,
        "send_seconds": round(send_seconds, 2),
        "seconds": round(seconds, 2),
        "cases_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "latency_p50_ms": ms(0.50),
        "latency_p95_ms": ms(0.95),
        "latency_p99_ms": ms(0.99),
        "sim_latency_ms": settings.sim_latency_ms,
        "sim_failure_rate": settings.sim_failure_rate,
        "run": run,
    }
