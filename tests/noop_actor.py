"""A do-nothing actor on a queue of a test's own, for the tests of a broker's consumers."""

from __future__ import annotations

import dramatiq


def noop_actor(broker: dramatiq.Broker, queue: str) -> dramatiq.Actor[[int], None]:
    """An actor named ``<queue>-work`` that takes a number and does nothing, on ``queue``,
    which is declared: its messages wait there until a test's consumer takes them."""

    @dramatiq.actor(queue_name=queue, broker=broker, actor_name=f"{queue}-work")
    def work(n: int) -> None:
        del n

    broker.declare_queue(queue)
    return work
