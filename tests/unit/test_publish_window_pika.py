"""What the RabbitMQ publish window relies on of pika beyond its public blocking API
(``workers/publish_window.py``: ``BlockingChannel._impl``): each check fails if a pika release
changes it, before a dispatch would wait for confirms that never come."""

from __future__ import annotations

import inspect
from typing import Any

import pika
import pika.channel
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection


class RecordingImpl(pika.channel.Channel):
    """A ``pika.channel.Channel`` that records the callbacks a ``BlockingChannel`` adds to it."""

    def __init__(self) -> None:  # no connection: nothing is sent
        self.channel_number = 7
        self.close_callbacks: list[Any] = []

    def add_on_cancel_callback(self, callback: Any) -> None:
        pass

    def add_callback(self, callback: Any, replies: Any, one_shot: bool = True) -> None:
        pass

    def add_on_close_callback(self, callback: Any) -> None:
        self.close_callbacks.append(callback)


class RecordingConnection:
    def __init__(self) -> None:
        self.dispatch_requests: list[int] = []

    def _request_channel_dispatch(self, channel_number: int) -> None:
        self.dispatch_requests.append(channel_number)


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_a_blocking_channel_keeps_its_asynchronous_channel_as_impl() -> None:
    impl = RecordingImpl()
    channel = BlockingChannel(impl, RecordingConnection())  # type: ignore[arg-type]
    assert channel._impl is impl


def test_a_channel_the_broker_closes_ends_a_wait_in_process_data_events() -> None:
    impl, connection = RecordingImpl(), RecordingConnection()
    BlockingChannel(impl, connection)  # type: ignore[arg-type]
    for callback in impl.close_callbacks:
        callback(impl, pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND"))
    assert connection.dispatch_requests == [-7]  # a negative number: "return from the wait"


def test_the_asynchronous_channel_methods_the_window_calls_take_what_it_passes() -> None:
    assert {"ack_nack_callback", "callback"} <= set(
        parameters(pika.channel.Channel.confirm_delivery)
    )
    assert parameters(pika.channel.Channel.basic_publish)[1:6] == [
        "exchange",
        "routing_key",
        "body",
        "properties",
        "mandatory",
    ]
    assert parameters(pika.channel.Channel.add_on_return_callback)[1:] == ["callback"]
    assert isinstance(pika.channel.Channel.is_open, property)
    assert parameters(BlockingConnection.process_data_events)[1:] == ["time_limit"]
    assert parameters(BlockingConnection.add_callback_threadsafe)[1:] == ["callback"]
    assert issubclass(pika.exceptions.ChannelWrongStateError, pika.exceptions.AMQPError)
