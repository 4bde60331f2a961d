"""The fuzz suite that stays: a hostile corpus through every entrance of real processes.

``omvant worker``, ``omvant intake`` and ``omvant inbox-events`` run as processes against the
real broker (RabbitMQ, then Redis) and PostgreSQL. The corpus (``tests/e2e/fuzz_corpus.py``,
generated from a seed, valid cases mixed in) is published to the intake door of the broker (the
AMQP exchange, or the Redis stream), onto the stage queues (raw, as any client could), and to
the inbox's exchange. Asserted: no process exits or reports a failure it had to wait out, every
hostile message is recorded in ``rejected_messages`` with the reason its category must get,
every valid case settles, nothing reaches a dead-letter queue.

Another clinic (``OTHER_CLINIC``) has a case, a dispatch and a blob before the run; the corpus
reaches for them through the intake door (its case id as a request's ``case_id``, its batch id,
its blob) and a stage queue (a forged record naming its case). Asserted besides: each such
request ends in the case reason it must get (``batch-not-owned``, ``attachment-not-owned``) or
in a case of its own clinic, the forged record is ``case-not-owned``, the other clinic's case row
and history are exactly as before, and reading it as clinic VC01 (``workers/case_access.py``,
what the CLI, the web console and the API call) is refused and written to the access log.

Small in CI (``FUZZ_MESSAGES``, default 240 per broker); by hand ``FUZZ_MESSAGES=5000``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
import redis
import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from tests.databases import migrated_engine
from tests.e2e.fuzz_corpus import CLINICS, GOOD, KEYS, OTHER_CLINIC, Foreign, Item, build
from tests.e2e.harness import OMVANT, WorkerProcess, wait_until, worker_env
from tests.processes import stop_process
from workers import case_access
from workers.adapters.blobs import blob_store_from
from workers.attachments.ownership import store_attachment
from workers.broker import build_broker, dead_letter_count
from workers.case_ownership import received_rows
from workers.queues import all_queues, queue_name
from workers.store import batches
from workers.store import cases as case_store
from workers.store.schema import access_log, case_events, cases, rejected_messages

pytestmark = pytest.mark.e2e

MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "240"))
SETTLED = ("notified", "delivered", "rejected", "read", "failed")


class Process:
    """One ``omvant`` command as a process, its output in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [OMVANT, *argv],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            stop_process(self.process)
        self._out.close()


def _redis_value(value: object) -> bytes | str | int | float:
    if isinstance(value, bytes | str | int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value, default=str)


def publish_intake(kind: str, url: str, prefix: str, items: list[Item]) -> None:
    if kind == "rabbitmq":
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for item in items:
            channel.basic_publish(
                f"{prefix}omvant.intake",
                "fuzz.send-case",
                item.body,
                pika.BasicProperties(
                    content_type="application/json",
                    content_encoding=item.content_encoding,
                    headers=item.headers,
                    delivery_mode=2,
                ),
            )
        connection.close()
        return
    client = redis.Redis.from_url(url)
    for item in items:
        fields: dict[str, object] = {"body": item.body}
        fields.update({k: _redis_value(v) for k, v in item.headers.items()})
        if item.content_encoding:
            fields["content-encoding"] = item.content_encoding
        client.xadd(f"{prefix}omvant.intake", fields)  # type: ignore[arg-type]
    client.close()


def publish_stage(kind: str, url: str, prefix: str, items: list[Item]) -> None:
    if kind == "rabbitmq":
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for item in items:
            channel.basic_publish("", f"{prefix}{item.queue}", item.body)
        connection.close()
        return
    client = redis.Redis.from_url(url)
    for n, item in enumerate(items):
        entry = f"fuzz-{n}-{time.monotonic_ns()}"
        client.hset(f"dramatiq:{prefix}{item.queue}.msgs", entry, item.body)
        client.rpush(f"dramatiq:{prefix}{item.queue}", entry)
    client.close()


def publish_inbox(url: str, prefix: str, items: list[Item]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for item in items:
        channel.basic_publish(
            f"{prefix}omvant.inbox-events",
            "inbox.opened",
            item.body,
            pika.BasicProperties(headers=item.headers or None),
        )
    connection.close()


def queue_exists(url: str, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        connection.close()


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def amqp_cleanup(rabbitmq_url: str, queue_prefix: str) -> Iterator[None]:
    yield
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    for name in ("omvant.intake", "omvant.intake.rejects", "inbox-events"):
        channel.queue_delete(f"{queue_prefix}{name}")
    for name in ("omvant.intake", "omvant.inbox-events"):
        channel.exchange_delete(f"{queue_prefix}{name}")
    connection.close()


def make_foreign(engine: sa.Engine, blob_dir: Path, run: str) -> Foreign:
    """The other clinic's case, dispatch and uploaded blob."""
    other = SendCaseV2.model_validate(
        {**GOOD, "clinic_hsa_id": OTHER_CLINIC, "idempotency_key": f"{run}other-case"}
    )
    blob = store_attachment(
        engine,
        blob_store_from(blob_dir, None, None),
        b"%PDF-1.4\n% the other clinic's file\n%%EOF\n",
        owner_hsa_id=OTHER_CLINIC,
        filename="other.pdf",
        declared_type="application/pdf",
    )
    with engine.begin() as conn:
        case_store.insert_received(conn, received_rows([other], "other", "other-message"))
        batches.create(
            conn,
            batch_id=f"{run}other-batch",
            name="the other clinic's dispatch",
            clinic_hsa_id=OTHER_CLINIC,
            sender_hsa_id=GOOD["sender_hsa_id"],
            template_id=GOOD["template_id"],
            total=1,
        )
    return Foreign(other.resolved_case_id(), f"{run}other-batch", blob.sha256, blob.size)


def snapshot(engine: sa.Engine, case_id: str) -> tuple[object, ...]:
    """A case's row and history, to show they did not change."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).one()
        events = conn.execute(
            sa.select(case_events.c.state, case_events.c.stage, case_events.c.at).where(
                case_events.c.case_id == case_id
            )
        ).all()
    return (tuple(row), tuple(tuple(e) for e in events))


def test_the_entrances_survive_a_hostile_corpus_and_settle_every_valid_case(
    broker: tuple[str, str],
    rabbitmq_url: str,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
    amqp_cleanup: None,
) -> None:
    kind, url = broker
    engine = migrated_engine(postgres_url)
    foreign = make_foreign(engine, tmp_path / "blobs", queue_prefix)
    before = snapshot(engine, foreign.case_id)
    items = build(queue_prefix, queue_prefix, MESSAGES, inbox=True, foreign=foreign)
    env = worker_env(
        broker_url=url,
        database_url=postgres_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        extra={
            "OMVANT_INTAKE_KEYS": json.dumps(KEYS),
            "OMVANT_INTAKE_CLINICS": json.dumps(CLINICS),
            "OMVANT_INTAKE_MAX_BODY_BYTES": str(1024 * 1024),
            "OMVANT_INBOX_EVENTS_URL": rabbitmq_url,
            "OMVANT_LOG_LEVEL": "WARNING",
        },
    )
    started = time.monotonic()
    worker = WorkerProcess(env, [], tmp_path / "worker.log", threads=4)
    intake = Process(["intake"], env, tmp_path / "intake.log")
    inbox = Process(["inbox-events"], env, tmp_path / "inbox.log")
    processes = {"worker": worker, "intake": intake, "inbox-events": inbox}
    try:
        # the processes declare their queues: publish once they have
        intake_queue = f"{queue_prefix}omvant.intake"
        ready = {
            "inbox-events": lambda: queue_exists(rabbitmq_url, f"{queue_prefix}inbox-events"),
            "intake": (lambda: queue_exists(url, intake_queue))
            if kind == "rabbitmq"
            else (lambda: bool(redis.Redis.from_url(url).exists(intake_queue))),
        }
        if kind == "rabbitmq":
            stage_queues = {f"{queue_prefix}{i.queue}" for i in items if i.door == "stage"}
            ready["worker"] = lambda: all(queue_exists(url, q) for q in stage_queues)
        else:
            ready["worker"] = lambda: True  # Redis queues are keys: they wait for the worker
        for name, check in ready.items():
            assert wait_until(check, timeout=90), f"{name} did not start"
        by_door: dict[str, list[Item]] = {"intake": [], "stage": [], "inbox": []}
        for item in items:
            by_door[item.door].append(item)
        publish_intake(kind, url, queue_prefix, by_door["intake"])
        publish_stage(kind, url, queue_prefix, by_door["stage"])
        publish_inbox(rabbitmq_url, queue_prefix, by_door["inbox"])

        wanted = Counter(i.reason for i in items if i.reason)
        keys = {k for i in items for k in i.case_keys}

        def recorded() -> Counter[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(rejected_messages.c.reason).where(
                        rejected_messages.c.queue.startswith(queue_prefix)
                    )
                ).scalars()
                return Counter(rows)

        def settled() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            cases.c.idempotency_key.in_(keys), cases.c.state.in_(SETTLED)
                        )
                    ).scalar_one()
                )

        done = wait_until(
            lambda: recorded().total() >= wanted.total() and settled() >= len(keys),
            timeout=240,
        )
        elapsed = time.monotonic() - started
        got = recorded()
        logs = "\n".join(f"--- {n}\n{p.output()[-2000:]}" for n, p in processes.items())
        assert done, (
            f"recorded {got.total()}/{wanted.total()}, settled {settled()}/{len(keys)}; "
            f"missing {wanted - got}, unexpected {got - wanted}\n{logs}"
        )
        assert got == wanted, (got - wanted, wanted - got)
        assert settled() == len(keys)
        with engine.connect() as conn:
            made = conn.execute(
                sa.select(sa.func.count()).where(
                    cases.c.idempotency_key.contains(queue_prefix),
                    cases.c.clinic_hsa_id != OTHER_CLINIC,
                )
            ).scalar_one()
        assert made == len(keys)  # the replayed message made no second case
        case_reasons = {
            f"journal-a/{json.loads(i.body)['idempotency_key']}": i.case_reason
            for i in items
            if i.case_reason
        }
        with engine.connect() as conn:
            ended = dict(
                conn.execute(
                    sa.select(cases.c.idempotency_key, cases.c.reason).where(
                        cases.c.idempotency_key.in_(case_reasons)
                    )
                ).all()
            )
            other_rows = conn.execute(
                sa.select(sa.func.count()).where(
                    cases.c.clinic_hsa_id == OTHER_CLINIC,
                    cases.c.id != foreign.case_id,
                    cases.c.idempotency_key.contains(queue_prefix),  # this run's
                )
            ).scalar_one()
        assert ended == case_reasons
        assert other_rows == 0  # no request made a case for the other clinic
        assert snapshot(engine, foreign.case_id) == before  # its case untouched
        reader = case_access.Reader("SE2321000016-S101", GOOD["clinic_hsa_id"])
        with pytest.raises(case_access.CaseNotFound):
            case_access.show_case(engine, reader, foreign.case_id, now=dt.datetime.now(dt.UTC))
        with engine.connect() as conn:
            logged = conn.execute(
                sa.select(access_log.c.outcome, access_log.c.case_ids).where(
                    access_log.c.unit_hsa_id == GOOD["clinic_hsa_id"],
                    access_log.c.case_ids.contains(foreign.case_id),
                )
            ).all()
        assert [row.outcome for row in logged] == ["refused"]
        for name, process in processes.items():
            assert process.alive(), f"{name} exited\n{logs}"
        assert "waits after a failure" not in intake.output() + inbox.output(), logs
        # an exception escaping the stages (a message that could not be acknowledged runs
        # again at every restart: Redis entries put there by another client had no entry id)
        assert "Traceback" not in worker.output(), worker.output()[-3000:]
        queues = [queue_name(q, queue_prefix) for q in all_queues()]
        assert dead_letter_count(build_broker(url), queues) == 0
        categories = Counter(i.category for i in items)
        print(
            json.dumps(
                {
                    "broker": kind,
                    "messages": len(items),
                    "hostile": wanted.total(),
                    "valid_cases": len(keys),
                    "seconds": round(elapsed, 1),
                    "categories": len(categories),
                    "reasons": dict(got),
                    "case_reasons": dict(Counter(case_reasons.values())),
                }
            )
        )
    finally:
        for process in processes.values():
            process.stop()
        if kind == "redis":
            client = redis.Redis.from_url(url)
            client.delete(f"{queue_prefix}omvant.intake", f"{queue_prefix}omvant.intake.rejects")
            client.close()
        engine.dispose()
