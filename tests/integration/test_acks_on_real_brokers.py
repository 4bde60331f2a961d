"""A worker acknowledges only what it ran (``workers/acks.py``), on the real servers.

The first test replays, step by step, what lost four chunks of inbox delivery in a chaos run:
a message of a consumer's old channel finished after dramatiq made a new consumer (a broker
restart), its ack sent through the new channel with its old delivery tag, which there names a
message delivered but not yet run; then the process ended. The second: a retry dramatiq could
not enqueue (the broker away) must not be acknowledged away.
"""

from __future__ import annotations

import time
from queue import PriorityQueue
from typing import Any

import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import MiddlewareError
from dramatiq.worker import ConsumerThread

from workers.broker import build_broker

pytestmark = pytest.mark.integration


def message(queue: str, body: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue, actor_name="omvant_ack_probe", args=(body,), kwargs={}, options={}
    )


def next_message(consumer: Any) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = next(consumer)
        if got is not None:
            return got
    raise AssertionError("no message delivered within 10 s")


def ready(broker: dramatiq.Broker, queue: str) -> list[str]:
    """The bodies on ``queue``, taken off it (a fresh consumer, acknowledging each)."""
    bodies: list[str] = []
    consumer = broker.consume(queue, prefetch=10, timeout=500)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            got = next(consumer)
            if got is not None:
                bodies.append(got.args[0])
                consumer.ack(got)
    finally:
        consumer.close()
    return sorted(bodies)


def ran(body: str) -> None:
    """The probe actor: its messages are settled by hand here."""


def test_an_ack_through_a_new_channel_never_settles_a_message_that_has_not_run(
    rabbitmq_url: str, queue_prefix: str
) -> None:
    broker = build_broker(rabbitmq_url)
    queue = f"{queue_prefix}notification-dispatch"
    dramatiq.Actor(
        ran, broker=broker, actor_name="omvant_ack_probe", queue_name=queue, priority=0, options={}
    )
    thread = ConsumerThread(
        broker=broker, queue_name=queue, prefetch=1, work_queue=PriorityQueue(), worker_timeout=500
    )
    try:
        broker.enqueue(message(queue, "ran-before"))
        thread.consumer = broker.consume(queue, prefetch=1, timeout=500)
        first = next_message(thread.consumer)  # delivery tag 1 on the first channel
        thread.post_process_message(first)  # ran and acknowledged: gone for good
        broker.enqueue(message(queue, "in-flight"))
        in_flight = next_message(thread.consumer)  # delivery tag 2 on the first channel
        # the broker restarts while a worker thread runs it: dramatiq's consumer thread closes
        # the consumer and makes a new one; RabbitMQ puts "in-flight" back on the queue
        thread.consumer.close()
        broker.enqueue(message(queue, "not-run"))
        thread.consumer = broker.consume(queue, prefetch=2, timeout=500)
        redelivered = [next_message(thread.consumer), next_message(thread.consumer)]
        assert sorted(m.args[0] for m in redelivered) == ["in-flight", "not-run"]
        # the worker thread finishes "in-flight" and acknowledges it through the new consumer,
        # with its old tag (2): on the new channel, tag 2 is the second delivery
        thread.post_process_message(in_flight)
        # the process ends before running what the new channel delivered
        thread.consumer.close()
        assert ready(broker, queue) == ["in-flight", "not-run"]
    finally:
        broker.flush(queue)
        broker.close()


class BrokerAway(MiddlewareError, ConnectionClosed):
    """What dramatiq's broker raises when it cannot reconnect (``ConnectionClosed``), raised
    from a middleware hook (which lets only a ``MiddlewareError`` through)."""


class BrokerAwayForRetries(dramatiq.Middleware):
    """The broker goes away between the delivery and the retry's enqueue: every delayed
    enqueue fails."""

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        if delay:
            raise BrokerAway(OSError("the broker is away"))


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_a_retry_that_cannot_be_enqueued_is_put_back_not_acknowledged(
    kind: str, request: pytest.FixtureRequest, queue_prefix: str
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    broker = build_broker(url)
    queue = f"{queue_prefix}composition"
    runs: list[str] = []

    def failing(body: str) -> None:
        runs.append(body)
        raise TimeoutError("an outage: retried")

    dramatiq.Actor(
        failing,
        broker=broker,
        actor_name="omvant_ack_probe",
        queue_name=queue,
        priority=0,
        options={},
    )
    broker.add_middleware(BrokerAwayForRetries())
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100, queues={queue})
    worker.start()
    try:
        broker.enqueue(message(queue, "must-not-be-lost"))
        deadline = time.monotonic() + 20
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # put back (not acknowledged) at its first failure, it runs again
        assert runs[:2] == ["must-not-be-lost", "must-not-be-lost"]
    finally:
        worker.stop(timeout=5000)
        broker.flush(queue)
        broker.close()
