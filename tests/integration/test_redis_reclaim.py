"""On a real Redis: messages stranded in a consumer's unacknowledged set (a cut connection, a
fetch whose answer was lost, a delay queue dropped, a killed worker) go back to their queue
and run; messages a worker thread holds are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.noop_actor import noop_actor
from workers.broker import build_broker
from workers.redis_reclaim import ReclaimingRedisConsumer

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(redis_url: str, queue_prefix: str) -> Iterator[Any]:
    made = build_broker(redis_url)
    yield made
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"dramatiq:__acks__.*{queue_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
    made.close()


def _queue(broker: Any, name: str) -> None:
    """Three messages (0, 1, 2) waiting on the queue ``name``."""
    work = noop_actor(broker, name)
    for n in range(3):
        broker.enqueue(work.message(n))


def _take(consumer: Any, most: int = 10) -> list[Any]:
    """Messages the consumer hands out (a few polls; it sleeps a little when it has none)."""
    taken: list[Any] = []
    for _ in range(most):
        message = next(consumer)
        if message is None and taken:
            break
        if message is not None:
            taken.append(message)
    return taken


def _acks(broker: Any, queue_name: str) -> set[bytes]:
    return set(broker.client.smembers(f"dramatiq:__acks__.{broker.broker_id}.{queue_name}"))


def test_a_new_consumer_gives_back_what_the_dropped_one_had_prefetched(
    broker: Any, queue_prefix: str
) -> None:
    name = f"{queue_prefix}q"
    _queue(broker, name)
    first = broker.consume(name, prefetch=3, timeout=100)
    assert isinstance(first.inner, ReclaimingRedisConsumer)
    held = next(first)
    assert held is not None
    assert len(_acks(broker, name)) == 3  # two more wait in the cache: dropped with the consumer
    second = broker.consume(name, prefetch=3, timeout=100)  # as after a connection error
    again = _take(second)
    assert sorted(m.args[0] for m in again) == sorted({0, 1, 2} - {held.args[0]})
    for message in [held, *again]:
        second.ack(message)
    assert _acks(broker, name) == set()
    assert broker.client.hlen(f"dramatiq:{name}.msgs") == 0


def test_a_fetch_whose_answer_was_lost_is_given_back(broker: Any, queue_prefix: str) -> None:
    name = f"{queue_prefix}q"
    _queue(broker, name)
    consumer = broker.consume(name, prefetch=3, timeout=100)
    broker.do_fetch(name, 3)  # ran in Redis; its answer never reached a consumer
    assert len(_acks(broker, name)) == 3
    assert sorted(m.args[0] for m in _take(consumer)) == [0, 1, 2]


def test_a_message_a_worker_thread_holds_is_not_given_back(broker: Any, queue_prefix: str) -> None:
    name = f"{queue_prefix}q"
    _queue(broker, name)
    consumer = broker.consume(name, prefetch=1, timeout=100)
    held = next(consumer)
    assert held is not None
    assert consumer.inner.reclaim() == 0
    assert broker.client.llen(f"dramatiq:{name}") == 2  # the other two still wait their turn


def test_a_delay_queue_dropped_by_its_consumer_thread_is_given_back(
    broker: Any, queue_prefix: str
) -> None:
    name = f"{queue_prefix}q"
    later = noop_actor(broker, name)
    broker.enqueue(later.message(7), delay=10)
    delayed = f"{name}.DQ"
    first = broker.consume(delayed, prefetch=5, timeout=100)
    held = _take(first)
    assert [m.args[0] for m in held] == [7]  # dramatiq's consumer thread holds it until its eta
    second = broker.consume(delayed, prefetch=5, timeout=100)  # after it dropped its delay queue
    assert [m.args[0] for m in _take(second)] == [7]


def test_a_killed_workers_messages_go_back_without_waiting_for_chance(
    broker: Any, redis_url: str, queue_prefix: str
) -> None:
    name = f"{queue_prefix}q"
    _queue(broker, name)
    dead = build_broker(redis_url)
    dead.declare_queue(name)
    dead.do_fetch(name, 3)  # then it was killed: its heartbeat stops
    heartbeats = "dramatiq:__heartbeats__"
    broker.client.zadd(heartbeats, {dead.broker_id: 1})
    try:
        live = broker.consume(name, prefetch=3, timeout=100)
        assert sorted(m.args[0] for m in _take(live)) == [0, 1, 2]
        assert broker.client.zscore(heartbeats, dead.broker_id) is None
    finally:
        broker.client.zrem(heartbeats, dead.broker_id)
        dead.close()
