"""Brokers by URL: ``amqp://`` RabbitMQ, ``redis://`` Redis, ``memory://`` in-process."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from workers.message_guard import GuardConsumers, GuardedEncoder


class BrokerUrlError(ValueError):
    """The broker URL names no supported broker."""


def build_broker(
    url: str, *, middleware: list[Middleware] | None = None, confirm: bool = True
) -> dramatiq.Broker:
    """A dramatiq broker for ``url``; extra middleware sees messages after Retries has.

    RabbitMQ queues are durable and publisher confirms are on (``confirm=False`` only for
    filling a benchmark's queue); Redis uses the URL's database.

    Raises
    ------
    BrokerUrlError
        The scheme is none of ``amqp``, ``amqps``, ``redis``, ``rediss``, ``memory``.
    """
    broker: dramatiq.Broker
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    # messages dramatiq cannot decode become quarantine messages (workers/message_guard.py)
    dramatiq.set_encoder(GuardedEncoder())
    if scheme in {"amqp", "amqps"}:
        broker = GuardedRabbitmqBroker(url=url, confirm_delivery=confirm)
    elif scheme in {"redis", "rediss"}:
        broker = GuardedRedisBroker(url=url)  # type: ignore[no-untyped-call]
    elif scheme == "memory":
        broker = GuardedStubBroker()
        broker.emit_after("process_boot")
    else:
        raise BrokerUrlError(f"unsupported broker URL scheme {scheme!r}")
    for extra in middleware or []:
        # "after" hooks run in reverse order: placed before Retries, ours sees its verdict
        broker.add_middleware(extra, before=Retries)
    return broker


class GuardedRabbitmqBroker(GuardConsumers, RabbitmqBroker):
    """RabbitMQ, whose consumers check each message against its queue."""


class GuardedRedisBroker(GuardConsumers, RedisBroker):
    """Redis, whose consumers check each message against its queue."""


class GuardedStubBroker(GuardConsumers, StubBroker):
    """The in-process broker, whose consumers check each message against its queue."""


def broker_kind(broker: dramatiq.Broker) -> str:
    """``rabbitmq``, ``redis`` or ``memory``."""
    if isinstance(broker, RabbitmqBroker):
        return "rabbitmq"
    if isinstance(broker, RedisBroker):
        return "redis"
    return "memory"


def dead_letter_count(broker: dramatiq.Broker, queue_names: list[str]) -> int:
    """How many messages lie in the dead-letter queues of ``queue_names``."""
    kind = broker_kind(broker)
    if kind == "memory":
        return len(getattr(broker, "dead_letters", []))
    total = 0
    if kind == "rabbitmq":
        channel: Any = broker.channel  # type: ignore[attr-defined]
        for name in queue_names:
            try:
                frame = channel.queue_declare(f"{name}.XQ", durable=True, passive=True)
                total += int(frame.method.message_count)
            except Exception:  # noqa: BLE001 - a queue never declared holds no dead letters
                channel = broker.channel  # type: ignore[attr-defined]
        return total
    client: Any = broker.client  # type: ignore[attr-defined]
    namespace = broker.namespace  # type: ignore[attr-defined]
    for name in queue_names:
        key = f"{namespace}:{name}.XQ"
        kind_of = client.type(key)
        kind_of = kind_of.decode() if isinstance(kind_of, bytes) else kind_of
        if kind_of == "zset":
            total += int(client.zcard(key))
        elif kind_of == "list":
            total += int(client.llen(key))
    return total


def queue_depth(broker: dramatiq.Broker, name: str) -> int:
    """Messages on queue ``name`` not yet done: ready ones on RabbitMQ (messages a consumer
    holds unacknowledged are not counted), ready and unacknowledged ones on Redis."""
    kind = broker_kind(broker)
    if kind == "rabbitmq":
        channel: Any = broker.channel  # type: ignore[attr-defined]
        frame = channel.queue_declare(name, durable=True, passive=True)
        return int(frame.method.message_count)
    if kind == "redis":
        client: Any = broker.client  # type: ignore[attr-defined]
        return int(client.hlen(f"{broker.namespace}:{name}.msgs"))  # type: ignore[attr-defined]
    queue: Any = broker.queues.get(name)
    return 0 if queue is None else int(queue.qsize())


def forget_queues(broker: dramatiq.Broker, names: list[str]) -> None:
    """Delete queues (with their delay and dead-letter queues) a benchmark or test made."""
    kind = broker_kind(broker)
    if kind == "rabbitmq":
        channel: Any = broker.channel  # type: ignore[attr-defined]
        for name in names:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{name}{suffix}")
    elif kind == "redis":
        client: Any = broker.client  # type: ignore[attr-defined]
        namespace = broker.namespace  # type: ignore[attr-defined]
        for name in names:
            keys = list(client.scan_iter(match=f"{namespace}:{name}*"))
            if keys:
                client.delete(*keys)
