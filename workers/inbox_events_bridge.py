"""The bridge from the inbox's events (kombu, AMQP) to the read-receipt stage (dramatiq).

The inbox publishes plain JSON (``contracts.inbox_event``) on a topic exchange. The bridge
consumes it from its own durable queue, reads each event, and forwards chunks of ``ReadReceipt``
envelopes onto the ``read-receipts`` queue with ``workers.stage.emit``; there the stage records
the first read time, answers, and events for unknown cases (``unknown-case``). Events are
acknowledged only after their chunk is forwarded, so a crash forwards them again, which the
read-receipt stage takes as the harmless duplicates they are. An event that cannot be read is
kept in ``rejected_messages`` with its reason code and acknowledged, its body sealed with the
answer key (``rejections.keep_sealed``): any refused event may hold an answer.

Runs as ``omvant inbox-events``, or in a thread (``InboxEventsBridge.run``) as the demo does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kombu

from contracts.inbox_event import InboxEventError, InboxEventV2, parse_inbox_event
from contracts.read_receipt import ReadReceiptV2
from workers import amqp_properties, rejections
from workers.answer_seal import answer_seal
from workers.bootstrap import Context
from workers.log import get_logger
from workers.reasons import Reason
from workers.settings import Settings
from workers.stage import emit
from workers.wire import Refused, as_bytes, decompress, normal_headers, printable, text_encoding

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


MAX_EVENT_BYTES = 1024 * 1024
"""An inbox event is a few hundred bytes; anything over a MiB (as sent or decompressed) is
refused with ``message-too-large``."""
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class RawEvent:
    """One event as the broker gave it: the body (bytes, or text), headers, content encoding."""

    body: object
    headers: dict[str, object]
    content_encoding: object = None


def raw_event(message: Any) -> RawEvent:
    """The parts of a consumed message: py-amqp's raw message, or kombu's (memory transport)."""
    properties = getattr(message, "properties", None) or {}
    headers = properties.get("application_headers")
    if headers is None:
        headers = getattr(message, "headers", None)
    encoding = properties.get("content_encoding") or getattr(message, "content_encoding", None)
    return RawEvent(getattr(message, "body", b""), normal_headers(headers), encoding)


def read_event(raw: RawEvent) -> InboxEventV2:
    """Decode and read one event, whatever the broker handed over.

    Raises
    ------
    InboxEventError
        With the reason code of what is wrong (never anything else).
    """
    try:
        encoding = text_encoding(raw.content_encoding)
        body = as_bytes(raw.body, encoding)
        if len(body) > MAX_EVENT_BYTES:
            raise Refused(Reason.MESSAGE_TOO_LARGE, "(body)", "max-bytes", "over 1 MiB")
        body = decompress(body, raw.headers.get("compression"), MAX_EVENT_BYTES)
        text: bytes | str = body
        if encoding is not None and not encoding.startswith("utf-"):
            text = body.decode(encoding)
    except Refused as refused:
        raise InboxEventError(refused.reason, refused.message) from None
    except UnicodeDecodeError as exc:
        raise InboxEventError(Reason.BODY_UNDECODABLE, f"not text: {exc.reason}") from None
    return parse_inbox_event(text)


@dataclass
class Forwarded:
    """What one chunk of events came to."""

    receipts: int = 0
    rejected: int = 0


def forward(ctx: Context, events: list[RawEvent], queue: str) -> Forwarded:
    """Read a chunk of inbox events; forward the readable, keep the rest with a reason code.

    The inbox publishes through the broker, which authenticated it: a refused event's body is
    kept whole (bounded) in ``rejected_messages``, sealed, since whatever the inbox sent may
    hold a resident's answer, readable JSON or not."""
    seal = answer_seal(ctx.settings)
    receipts: list[ReadReceiptV2] = []
    outcome = Forwarded()
    for raw in events:
        try:
            event = read_event(raw)
        except InboxEventError as exc:
            try:
                body = as_bytes(raw.body, None)
            except Refused:
                body = b""
            with ctx.engine.begin() as conn:
                rejections.record(
                    conn,
                    queue=queue,
                    reason=exc.reason,
                    detail=exc.detail,
                    kept=rejections.keep_sealed(body, raw.headers, seal=seal.seal),
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

    Messages are consumed raw (not as kombu's ``Message``, which would decompress without a
    limit and raise on an unknown ``compression`` header): ``read_event`` decodes them. An
    outage (database, broker) never ends the bridge: it waits, longer each time up to
    ``MAX_BACKOFF`` seconds, reconnects, and the events it had not acknowledged come again.

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
    on_ready:
        Called once, the first time the bridge consumes (``omvant inbox-events`` says
        ``worker.ready`` then); not again after an outage.
    """

    def __init__(
        self,
        ctx: Context,
        url: str,
        *,
        chunk_size: int = 100,
        linger: float = 0.2,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.url = url
        self.chunk_size = chunk_size
        self.linger = linger
        self.queue = bridge_queue(ctx.settings)
        self.forwarded = Forwarded()
        self.outages = 0
        self.ready = threading.Event()
        self.on_ready = on_ready

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; forward what is held before returning."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self._consume(stop)
                return
            except Exception as exc:  # noqa: BLE001 - the bridge must outlive any outage
                self.outages += 1
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                log.warning(
                    "inbox-events bridge waits after a failure",
                    error=type(exc).__name__,
                    detail=printable(str(exc), 200),
                    seconds=backoff,
                )
                stop.wait(backoff)

    def _consume(self, stop: threading.Event) -> None:
        held: list[Any] = []
        amqp_properties.install()  # a property that is not UTF-8 must not stop the door
        with kombu.Connection(self.url) as connection:
            channel = connection.channel()
            channel.auto_decode = False  # bodies as bytes: read_event decodes them
            queue = self.queue(channel)
            queue.declare()
            channel.basic_qos(0, self.chunk_size * 2, False)
            queue.consume(callback=held.append, no_ack=False)
            if not self.ready.is_set() and self.on_ready is not None:
                self.on_ready()
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
                    self._forward(channel, list(held))
                    held.clear()
                    oldest = 0.0
            if held:
                self._forward(channel, held)

    def _forward(self, channel: Any, messages: list[Any]) -> None:
        outcome = forward(self.ctx, [raw_event(m) for m in messages], self.queue.name or QUEUE)
        for message in messages:
            channel.basic_ack(message.delivery_tag)
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
