"""The bridge from the inbox's events (kombu, AMQP) to the read-receipt stage (dramatiq).

The inbox publishes plain JSON (``contracts.inbox_event``) on a topic exchange. The bridge
consumes it from its own durable queue, reads each event, and forwards chunks of ``ReadReceipt``
envelopes onto the ``read-receipts`` queue with ``workers.stage.emit``; there the stage records
the first read time, answers, and events for unknown cases (``unknown-case``). Events are
acknowledged only after their chunk is forwarded, so a crash forwards them again, which the
read-receipt stage takes as the harmless duplicates they are. An event that cannot be read is
kept in ``rejected_messages`` with its reason code and acknowledged.

Runs as ``omvant inbox-events``, or in a thread (``InboxEventsBridge.run``) as the demo does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import kombu
from kombu.message import Message

from contracts.inbox_event import InboxEventError, parse_inbox_event
from contracts.read_receipt import ReadReceiptV2
from workers.bootstrap import Context
from workers.log import get_logger
from workers.settings import Settings
from workers.stage import emit
from workers.store import cases

log = get_logger(__name__)

QUEUE = "inbox-events"
"""The bridge's queue on the inbox's exchange (prefixed like every queue)."""


def exchange_name(settings: Settings) -> str:
    """The inbox's exchange (prefixed like the queues, so test runs stay apart)."""
    return f"{settings.queue_prefix}{settings.inbox_events_exchange}"


def events_url(settings: Settings) -> str:
    """Where the inbox publishes: ``inbox_events_url``, else the broker's URL."""
    return settings.inbox_events_url or settings.broker_url


def bridge_queue(settings: Settings) -> kombu.Queue:
    """The bridge's durable queue, bound to every inbox event."""
    exchange = kombu.Exchange(exchange_name(settings), type="topic", durable=True)
    return kombu.Queue(
        f"{settings.queue_prefix}{QUEUE}", exchange, routing_key="inbox.#", durable=True
    )


def _raw(body: bytes | str | memoryview) -> bytes:
    """A message body as bytes: py-amqp hands text over decoded when the publisher named an
    encoding, the memory transport and pika publishers leave bytes."""
    return body.encode() if isinstance(body, str) else bytes(body)


@dataclass
class Forwarded:
    """What one chunk of events came to."""

    receipts: int = 0
    rejected: int = 0


def forward(ctx: Context, bodies: list[bytes], queue: str) -> Forwarded:
    """Read a chunk of inbox events; forward the readable, keep the rest with a reason code."""
    receipts: list[ReadReceiptV2] = []
    outcome = Forwarded()
    for body in bodies:
        try:
            event = parse_inbox_event(body)
        except InboxEventError as exc:
            with ctx.engine.begin() as conn:
                cases.record_unreadable(
                    conn,
                    queue=queue,
                    reason=exc.reason,
                    detail=exc.detail,
                    body=body.decode("utf-8", "replace"),
                )
            outcome.rejected += 1
            continue
        receipts.append(
            ReadReceiptV2(
                case_id=event.case_id,
                event=event.event,
                answer=event.answer,
                occurred_at=event.occurred_at,
            )
        )
    emit(ctx, receipts, correlation_id="inbox-events")
    outcome.receipts = len(receipts)
    return outcome


class InboxEventsBridge:
    """Consumes inbox events and forwards them in chunks.

    Parameters
    ----------
    ctx:
        The process's wiring (broker to forward on, database for unreadable events).
    url:
        The inbox's AMQP URL (or ``memory://`` in one process).
    chunk_size:
        The most events forwarded in one envelope.
    linger:
        Seconds to wait for more events before forwarding a part-filled chunk.
    """

    def __init__(
        self, ctx: Context, url: str, *, chunk_size: int = 100, linger: float = 0.2
    ) -> None:
        self.ctx = ctx
        self.url = url
        self.chunk_size = chunk_size
        self.linger = linger
        self.queue = bridge_queue(ctx.settings)
        self.forwarded = Forwarded()
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; forward what is held before returning."""
        held: list[Message] = []
        with (
            kombu.Connection(self.url) as connection,
            connection.Consumer(
                self.queue, on_message=held.append, prefetch_count=self.chunk_size * 2
            ),
        ):
            self.ready.set()
            oldest = 0.0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=self.linger)
                if held and not oldest:
                    oldest = time.monotonic()
                if held and (
                    len(held) >= self.chunk_size or time.monotonic() - oldest >= self.linger
                ):
                    self._forward(list(held))
                    held.clear()
                    oldest = 0.0
            if held:
                self._forward(held)

    def _forward(self, messages: list[Message]) -> None:
        outcome = forward(self.ctx, [_raw(m.body) for m in messages], self.queue.name or QUEUE)
        for message in messages:
            message.ack()
        self.forwarded.receipts += outcome.receipts
        self.forwarded.rejected += outcome.rejected
        log.info("inbox events forwarded", receipts=outcome.receipts, rejected=outcome.rejected)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="inbox-events", daemon=True)
        thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the inbox-events bridge did not start within 10 s")
        return thread, stop
