"""Redis consumers that never strand a message in an unacknowledged set.

dramatiq's Redis broker moves each fetched message id from the queue into the set
``<namespace>:__acks__.<broker id>.<queue>`` (its Lua ``fetch``), and deletes it from there on
ack. Two faults leave ids in such a set with nobody to run them:

- **A cut connection** (``CLIENT KILL``, a network blip, a Redis restart). The fetch ran in
  Redis but its answer never arrived, or the consumer thread dropped what it held: on a
  connection error dramatiq's ``ConsumerThread`` throws away its delay queue (every message
  of a ``.DQ`` queue it was holding until its eta) and its consumer's prefetched messages,
  without requeueing them. The worker process lives on and keeps its heartbeat fresh, so
  dramatiq's maintenance (which only requeues the sets of dead workers) never gives them back:
  they are lost until that process ends.
- **A killed worker process** (``kill -9``). Its heartbeat goes stale and dramatiq's
  maintenance would requeue its sets, but maintenance runs by chance (0.1 % of commands, per
  queue), so a quiet queue waits many minutes.

``ReclaimingRedisConsumer`` repairs both, every ``RECLAIM_SECONDS`` and whenever it is made
(dramatiq makes a new consumer after each connection error):

1. it compares its own set with what this process really holds (messages handed to worker
   threads and not yet acknowledged; a delay queue's consumer holds none after a restart,
   since the consumer thread dropped them) and puts the difference back on the queue with
   dramatiq's own ``requeue`` command (which moves an id only if it is still in the set, so a
   concurrent ack wins);
2. it runs dramatiq's maintenance for its queue (dead workers' sets requeued), deterministically.

A requeued message may run twice if a worker was in fact about to finish it: every stage is
idempotent, as it must be for RabbitMQ's redeliveries too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis

from workers.log import get_logger
from workers.redis_wake import WakingRedisConsumer

RECLAIM_SECONDS = 10.0
"""How often a consumer looks for stranded ids in its set and runs the queue's maintenance."""

log = get_logger(__name__)


class HeldMessages:
    """The Redis ids of messages this process handed to its worker threads and has not yet
    acknowledged, per queue (shared by the successive consumers of one queue)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, set[str]] = {}

    def add(self, queue_name: str, message_id: str) -> None:
        """A message was handed out."""
        with self._lock:
            self._ids.setdefault(queue_name, set()).add(message_id)

    def discard(self, queue_name: str, message_ids: list[str]) -> None:
        """Messages acknowledged, dead-lettered or requeued."""
        with self._lock:
            held = self._ids.get(queue_name)
            if held is not None:
                held.difference_update(message_ids)

    def clear(self, queue_name: str) -> None:
        """Forget every message of a queue (its holder dropped them)."""
        with self._lock:
            self._ids.pop(queue_name, None)

    def of(self, queue_name: str) -> set[str]:
        """A copy of a queue's held ids."""
        with self._lock:
            return set(self._ids.get(queue_name, ()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ReclaimingRedisConsumer(WakingRedisConsumer):
    """dramatiq's Redis consumer, which gives back what its unacknowledged set strands (module
    docstring), woken by enqueues (``workers/redis_wake.py``)."""

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.held: HeldMessages = broker.held_messages
        self.acks_key = f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"
        if queue_name.endswith(".DQ"):
            # a new consumer of a delay queue: its consumer thread dropped what it held
            self.held.clear(queue_name)
        self.next_reclaim = 0.0

    def hold(self, proxy: MessageProxy) -> None:
        """Count a message as handed out (by its Redis id)."""
        message_id = proxy.options.get("redis_message_id")
        if isinstance(message_id, str):
            self.held.add(self.queue_name, message_id)

    def __next__(self) -> MessageProxy | None:
        if not self.message_cache and time.monotonic() >= self.next_reclaim:
            self.next_reclaim = time.monotonic() + RECLAIM_SECONDS
            try:
                self.reclaim()
            except redis.RedisError as exc:  # the fetch reports it (server_watch counts those)
                log.debug("redis reclaim failed", queue=self.queue_name, error=str(exc))
        message = super().__next__()
        if message is not None:
            self.hold(message)
        return message

    def reclaim(self) -> int:
        """Put the ids stranded in this consumer's set back on its queue, then run the queue's
        maintenance; return how many ids went back. Called with the prefetch cache empty, in
        the consumer thread (the only one that hands messages out), so every id in the set is
        either held by a worker thread or stranded."""
        members = {_text(m) for m in self.broker.client.smembers(self.acks_key)}
        stranded = sorted(members - self.held.of(self.queue_name))
        if stranded:
            self.broker.do_requeue(self.queue_name, *stranded)
            log.warning(
                "redis messages stranded unacknowledged put back",
                queue=self.queue_name,
                messages=len(stranded),
            )
        self.broker.maintain(self.queue_name)
        return len(stranded)

    def ack(self, message: MessageProxy) -> None:
        super().ack(message)  # type: ignore[no-untyped-call]
        self._done([message])

    def nack(self, message: MessageProxy) -> None:
        super().nack(message)  # type: ignore[no-untyped-call]
        self._done([message])

    def requeue(self, messages: Any) -> None:
        messages = list(messages)
        super().requeue(messages)  # type: ignore[no-untyped-call]
        self._done(messages)

    def _done(self, messages: list[MessageProxy]) -> None:
        ids = [m.options.get("redis_message_id") for m in messages]
        self.held.discard(self.queue_name, [i for i in ids if isinstance(i, str)])


class ReclaimingRedisBroker:
    """Mixed into dramatiq's ``RedisBroker``: its consumers reclaim stranded messages."""

    held_messages: HeldMessages

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held_messages = HeldMessages()

    @property
    def consumer_class(self) -> type[ReclaimingRedisConsumer]:
        """dramatiq builds consumers of this class."""
        return ReclaimingRedisConsumer

    def maintain(self, queue_name: str) -> None:
        """Run dramatiq's queue maintenance now (it otherwise runs by a 0.1 % chance per
        command): the unacknowledged sets of workers whose heartbeat is older than the
        heartbeat timeout go back to ``queue_name``; expired dead letters are dropped. Also
        this process's heartbeat."""
        broker: Any = self
        broker.scripts["dispatch"](
            args=[
                "maintain",  # no command of the script's: maintenance and the heartbeat only
                current_millis(),
                queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                1,
                broker._max_unpack_size(),
            ],
            keys=[broker.namespace],
        )
