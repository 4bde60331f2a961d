"""``omvant demo``: a realistic dispatch through all five stages in one process.

Notifications and reads take the real paths: the demo starts an SMTP server (aiosmtpd) and the
SMS-gateway simulator on loopback ports, the dispatch stage sends through the SMTP and HTTP
adapters, and residents' reads arrive as inbox events through the kombu bridge (kombu's
``memory://`` transport when the broker is in-process, the AMQP exchange with RabbitMQ). SMS
quiet hours are off in the demo, which would otherwise wait for the morning at night, and the
per-channel rate limits are raised to loopback speed. On a real broker the queues it declared
(its own ``demo-<hex>-`` prefix: each stage's with their ``.DQ`` and ``.XQ``, the bridge's
and its exchange) are deleted when it ends, however it ends.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dramatiq
import sqlalchemy as sa

from contracts.inbox_event import InboxEventV2
from contracts.read_receipt import Answer, QuestionAnswer
from producers.scenario import build_dispatch, new_batch_id, store_sample_files
from workers.actors import RecordDeadLetters, declare_actors
from workers.adapters.inbox import KombuInboxEventPublisher
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.adapters.smtp_sink import SmtpSink
from workers.bootstrap import Context, build_context
from workers.broker import broker_kind, build_broker, dead_letter_count, forget_queues
from workers.case_states import CaseState
from workers.inbox_events_bridge import (
    InboxEventsBridge,
    bridge_queue,
    events_url,
    exchange_name,
)
from workers.log import get_logger
from workers.queues import Queues, all_queues, queue_name
from workers.settings import Settings
from workers.stage import emit
from workers.store import cases, notifications
from workers.store.cases import utcnow
from workers.store.engine import upgrade
from workers.store.schema import cases as cases_table

Progress = Callable[[int, int], None]
log = get_logger(__name__)


@dataclass
class InProcessPipeline:
    """All five stages as threads of one dramatiq worker in this process."""

    ctx: Context
    worker: dramatiq.Worker

    def stop(self) -> None:
        """Stop the worker threads and close the broker's connections."""
        self.worker.stop()
        self.ctx.broker.close()
        self.ctx.engine.dispose()


def start_pipeline(settings: Settings, *, threads: int = 8) -> InProcessPipeline:
    """Bring the schema up to date and start every stage in this process."""
    upgrade(settings.database_url)
    holder: list[Context] = []
    broker = build_broker(settings.broker_url, middleware=[RecordDeadLetters(lambda: holder[0])])
    ctx = build_context(settings, broker)
    holder.append(ctx)
    declare_actors(
        broker,
        lambda: ctx,
        prefix=settings.queue_prefix,
        max_retries=settings.max_retries,
        outage_retry_seconds=settings.outage_retry_seconds,
    )
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return InProcessPipeline(ctx, worker)


def count_settled(ctx: Context, batch_id: str) -> int:
    """Cases of the batch the pipeline has finished with."""
    with ctx.engine.connect() as conn:
        return notifications.count_settled(conn, batch_id=batch_id)


def wait_for(
    count: Callable[[], int], target: int, *, timeout: float, progress: Progress | None = None
) -> int:
    """Poll ``count`` until it reaches ``target`` or ``timeout`` seconds pass; return the last."""
    deadline = time.monotonic() + timeout
    done = count()
    while done < target and time.monotonic() < deadline:
        if progress:
            progress(done, target)
        time.sleep(0.1)
        done = count()
    if progress:
        progress(done, target)
    return done


def open_some(
    ctx: Context, publisher: KombuInboxEventPublisher, batch_id: str, share: float, seed: int
) -> int:
    """Residents open ``share`` of the batch's delivered messages: the inbox publishes events."""
    with ctx.engine.connect() as conn:
        delivered = sorted(
            row.id
            for row in conn.execute(
                sa.select(cases_table.c.id).where(
                    cases_table.c.batch_id == batch_id,
                    cases_table.c.state.in_([CaseState.DELIVERED, CaseState.NOTIFIED]),
                )
            )
        )
    rng = random.Random(seed)
    opened = [case_id for case_id in delivered if rng.random() < share]
    now = utcnow()
    publisher.publish([InboxEventV2(case_id=c, event="opened", occurred_at=now) for c in opened])
    return len(opened)


ANSWER_KINDS = ("answer", "answer", "partial-answer", "counter-question")


def answer_some(
    ctx: Context, publisher: KombuInboxEventPublisher, batch_id: str, share: float, seed: int
) -> int:
    """Residents answer ``share`` of the batch's read question cases, as the inbox would
    publish it: one of the template's options, a text and an answer to each of its questions."""
    with ctx.engine.connect() as conn:
        read = sorted(
            conn.execute(
                sa.select(
                    cases_table.c.id, cases_table.c.template_id, cases_table.c.template_version
                ).where(cases_table.c.batch_id == batch_id, cases_table.c.state == CaseState.READ)
            ).all()
        )
    rng = random.Random(seed + 1)
    events = []
    for case_id, template_id, version in read:
        template = ctx.templates.get(template_id, version)
        if template is None or not template.answerable or rng.random() >= share:
            continue
        offered = {option.kind for option in template.answer_options}
        answer = Answer(
            kind=rng.choice([k for k in ANSWER_KINDS if k in offered] or sorted(offered)),
            text="Tack för meddelandet. Jag har svarat på frågorna nedan.",
            question_answers=[
                QuestionAnswer(question=q, answer=f"Svar {n + 1}.")
                for n, q in enumerate(template.questions)
            ],
        )
        events.append(
            InboxEventV2(case_id=case_id, event="answered", answer=answer, occurred_at=utcnow())
        )
    publisher.publish(events)
    return len(events)


def summarise(ctx: Context, batch_id: str, total: int, seconds: float) -> dict[str, Any]:
    """The demo's closing figures (the keys ``omvant demo --json`` promises)."""
    with ctx.engine.connect() as conn:
        states = cases.count_states(conn, batch_id=batch_id)
        settled = notifications.count_settled(conn, batch_id=batch_id)
        reasons = cases.count_reasons(conn, batch_id=batch_id)
        sent = notifications.count_sent(conn, batch_id=batch_id)
    delivered = sum(states.get(s, 0) for s in ("delivered", "notified", "read"))
    read = states.get("read", 0)
    queues = [queue_name(q, ctx.settings.queue_prefix) for q in Queues]
    return {
        "cases": total,
        "delivered": delivered,
        "rejected": dict(sorted(reasons.items())),
        "notified": {"sms": sent.get("sms", 0), "email": sent.get("email", 0)},
        "read": read,
        "unread": delivered - read,
        "failed": states.get("failed", 0),
        "in_flight": total - settled,
        "dead_lettered": dead_letter_count(ctx.broker, queues),
        "seconds": round(seconds, 3),
        "broker": broker_kind(ctx.broker),
        "database": ctx.engine.dialect.name,
        "batch_id": batch_id,
        "home": str(ctx.settings.home),
    }


DEMO_RATE = 5000.0
"""Notifications per second per channel in the demo (still rate-limited, on loopback)."""


@dataclass
class DemoServers:
    """The outside systems the demo talks real protocols to, on loopback ports."""

    smtp: SmtpSink
    sms: SmsGatewaySimulator

    @classmethod
    def start(cls) -> DemoServers:
        """Start an SMTP server and the SMS-gateway simulator."""
        return cls(SmtpSink().start(), SmsGatewaySimulator().start())

    def settings_for(self, settings: Settings) -> Settings:
        """``settings`` pointed at these servers, with no quiet hours and loopback-sized rate
        limits (a real gateway's 50 SMS/s would make the demo a test of patience)."""
        return settings.model_copy(
            update={
                "smtp_url": self.smtp.url,
                "sms_gateway_url": self.sms.url,
                "sms_quiet_hours": "",
                "sms_per_second": DEMO_RATE,
                "email_per_second": DEMO_RATE,
            }
        )

    def stop(self) -> None:
        """Stop both servers."""
        self.smtp.stop()
        self.sms.stop()


DEMO_OWNS: dict[str, object] = {
    "queue_prefix": "",
    "inbox_events_url": None,
    "inbox_events_exchange": Settings.model_fields["inbox_events_exchange"].default,
    "inbox_url": None,
    "smtp_url": None,
    "email_api_url": None,
    "sms_gateway_url": None,
    "directory_url": None,
    "redis_url": None,
    "blob_url": None,
    "s3_endpoint_url": None,
    "clamd_socket": None,
    "clamd_url": None,
}
"""Deployment settings the demo never takes from the environment: each would connect it to an
outside system or share a name (a queue, an exchange) with a running deployment, whose bridge
would then consume the demo's inbox events. The demo uses its own: the in-process simulators
and servers, the inbox events on its broker, a queue prefix of its own."""


def demo_settings(settings: Settings) -> tuple[Settings, list[str]]:
    """``settings`` as the demo runs them, and the ``OMVANT_*`` variables it ignored."""
    ignored = sorted(
        f"OMVANT_{name.upper()}"
        for name, own in DEMO_OWNS.items()
        if name in settings.model_fields_set and getattr(settings, name) not in (own, None, "")
    )
    if settings.queue_prefix.startswith("demo-"):
        prefix = settings.queue_prefix  # already the demo's own
    else:
        prefix = f"demo-{secrets.token_hex(4)}-"
    return settings.model_copy(update={**DEMO_OWNS, "queue_prefix": prefix}), ignored


def forget_demo_queues(settings: Settings, declared: Iterable[str] = ()) -> None:
    """Delete the demo's queues (every stage's and ``declared``, under its own prefix only)
    with their delay and dead-letter queues, and the bridge's queue and exchange: a demo on a
    shared RabbitMQ leaves nothing behind (on Redis, its keys). Other prefixes' are kept."""
    prefix = settings.queue_prefix
    if not prefix.startswith("demo-") or settings.broker_url.startswith("memory"):
        return
    names = {queue_name(q, prefix) for q in all_queues()}
    names |= {name for name in declared if name.startswith(prefix)}
    janitor = build_broker(settings.broker_url)
    try:
        forget_queues(janitor, [*sorted(names), bridge_queue(settings).name])
        kind = broker_kind(janitor)
        if kind == "rabbitmq":
            janitor.channel.exchange_delete(exchange_name(settings))  # type: ignore[attr-defined]
        elif kind == "redis":  # kombu's own keys for the bridge: its exchange's bindings, its list
            exchange = exchange_name(settings)
            janitor.client.delete(  # type: ignore[attr-defined]
                f"_kombu.binding.{exchange}",
                f"_kombu.binding_permanent.{exchange}",
                bridge_queue(settings).name,
            )
    except Exception as exc:  # noqa: BLE001 - a broker gone away: said, the demo's error kept
        log.warning("demo queues not deleted", prefix=prefix, error=type(exc).__name__)
    finally:
        janitor.close()


def run_demo(
    settings: Settings,
    *,
    count: int,
    open_share: float = 0.4,
    timeout: float = 600.0,
    progress: Progress | None = None,
    then: Callable[[Context, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Send ``count`` cases through the pipeline, let some residents read them, summarise.

    ``then(ctx, summary)``, if given, runs while the pipeline still runs (``omvant demo
    --serve`` serves the web console there until stopped)."""
    started = time.monotonic()
    settings, _ignored = demo_settings(settings)
    servers = DemoServers.start()
    settings = servers.settings_for(settings)
    try:
        pipeline = start_pipeline(settings)
    except BaseException:
        servers.stop()
        forget_demo_queues(settings)
        raise
    ctx = pipeline.ctx
    bridge = InboxEventsBridge(ctx, events_url(settings), chunk_size=settings.chunk_size)
    bridge_thread, stop_bridge = bridge.start()
    try:
        batch_id = new_batch_id()
        files = store_sample_files(ctx.blobs, ctx.engine)
        requests = build_dispatch(count, seed=settings.seed, batch_id=batch_id, files=files)
        emit(ctx, requests, correlation_id=batch_id)
        wait_for(lambda: count_settled(ctx, batch_id), count, timeout=timeout, progress=progress)
        publisher = KombuInboxEventPublisher(events_url(settings), exchange_name(settings))
        opened = open_some(ctx, publisher, batch_id, open_share, settings.seed)

        def reads() -> int:
            with ctx.engine.connect() as conn:
                return cases.count_states(conn, batch_id=batch_id).get("read", 0)

        wait_for(reads, opened, timeout=timeout)
        answered = answer_some(ctx, publisher, batch_id, 0.5, settings.seed)

        def answers() -> int:
            with ctx.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            cases_table.c.batch_id == batch_id,
                            cases_table.c.answered_at.is_not(None),
                        )
                    ).scalar_one()
                )

        wait_for(answers, answered, timeout=timeout)
        summary = summarise(ctx, batch_id, count, time.monotonic() - started)
        summary["answered"] = answers()
        summary["received"] = {
            "smtp_server": len(servers.smtp.received),
            "sms_gateway": len(servers.sms.messages()),
            "inbox_events": bridge.forwarded.receipts,
        }
        if then is not None:
            then(ctx, summary)
        return summary
    finally:
        stop_bridge.set()
        bridge_thread.join(timeout=10)
        pipeline.stop()
        servers.stop()
        forget_demo_queues(settings, ctx.broker.get_declared_queues())
