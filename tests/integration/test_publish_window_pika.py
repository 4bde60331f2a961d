"""The RabbitMQ publish window on pika's asynchronous channel (``_impl``), against the real
server: what it relies on of pika still holds, and a channel the broker closes while messages
are in flight neither hangs the window nor loses a message."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import pika

from workers.broker import build_broker, queue_depth
from workers.publish_window import RabbitmqWindow, publish_window
from workers.queues import queue_name


def message(queue: str, index: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue, actor_name="noop", args=(index,), kwargs={}, options={}
    )


def within(seconds: float, work: Any) -> Any:
    """``work()``'s result, failing the test if it has not returned within ``seconds``."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return result[0]


def test_a_channel_the_broker_closes_with_messages_in_flight_loses_none_and_hangs_not(
    rabbitmq_url: str, queue_prefix: str
) -> None:
    broker = build_broker(rabbitmq_url)
    queue = queue_name("window-closed", queue_prefix)
    held = 0
    for _ in range(5):  # the Close lands in a publish's quick look or in a wait: both happen
        window = publish_window(broker)
        assert isinstance(window, RabbitmqWindow)
        confirmed = window.publish(message(queue, 0), 1) + window.drain()
        # a frame the broker answers with Channel.Close (404: no such exchange), then messages
        # published behind it on the same channel, which the broker never confirms
        window._channel.basic_publish(  # the test breaks the window's own channel
            exchange=f"{queue_prefix}no-such-exchange", routing_key="x", body=b""
        )
        confirmed += sum(window.publish(message(queue, i), 1) for i in range(1, 5))
        confirmed += within(20, window.drain)
        confirmed += window.publish(message(queue, 5), 1) + window.drain()  # the window reopens
        window.close()
        assert confirmed == 6
        depth = queue_depth(broker, queue)
        assert 6 <= depth - held <= 10  # each there, some maybe twice (unconfirmed)
        held = depth
    broker.close()


def test_pika_still_offers_what_the_window_uses_of_its_internals(rabbitmq_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        blocking = connection.channel()
        channel = blocking._impl
        assert isinstance(channel, pika.channel.Channel)
        acks: list[Any] = []
        selected: list[bool] = []
        channel.confirm_delivery(ack_nack_callback=acks.append, callback=selected.append)
        while not selected:
            connection.process_data_events(time_limit=0.05)
        channel.basic_publish(exchange="", routing_key="omvant-window-probe", body=b"x")
        connection.add_callback_threadsafe(lambda: None)
        # a callback added this way ends a wait with no time limit at once
        within(10, lambda: connection.process_data_events(time_limit=None))
        while not acks:
            connection.process_data_events(time_limit=0.05)
        assert isinstance(acks[0].method, pika.spec.Basic.Ack)
        assert acks[0].method.delivery_tag == 1
    finally:
        connection.close()
