"""The two doors of the intake: an AMQP exchange (kombu) and a Redis stream (redis-py).

AMQP: exchange ``omvant.intake`` (topic, durable) with the durable queue ``omvant.intake``
bound to it by ``#``; refused messages go to the durable queue ``omvant.intake.rejects``.
Redis: stream ``omvant.intake`` read by the consumer group ``omvant-intake``; refused entries
go to the stream ``omvant.intake.rejects``. kombu's Redis transport only reads messages in
kombu's own format, so a plain stream (XADD from any client) is read with redis-py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import kombu as _kombu
import redis

from workers.intake_bridge import Delivery, IntakeSource
from workers.queues import INTAKE_EXCHANGE, INTAKE_REJECTS, queue_name

kombu: Any = _kombu  # kombu ships no type hints; its calls are checked by the tests
GROUP = "omvant-intake"
BODY = "body"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class AmqpIntakeSource(IntakeSource):
    """Reads the intake queue of a RabbitMQ server; publishes rejects with confirms."""

    def __init__(self, url: str, *, prefix: str = "", prefetch: int = 1000) -> None:
        self.connection = kombu.Connection(url, transport_options={"confirm_publish": True})
        self.channel = self.connection.channel()
        exchange = kombu.Exchange(queue_name(INTAKE_EXCHANGE, prefix), type="topic", durable=True)
        self.queue = kombu.Queue(
            queue_name(INTAKE_EXCHANGE, prefix), exchange, routing_key="#", durable=True
        )(self.channel)
        self.queue.declare()
        self.rejects_name = queue_name(INTAKE_REJECTS, prefix)
        kombu.Queue(self.rejects_name, durable=True)(self.channel).declare()
        self.producer = kombu.Producer(self.channel)
        self._buffer: list[Delivery] = []
        self.consumer = kombu.Consumer(
            self.channel, [self.queue], on_message=self._on_message, prefetch_count=prefetch
        )
        self.consumer.consume()

    def _on_message(self, message: Any) -> None:
        headers = {str(k).lower(): _text(v) for k, v in (message.headers or {}).items()}
        user_id = message.properties.get("user_id")
        if user_id:
            headers["amqp-user-id"] = _text(user_id)
        self._buffer.append(Delivery(bytes(message.body), headers, message))

    def receive(self, max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self._buffer) < max_count:
            left = deadline - time.monotonic()
            if left <= 0 and self._buffer:
                break
            try:
                self.connection.drain_events(timeout=max(left, 0.005))
            except TimeoutError:
                break
        taken, self._buffer = self._buffer[:max_count], self._buffer[max_count:]
        return taken

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            delivery.token.ack()

    def reject(self, delivery: Delivery, record: bytes) -> None:
        self.producer.publish(
            record,
            exchange="",
            routing_key=self.rejects_name,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        delivery.token.ack()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.cancel()
        self.connection.release()


class RedisIntakeSource(IntakeSource):
    """Reads the intake stream of a Redis server with a consumer group."""

    def __init__(self, url: str, *, prefix: str = "", claim_idle_ms: int = 60_000) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self.stream = queue_name(INTAKE_EXCHANGE, prefix)
        self.rejects = queue_name(INTAKE_REJECTS, prefix)
        self.consumer = f"bridge-{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self._next_claim = 0.0
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists already
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    def _delivery(self, entry_id: Any, fields: dict[Any, Any]) -> Delivery:
        decoded = {_text(k).lower(): v for k, v in fields.items()}
        raw = decoded.pop(BODY, b"")
        body = raw if isinstance(raw, bytes) else str(raw).encode()
        return Delivery(body, {k: _text(v) for k, v in decoded.items()}, entry_id)

    def receive(self, max_count: int, timeout: float) -> list[Delivery]:
        deliveries: list[Delivery] = []
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + 30
            claimed = self.client.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_idle_ms, count=max_count
            )
            deliveries += [self._delivery(i, f) for i, f in claimed[1] if f]
        if len(deliveries) < max_count:
            answer = self.client.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: ">"},
                count=max_count - len(deliveries),
                block=max(1, int(timeout * 1000)),
            )
            for _stream, entries in answer or []:
                deliveries += [self._delivery(i, f) for i, f in entries]
        return deliveries

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            ids = [d.token for d in deliveries]
            pipe = self.client.pipeline()
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            pipe.execute()

    def reject(self, delivery: Delivery, record: bytes) -> None:
        self.client.xadd(self.rejects, {BODY: record})
        self.ack([delivery])

    def close(self) -> None:
        self.client.close()


def open_source(url: str, *, prefix: str = "") -> IntakeSource:
    """The intake source for a broker URL (``amqp://`` or ``redis://``)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"amqp", "amqps"}:
        return AmqpIntakeSource(url, prefix=prefix)
    if scheme in {"redis", "rediss"}:
        return RedisIntakeSource(url, prefix=prefix)
    raise ValueError(f"the intake needs amqp:// or redis://, not {scheme}://")
