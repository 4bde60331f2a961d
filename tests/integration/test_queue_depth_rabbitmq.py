"""Queue depths on a real RabbitMQ: a lane that does not exist must not blind the lanes after it
(RabbitMQ closes the channel that asked about a missing queue)."""

from __future__ import annotations

import pika
import pytest

from workers import queue_depth
from workers.broker import build_broker
from workers.dead_letters import xq_depth

pytestmark = pytest.mark.integration


def test_lanes_after_a_missing_one_still_show_their_messages_and_consumers(
    rabbitmq_url: str, queue_prefix: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    normal = f"{queue_prefix}recipient-validation"
    bulk = f"{queue_prefix}recipient-validation.bulk-1"  # the urgent lane between is missing
    for name in (normal, bulk, f"{bulk}.XQ"):
        channel.queue_declare(name, durable=True)
    channel.basic_publish("", bulk, b"{}")
    channel.basic_publish("", f"{bulk}.XQ", b"{}")
    channel.basic_consume(normal, lambda *_: None)
    broker = build_broker(rabbitmq_url)
    try:
        lanes = {d.lane: d for d in queue_depth.snapshot(broker, queue_prefix)[:4]}
        assert lanes["normal"].consumers == 1
        assert lanes["urgent"].ready == 0 and lanes["urgent"].consumers == 0
        assert (lanes["bulk-1"].ready, lanes["bulk-1"].dead_letters) == (1, 1)
        assert xq_depth(broker, f"{queue_prefix}recipient-validation.urgent") == 0
        assert xq_depth(broker, bulk) == 1
    finally:
        broker.close()
        for name in (normal, bulk, f"{bulk}.XQ"):
            channel.queue_delete(name)
        connection.close()
