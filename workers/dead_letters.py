"""The broker's own dead-letter queues (``<queue>.XQ``): how deep they are, and removing the
copies of messages that were replayed or purged.

They are not the source of truth: dramatiq keeps there only the last body of a message, not
the error, and drops it after 7 days (``dramatiq_dead_message_ttl``). The failure records in
the database (``workers/failures.py``) are what on-call works from; removing the ``.XQ`` copy
after a replay only keeps the broker's count honest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import dramatiq

from workers.broker import broker_kind
from workers.queue_depth import passive_declare

MAX_SCAN = 10_000
"""Most messages looked at in one RabbitMQ dead-letter queue per removal (they are taken and
given back, so the scan is bounded)."""


def xq_depth(broker: dramatiq.Broker, queue: str) -> int:
    """Messages in the dead-letter queue of the broker-side queue name ``queue``."""
    kind = broker_kind(broker)
    if kind == "memory":
        return len(getattr(broker, "dead_letters_by_queue", {}).get(queue, []))
    if kind == "rabbitmq":
        frame = passive_declare(broker, f"{queue}.XQ")
        return 0 if frame is None else int(frame.method.message_count)
    client: Any = broker.client  # type: ignore[attr-defined]
    return int(client.zcard(f"{broker.namespace}:{queue}.XQ"))  # type: ignore[attr-defined]


def remove_copies(broker: dramatiq.Broker, wanted: Mapping[str, Iterable[str]]) -> int:
    """Remove the dead-letter copies of messages by dramatiq message id, per broker-side queue
    name. Returns how many were removed (a copy that expired already is simply not found)."""
    removed = 0
    for queue, ids in wanted.items():
        targets = {i for i in ids if i}
        if not targets:
            continue
        kind = broker_kind(broker)
        if kind == "memory":
            removed += _remove_from_stub(broker, queue, targets)
        elif kind == "redis":
            removed += _remove_from_redis(broker, queue, targets)
        else:
            removed += _remove_from_rabbitmq(broker, queue, targets)
    return removed


def _remove_from_stub(broker: dramatiq.Broker, queue: str, targets: set[str]) -> int:
    held: list[Any] = getattr(broker, "dead_letters_by_queue", {}).get(queue, [])
    keep = [m for m in held if m.message_id not in targets]
    removed = len(held) - len(keep)
    held[:] = keep
    return removed


def _remove_from_redis(broker: dramatiq.Broker, queue: str, targets: set[str]) -> int:
    client: Any = broker.client  # type: ignore[attr-defined]
    key = f"{broker.namespace}:{queue}.XQ"  # type: ignore[attr-defined]
    pipe = client.pipeline()
    pipe.zrem(key, *targets)
    pipe.hdel(f"{key}.msgs", *targets)
    removed, _ = pipe.execute()
    return int(removed)


def _remove_from_rabbitmq(broker: dramatiq.Broker, queue: str, targets: set[str]) -> int:
    """Take the dead-letter queue's messages without acknowledging them, acknowledge the
    copies wanted, and give the rest back (they keep their order and their TTL)."""
    name = f"{queue}.XQ"
    frame = passive_declare(broker, name)
    if frame is None:
        return 0  # a queue never declared holds no dead letters
    depth = int(frame.method.message_count)
    channel: Any = broker.channel  # type: ignore[attr-defined]
    removed = 0
    taken = 0
    try:
        for _ in range(min(depth, MAX_SCAN)):
            method, _properties, body = channel.basic_get(name, auto_ack=False)
            if method is None:
                break
            taken += 1
            if _message_id(body) in targets:
                channel.basic_ack(method.delivery_tag)
                removed += 1
    finally:
        if taken > removed:
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
    return removed


def _message_id(body: bytes) -> str | None:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return str(decoded.get("message_id")) if isinstance(decoded, dict) else None
