"""The two doors of the intake: an AMQP exchange (kombu) and a Redis stream (redis-py).

AMQP: exchange ``omvant.intake`` (topic, durable) with the durable queue ``omvant.intake``
bound to it by ``#``; refused messages go to the durable queue ``omvant.intake.rejects``.
Redis: stream ``omvant.intake`` read by the consumer group ``omvant-intake``; refused entries
go to the stream ``omvant.intake.rejects``. kombu's Redis transport only reads messages in
kombu's own format, so a plain stream (XADD from any client) is read with redis-py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import kombu as _kombu
import redis

from workers import amqp_properties
from workers.intake_bridge import MESSAGE_ID, Delivery, IntakeSource
from workers.queues import INTAKE_EXCHANGE, INTAKE_REJECTS, queue_name
from workers.store.sql import aware_utc
from workers.wire import normal_headers

kombu: Any = _kombu  # kombu ships no type hints; its calls are checked by the tests
GROUP = "omvant-intake"
BODY = "body"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class AmqpIntakeSource(IntakeSource):
    """Reads the intake queue of a RabbitMQ server; publishes rejects with confirms.

    Messages are consumed raw (py-amqp's message, not kombu's): kombu's ``Message`` would
    decompress a ``compression`` header without a size limit and raise on an unknown one, and
    py-amqp would turn a body with a ``content_encoding`` into text. The bridge decodes the
    bytes itself (``workers/wire.py``).
    """

    def __init__(self, url: str, *, prefix: str = "", prefetch: int = 1000) -> None:
        self.url = url
        self.prefix = prefix
        self.prefetch = prefetch
        self.rejects_name = queue_name(INTAKE_REJECTS, prefix)
        self._buffer: list[Delivery] = []
        self._open()

    def _open(self) -> None:
        amqp_properties.install()
        self.connection = kombu.Connection(self.url, transport_options={"confirm_publish": True})
        self.channel = self.connection.channel()
        self.channel.auto_decode = False
        exchange = kombu.Exchange(
            queue_name(INTAKE_EXCHANGE, self.prefix), type="topic", durable=True
        )
        self.queue = kombu.Queue(
            queue_name(INTAKE_EXCHANGE, self.prefix), exchange, routing_key="#", durable=True
        )(self.channel)
        self.queue.declare()
        kombu.Queue(self.rejects_name, durable=True)(self.channel).declare()
        self.producer = kombu.Producer(self.channel)
        self._buffer = []
        self.channel.basic_qos(0, self.prefetch, False)
        self.queue.consume(callback=self._on_message, no_ack=False)

    def _on_message(self, message: Any) -> None:
        properties = getattr(message, "properties", None) or {}
        headers = normal_headers(properties.get("application_headers"))
        user_id = properties.get("user_id")
        if user_id:
            headers["amqp-user-id"] = _text(user_id)
        if properties.get("content_type"):
            headers.setdefault("content-type", properties.get("content_type"))
        if properties.get("content_encoding"):
            headers.setdefault("content-encoding", properties.get("content_encoding"))
        if properties.get("message_id"):
            headers.setdefault(MESSAGE_ID, properties.get("message_id"))
        undecodable = amqp_properties.undecodable(properties)
        for name in undecodable:  # kept in the reject, escaped (and redacted if unsigned)
            headers.setdefault(f"amqp-{name.replace('_', '-')}", properties[name])
        info = getattr(message, "delivery_info", None) or {}
        self._buffer.append(
            Delivery(
                body=message.body,
                headers=headers,
                token=info.get("delivery_tag"),
                content_encoding=properties.get("content_encoding"),
                redelivered=bool(info.get("redelivered")),
                undecodable=tuple(f"amqp-{n.replace('_', '-')}" for n in undecodable),
            )
        )

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
            self.channel.basic_ack(delivery.token)

    def reject(self, delivery: Delivery, record: bytes) -> None:
        self.producer.publish(
            record,
            exchange="",
            routing_key=self.rejects_name,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        self.channel.basic_ack(delivery.token)

    def purge_rejects(self, older_than: dt.datetime) -> int:
        """Drop rejects recorded before ``older_than`` from the head of the rejects queue (it is
        in time order); the first younger one is put back and ends the purge."""
        dropped = 0
        while True:
            message = self.channel.basic_get(self.rejects_name, no_ack=False)
            if message is None:
                return dropped
            if _rejected_at(message.body) < older_than:
                self.channel.basic_ack(message.delivery_tag)
                dropped += 1
            else:
                self.channel.basic_reject(message.delivery_tag, requeue=True)
                return dropped

    def recover(self) -> None:
        """After a failure: a new connection; RabbitMQ hands unacknowledged messages out again."""
        with contextlib.suppress(Exception):
            self.connection.release()
        self._open()

    def close(self) -> None:
        with contextlib.suppress(Exception):
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
        self._own_pending = False
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists already
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    def _delivery(self, entry_id: Any, fields: dict[Any, Any], redelivered: bool) -> Delivery:
        headers = normal_headers(fields)
        raw = headers.pop(BODY, b"")
        body = raw if isinstance(raw, bytes | str) else b""
        return Delivery(
            body,
            headers,
            entry_id,
            content_encoding=headers.get("content-encoding"),
            redelivered=redelivered,
        )

    def receive(self, max_count: int, timeout: float) -> list[Delivery]:
        deliveries: list[Delivery] = []
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + 30
            claimed = self.client.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_idle_ms, count=max_count
            )
            deliveries += [self._delivery(i, f, True) for i, f in claimed[1] if f]
        if len(deliveries) < max_count:
            # after a failure, first this consumer's own entries it never acknowledged
            start, self._own_pending = ("0" if self._own_pending else ">"), False
            answer = self.client.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: start},
                count=max_count - len(deliveries),
                block=None if start == "0" else max(1, int(timeout * 1000)),
            )
            for _stream, entries in answer or []:
                deliveries += [self._delivery(i, f, start == "0") for i, f in entries if f]
        return deliveries

    def purge_rejects(self, older_than: dt.datetime) -> int:
        """Trim the rejects stream of entries added before ``older_than`` (ids are times)."""
        minid = f"{int(older_than.timestamp() * 1000)}-0"
        return int(self.client.xtrim(self.rejects, minid=minid, approximate=False))

    def recover(self) -> None:
        """After a failure: read this consumer's unacknowledged entries again."""
        self._own_pending = True

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


def _rejected_at(body: object) -> dt.datetime:
    """When a reject record was written (the far past when it cannot be read: purge it)."""
    try:
        raw = body if isinstance(body, bytes | str) else bytes(body)  # type: ignore[call-overload]
        value = dt.datetime.fromisoformat(json.loads(raw)["rejected_at"])
        return aware_utc(value)
    except (ValueError, KeyError, TypeError, RecursionError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def open_source(url: str, *, prefix: str = "") -> IntakeSource:
    """The intake source for a broker URL (``amqp://`` or ``redis://``)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"amqp", "amqps"}:
        return AmqpIntakeSource(url, prefix=prefix)
    if scheme in {"redis", "rediss"}:
        return RedisIntakeSource(url, prefix=prefix)
    raise ValueError(f"the intake needs amqp:// or redis://, not {scheme}://")
