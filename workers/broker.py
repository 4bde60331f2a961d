"""Brokers by URL: ``amqp://`` RabbitMQ, ``redis://`` Redis, ``memory://`` in-process."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from workers.acks import ChannelBoundAcks, use_put_back_retries
from workers.message_guard import GuardConsumers, GuardedEncoder
from workers.redis_reclaim import ReclaimingRedisBroker
from workers.redis_wake import WakingRedisBroker


class BrokerUrlError(ValueError):
    """The broker URL names no supported broker."""


QUORUM_SETTING = "OMVANT_RABBITMQ_QUORUM"
DELIVERY_LIMIT_SETTING = "OMVANT_RABBITMQ_DELIVERY_LIMIT"
DEFAULT_DELIVERY_LIMIT = 20
"""How often RabbitMQ redelivers one message of a quorum queue (a consumer died holding it)
before it dead-letters it to ``<queue>.XQ``: the broker's own guard against a poison message."""


def quorum_from_environment() -> tuple[bool, int]:
    """Whether RabbitMQ queues are quorum queues, and their delivery limit.

    Read from the environment by every process that declares queues (producers and workers
    alike), because all of them must declare a queue with the same type or RabbitMQ refuses.

    Raises
    ------
    BrokerUrlError
        The setting is not a boolean or the limit not a positive whole number.
    """
    raw = os.environ.get(QUORUM_SETTING, "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no", ""}:
        raise BrokerUrlError(f"{QUORUM_SETTING} must be true or false, not {raw!r}")
    limit_raw = os.environ.get(DELIVERY_LIMIT_SETTING, str(DEFAULT_DELIVERY_LIMIT)).strip()
    if not (limit_raw.isascii() and limit_raw.isdigit() and len(limit_raw) <= 6) or not int(
        limit_raw
    ):
        raise BrokerUrlError(f"{DELIVERY_LIMIT_SETTING} must be a positive whole number")
    return raw in {"true", "1", "yes"}, int(limit_raw)


REDIS_HEARTBEAT_SETTING = "OMVANT_REDIS_HEARTBEAT_TIMEOUT_MS"
REDIS_MAINTENANCE_SETTING = "OMVANT_REDIS_MAINTENANCE_CHANCE"


def _whole(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise BrokerUrlError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def redis_from_environment() -> tuple[int, int]:
    """How long (ms) a Redis worker may go without a heartbeat before its unacknowledged
    messages go back on their queues, and how many of a million broker commands run that
    check (dramatiq's ``heartbeat_timeout`` and ``maintenance_chance``: 60,000 and 1,000).

    A message whose worker was killed under it comes back only then: this is what hands a
    poison message out again on Redis (``workers/poison.py``). Besides the chance, each
    consumer runs that check for its queue every ``redis_reclaim.RECLAIM_SECONDS``. Lower
    the timeout and a worker stalled longer than it has its messages run twice by another
    worker.

    Raises
    ------
    BrokerUrlError
        A setting is not a whole number in its range.
    """
    return (
        _whole(REDIS_HEARTBEAT_SETTING, 60_000, 1_000, 86_400_000),
        _whole(REDIS_MAINTENANCE_SETTING, 1_000, 0, 1_000_000),
    )


@functools.cache
def _quorum_broker_class() -> type[Any]:
    from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
    from dramatiq.common import xq_name

    class QuorumRabbitmqBroker(GuardedRabbitmqBroker):
        """dramatiq's RabbitMQ broker declaring quorum queues (replicated, with a delivery
        limit) for every queue, its delay queue and its dead-letter queue."""

        delivery_limit = DEFAULT_DELIVERY_LIMIT

        def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
            arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
            arguments.pop("x-max-priority", None)  # quorum queues have no x-max-priority
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.delivery_limit
            return arguments

        def _declare_xq_queue(self, queue_name: str) -> Any:
            return self.channel.queue_declare(
                queue=xq_name(queue_name),
                durable=True,
                arguments={"x-message-ttl": DEAD_MESSAGE_TTL, "x-queue-type": "quorum"},
            )

    return QuorumRabbitmqBroker


def build_broker(
    url: str, *, middleware: list[Middleware] | None = None, confirm: bool = True
) -> dramatiq.Broker:
    """A dramatiq broker for ``url``; extra middleware sees messages after Retries has.

    RabbitMQ queues are durable and publisher confirms are on (``confirm=False`` only for
    filling a benchmark's queue); with ``OMVANT_RABBITMQ_QUORUM=true`` they are quorum queues
    (``quorum_from_environment``); Redis uses the URL's database.

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
        quorum, delivery_limit = quorum_from_environment()
        if quorum:
            quorum_class = _quorum_broker_class()
            broker = quorum_class(url=url, confirm_delivery=confirm)
            broker.delivery_limit = delivery_limit  # type: ignore[attr-defined]
        else:
            broker = GuardedRabbitmqBroker(url=url, confirm_delivery=confirm)
    elif scheme in {"redis", "rediss"}:
        heartbeat_timeout, maintenance_chance = redis_from_environment()
        broker = GuardedRedisBroker(
            url=url, heartbeat_timeout=heartbeat_timeout, maintenance_chance=maintenance_chance
        )
    elif scheme == "memory":
        broker = GuardedStubBroker()
        broker.emit_after("process_boot")
    else:
        raise BrokerUrlError(f"unsupported broker URL scheme {scheme!r}")
    use_put_back_retries(broker)  # a retry that cannot be enqueued is not acknowledged away
    for extra in middleware or []:
        # "after" hooks run in reverse order: placed before Retries, ours sees its verdict
        broker.add_middleware(extra, before=Retries)
    from workers.failures import FailureClock
    from workers.metrics import StageMetrics

    broker.add_middleware(StageMetrics(), before=Retries)
    # placed after Retries, it stamps the first failure before Retries re-enqueues the message
    broker.add_middleware(FailureClock(), after=Retries)
    return broker


class GuardedRabbitmqBroker(GuardConsumers, ChannelBoundAcks, RabbitmqBroker):
    """RabbitMQ, whose consumers check each message against its queue and settle a message
    only on the channel that delivered it (``workers.acks``)."""

    def close(self) -> None:
        """Close every thread's connection with pika silent, whatever the log level.

        dramatiq closes all of them from the stopping thread; the idle ones (a worker thread's
        publishing connection, the main thread's) RabbitMQ has usually dropped for missed
        heartbeats by then, and pika reports each such close at ERROR with tracebacks. A stop
        is not a failure: nothing of it is worth a line.
        """
        pika_logger = logging.getLogger("pika")
        level = pika_logger.level
        pika_logger.setLevel(logging.CRITICAL + 1)
        try:
            super().close()
        finally:
            pika_logger.setLevel(level)


class GuardedRedisBroker(GuardConsumers, WakingRedisBroker, ReclaimingRedisBroker, RedisBroker):
    """Redis, whose consumers check each message against its queue, give back messages
    stranded unacknowledged by a cut connection or a killed worker (``workers.redis_reclaim``)
    and are woken by each enqueue rather than polling (``workers.redis_wake``)."""


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
