"""Redis consumers woken by each enqueue instead of polling an idle queue.

dramatiq's Redis consumer fetches, and when its queue is empty sleeps an exponential backoff
of up to the worker timeout (``idle_poll_ms``, 100 ms) before it fetches again: a message
arriving on an idle queue (an urgent case at every stage) waited half that on average, and
the whole of it at worst, five stages in a row.

Here every enqueue also pushes a token onto the queue's wake list
(``<namespace>:<queue>.wake``, at most one token, expiring after ``WAKE_TTL_SECONDS``), and an
idle consumer waits for a token with ``BLPOP`` for up to the worker timeout instead of
sleeping: it fetches as soon as a message arrives. A token is only a hint: a lost or stale one
costs one fetch or one timeout, never a message (the queue itself is unchanged, and the
timeout stays the fallback, as for a message enqueued by another client).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from workers.log import get_logger

WAKE_SUFFIX = ".wake"
WAKE_TTL_SECONDS = 60
"""A token nobody took (no consumer idle on the queue) is gone after this."""

log = get_logger(__name__)


def wake_key(namespace: str, queue_name: str) -> str:
    """The wake list of ``queue_name`` (beside dramatiq's own keys of the queue)."""
    return f"{namespace}:{queue_name}{WAKE_SUFFIX}"


class WakingRedisConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, which waits for a wake token rather than sleeping while its
    queue is empty (module docstring)."""

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.wake_key = wake_key(broker.namespace, queue_name)

    def __next__(self) -> MessageProxy | None:
        """The next prefetched message, else a fetch; None after an idle wait (dramatiq's
        ``__next__`` with its sleep replaced by ``idle``)."""
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                room = self.prefetch - self.outstanding_message_count
                if room > 0:
                    self.message_cache = self.broker.do_fetch(self.queue_name, room)
                    if self.message_cache:
                        continue
                self.idle(can_fetch=room > 0)
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def idle(self, *, can_fetch: bool) -> None:
        """Wait for a wake token (up to the worker timeout) when a fetch could take what
        arrives; sleep dramatiq's backoff when the prefetch is full (only an ack makes room)."""
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        if not can_fetch:
            time.sleep(backoff_ms / 1000)
            return
        self.broker.client.blpop([self.wake_key], timeout=self.timeout / 1000)


class WakingRedisBroker:
    """Mixed into dramatiq's ``RedisBroker``: each enqueue wakes the queue's idle consumer
    (a ``WakingRedisConsumer``: ``redis_reclaim.ReclaimingRedisConsumer`` is one)."""

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        """dramatiq's enqueue, then a wake token on the queue the message went to (its delay
        queue when delayed). A failed wake is not a failed enqueue: the consumer's timeout
        finds the message."""
        enqueued = super().enqueue(message, delay=delay)  # type: ignore[misc]
        broker: Any = self
        key = wake_key(broker.namespace, enqueued.queue_name)
        try:
            pipe = broker.client.pipeline(transaction=False)
            pipe.lpush(key, 1)
            pipe.ltrim(key, 0, 0)
            pipe.expire(key, WAKE_TTL_SECONDS)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("redis wake failed", queue=enqueued.queue_name, error=type(exc).__name__)
        return enqueued
