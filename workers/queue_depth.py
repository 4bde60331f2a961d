"""How deep each queue and lane is, on RabbitMQ, Redis and the in-process broker.

For each lane of each stage: messages ready, messages waiting for a retry or a pause (the
delay queue ``.DQ``), dead letters (``.XQ``) and consumers. RabbitMQ counts consumers per
queue; Redis has none (workers poll), so there it is the number of live dramatiq workers on
the broker (``None`` per queue), and the ready count includes messages a worker holds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import dramatiq

from workers.broker import broker_kind
from workers.queues import Queues, lane_queue, lanes_of, queue_name


@dataclass(frozen=True)
class LaneDepth:
    """One lane of one stage's queue, as the broker sees it now."""

    queue: str
    lane: str
    broker_queue: str
    ready: int
    delayed: int
    dead_letters: int
    consumers: int | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def passive_declare(broker: dramatiq.Broker, name: str) -> Any | None:
    """RabbitMQ's answer about the queue ``name`` (its method has ``message_count`` and
    ``consumer_count``), or None when there is no such queue.

    RabbitMQ closes the channel that asked about a missing queue, so the broker's channel is
    dropped then (dramatiq opens a new one on next use); otherwise every later question on it
    would fail and read as an empty queue."""
    try:
        return broker.channel.queue_declare(name, durable=True, passive=True)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a queue not declared yet is empty
        del broker.channel  # type: ignore[attr-defined]
        return None


def _rabbitmq(broker: dramatiq.Broker, name: str) -> tuple[int, int | None]:
    frame = passive_declare(broker, name)
    if frame is None:
        return 0, 0
    return int(frame.method.message_count), int(frame.method.consumer_count)


def _redis(broker: dramatiq.Broker, name: str, suffix: str) -> int:
    client: Any = broker.client  # type: ignore[attr-defined]
    namespace = broker.namespace  # type: ignore[attr-defined]
    if suffix == ".XQ":
        return int(client.zcard(f"{namespace}:{name}.XQ"))
    return int(client.hlen(f"{namespace}:{name}{suffix}.msgs"))


def _stub(broker: dramatiq.Broker, name: str, suffix: str) -> int:
    if suffix == ".XQ":
        return len(getattr(broker, "dead_letters_by_queue", {}).get(name, []))
    queue: Any = broker.queues.get(f"{name}{suffix}")
    return 0 if queue is None else int(queue.qsize())


def lane_depth(broker: dramatiq.Broker, queue: str, lane: str, prefix: str = "") -> LaneDepth:
    """The depth of one lane (``queue`` without prefix)."""
    name = queue_name(lane_queue(queue, lane), prefix)
    kind = broker_kind(broker)
    if kind == "rabbitmq":
        ready, consumers = _rabbitmq(broker, name)
        delayed, _ = _rabbitmq(broker, f"{name}.DQ")
        dead, _ = _rabbitmq(broker, f"{name}.XQ")
        return LaneDepth(str(queue), lane, name, ready, delayed, dead, consumers)
    if kind == "redis":
        return LaneDepth(
            str(queue), lane, name, _redis(broker, name, ""), _redis(broker, name, ".DQ"),
            _redis(broker, name, ".XQ"), None,
        )  # fmt: skip
    return LaneDepth(
        str(queue), lane, name, _stub(broker, name, ""), _stub(broker, name, ".DQ"),
        _stub(broker, name, ".XQ"), None,
    )  # fmt: skip


def snapshot(broker: dramatiq.Broker, prefix: str = "") -> list[LaneDepth]:
    """Every lane of every stage's queue."""
    return [lane_depth(broker, q, lane, prefix) for q in Queues for lane in lanes_of(q)]


def redis_workers(broker: dramatiq.Broker) -> int | None:
    """Live dramatiq workers on a Redis broker (its heartbeats); None on other brokers."""
    if broker_kind(broker) != "redis":
        return None
    client: Any = broker.client  # type: ignore[attr-defined]
    namespace = broker.namespace  # type: ignore[attr-defined]
    timeout_ms = int(getattr(broker, "heartbeat_timeout", 60_000))
    now_ms = int(time.time() * 1000)
    return int(client.zcount(f"{namespace}:__heartbeats__", now_ms - timeout_ms, "+inf"))
