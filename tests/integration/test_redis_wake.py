"""On a real Redis: an idle consumer takes a message as soon as it is enqueued (woken by the
enqueue's token) rather than after its poll timeout, and a stale token loses nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.noop_actor import noop_actor
from workers.broker import build_broker
from workers.redis_wake import WakingRedisConsumer, wake_key

pytestmark = pytest.mark.integration

IDLE_TIMEOUT_MS = 5_000
"""The consumers' poll timeout here: a message taken well before it was woken."""


@pytest.fixture
def broker(redis_url: str) -> Iterator[Any]:
    made = build_broker(redis_url)
    yield made
    made.close()


def _first_message(consumer: Any, got: list[tuple[float, Any]]) -> None:
    deadline = time.monotonic() + 3 * IDLE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            got.append((time.monotonic(), message))
            return


def test_an_idle_consumer_takes_a_message_at_once_not_after_its_timeout(
    broker: Any, redis_url: str, queue_prefix: str
) -> None:
    name = f"{queue_prefix}wake"
    work = noop_actor(broker, name)
    consumer = broker.consume(name, prefetch=2, timeout=IDLE_TIMEOUT_MS)
    assert isinstance(consumer.inner, WakingRedisConsumer)
    consumer.inner.misses = 20  # idle a long while: dramatiq's poll would sleep 2.5-5 s now
    got: list[tuple[float, Any]] = []
    waiter = threading.Thread(target=_first_message, args=(consumer, got), daemon=True)
    waiter.start()
    time.sleep(0.5)  # the consumer found the queue empty and waits for a token
    sent_at = time.monotonic()
    publisher = build_broker(redis_url)  # another process's broker, as a stage's publish
    publisher.enqueue(work.message(7))
    publisher.close()
    waiter.join(timeout=3 * IDLE_TIMEOUT_MS / 1000)
    assert got, "the consumer never took the message"
    taken_at, message = got[0]
    assert message.args == (7,)
    assert taken_at - sent_at < 1.0  # woken: far below the 5 s poll timeout
    consumer.ack(message)


def test_a_stale_token_costs_a_fetch_and_loses_no_message(broker: Any, queue_prefix: str) -> None:
    name = f"{queue_prefix}stale"
    work = noop_actor(broker, name)
    for n in range(3):
        broker.enqueue(work.message(n))
    key = wake_key(broker.namespace, name)
    assert broker.client.llen(key) == 1  # one token, however many messages
    assert 0 < broker.client.ttl(key) <= 60
    consumer = broker.consume(name, prefetch=3, timeout=200)
    taken = [m for m in (next(consumer) for _ in range(6)) if m is not None]
    assert sorted(m.args[0] for m in taken) == [0, 1, 2]
    for message in taken:
        consumer.ack(message)
    assert broker.client.hlen(f"{broker.namespace}:{name}.msgs") == 0
    assert next(consumer) is None  # the stale token: one empty fetch, and it is taken
    assert broker.client.llen(key) == 0
    started = time.monotonic()
    assert next(consumer) is None  # then an empty queue waits out the timeout, as dramatiq's poll
    assert time.monotonic() - started >= 0.15


def test_a_delayed_message_wakes_its_delay_queue(broker: Any, queue_prefix: str) -> None:
    name = f"{queue_prefix}later"
    work = noop_actor(broker, name)
    broker.enqueue(work.message(1), delay=10_000)
    assert broker.client.llen(wake_key(broker.namespace, f"{name}.DQ")) == 1
    assert broker.client.llen(wake_key(broker.namespace, name)) == 0
