"""The benchmark's yardstick: a dramatiq actor that does nothing, on the same broker.

``python -m dramatiq producers.bench_noop --queues <prefix>bench-noop`` runs it with the same
processes as the pipeline's workers and dramatiq's default 8 threads each.
"""

from __future__ import annotations

import dramatiq

from producers.bench import NOOP_ACTOR as ACTOR
from producers.bench import NOOP_QUEUE as QUEUE
from workers.broker import build_broker
from workers.settings import Settings

settings = Settings()
broker = build_broker(settings.broker_url)
dramatiq.set_broker(broker)


def noop(*_args: object) -> None:
    """Nothing at all: what dramatiq alone costs per message."""


actor = dramatiq.Actor(
    noop,
    broker=broker,
    actor_name=ACTOR,
    queue_name=f"{settings.queue_prefix}{QUEUE}",
    priority=0,
    options={},
)
