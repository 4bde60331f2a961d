"""Many messages onto the broker without waiting for each: a bulk producer's path.

dramatiq's ``broker.enqueue`` waits for every message: on RabbitMQ a publish and its publisher
confirm, on Redis one call of its enqueue script. A 100,000-case dispatch is 1,000 such waits,
and on a machine whose cores the workers keep busy every wait is also a wait for the scheduler
(the broker's process, then ours): 20-60 ms each, measured. A ``PublishWindow`` keeps up to
``depth`` messages in flight instead, in the caller's thread (a second thread would wait for
the interpreter lock as long, on a loaded machine), and tells the caller how many cases the
broker has confirmed since it last asked:

- RabbitMQ: a connection of its own whose channel is in confirm mode; every ack and nack is
  seen as it comes (RabbitMQ's "handle publisher confirms asynchronously");
- Redis: dramatiq's own enqueue script, the calls written one after another on a connection of
  the window's own and their replies read as they come (a pipeline that never stops);
- any other broker (the in-process one): ``broker.enqueue``, each confirmed at once.

A message the broker refused (a nack; a return: its queue vanished; an error reply) or whose
fate a lost connection left unknown is sent again through ``broker.enqueue``, with dramatiq's
own retries, as every message was sent before. So what the window reports confirmed is on the
broker; a message may be there twice (a confirm lost with its connection, as with
``broker.enqueue``), which the cases' idempotency keys make harmless. ``SendFailed`` says how
many cases the broker holds that the caller has not heard of yet.

Why the RabbitMQ window uses pika's ``BlockingChannel._impl`` (checked with pika 1.3-1.4, the
range ``pyproject.toml`` pins; ``tests/unit/test_publish_window_pika.py`` and
``tests/integration/test_publish_window_pika.py`` fail if what it relies on changes):

- needed: pika's public blocking API has no confirms in flight. ``BlockingChannel``'s confirm
  mode makes every ``basic_publish`` wait for its own confirm (a round trip per chunk: the
  dispatch ran at 1,200-1,700 cases/s so with the workers running), and a transaction
  (``tx_select``) of several publishes that a ``reject-publish`` queue refuses one of ends in
  a channel error ("partial tx completion", tried on RabbitMQ) that does not say which were
  taken. ``SelectConnection`` (the public asynchronous API) would do, its I/O loop started
  and stopped around every wait: the same callbacks, more code (not tried);
- what it uses of ``_impl`` (``pika.channel.Channel``) is that class's public API:
  ``confirm_delivery(ack_nack_callback=, callback=)``, ``add_on_return_callback``,
  ``basic_publish``, ``is_open``; its callbacks run inside ``process_data_events``, in the
  caller's thread, and ``add_callback_threadsafe`` ends a ``process_data_events`` with no
  time limit (pika's own doc of both);
- thread-safety: a window is one thread's (``OmvantClient`` keeps one per thread), as pika
  requires of a ``BlockingConnection``; nothing else touches its connection;
- reconnects: a lost connection raises from ``process_data_events``; a channel the broker
  closes alone ends one wait, and the window checks for it after every wait (else it would
  wait for confirms that never come). Either way what was not confirmed goes through
  ``broker.enqueue`` and the next publish opens a new connection;
- confirms: delivery tags count from 1 on each new channel in confirm mode; an ack with
  ``multiple`` confirms every tag up to it; a return comes before its message's ack.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import deque
from typing import Any

import dramatiq
import pika
import pika.exceptions
import pika.spec
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from workers.log import get_logger

log = get_logger(__name__)

DEPTH = 32
"""Messages in flight before ``publish`` waits for the oldest one's confirm."""


class SendFailed(Exception):
    """The broker could not take a message, even through ``broker.enqueue``'s retries;
    ``confirmed`` cases are on the broker that the caller has not been told of."""

    def __init__(self, confirmed: int, cause: BaseException) -> None:
        super().__init__(f"the broker refused a message: {cause}")
        self.confirmed = confirmed
        self.cause = cause


class PublishWindow:
    """Publishes through ``broker.enqueue``, each message confirmed at once; the base of the
    windows that keep messages in flight."""

    def __init__(self, broker: dramatiq.Broker, *, depth: int = DEPTH) -> None:
        self.broker = broker
        self.depth = depth
        self._confirmed = 0
        self._refused: list[tuple[dramatiq.Message[Any], int]] = []
        """Messages to send again through ``broker.enqueue``, with their cases, in order."""

    def publish(self, message: dramatiq.Message[Any], cases: int) -> int:
        """Send a message of ``cases`` cases; returns the cases confirmed since last asked.

        Raises
        ------
        SendFailed
            The broker would not take a message.
        """
        self._refused.append((message, cases))
        return self._take_confirmed()

    def drain(self) -> int:
        """Wait until every message sent is confirmed; returns the cases confirmed since last
        asked.

        Raises
        ------
        SendFailed
            The broker would not take a message.
        """
        self._settle()
        return self._take_confirmed()

    def close(self) -> None:
        """Close what the window opened of its own (not the broker)."""

    def reset(self) -> None:
        """Forget every message in flight or refused, and close the connection (a late confirm
        must not count for the next send): after a failure, before the window is used again."""
        self._refused.clear()
        self._confirmed = 0
        self.close()

    def _settle(self) -> None:
        """Wait for every confirm still in flight (here: none are)."""

    def _take_confirmed(self) -> int:
        if self._refused:
            # the rest first: a broker confirms a refusal before earlier messages' writes,
            # and what it took must be counted before a refusal stops the send
            self._settle()
        while self._refused:
            message, cases = self._refused[0]
            try:
                self.broker.enqueue(message)
            except Exception as exc:
                confirmed, self._confirmed = self._confirmed, 0
                raise SendFailed(confirmed, exc) from exc
            self._refused.pop(0)
            self._confirmed += cases
        confirmed, self._confirmed = self._confirmed, 0
        return confirmed


class RabbitmqWindow(PublishWindow):
    """Publishes on a channel of its own in confirm mode, seeing every confirm as it comes.

    ``pika.BlockingChannel`` waits for each confirm, so the window registers its callbacks on
    the asynchronous channel beneath it (``_impl``, pika's ``Channel``: see the module), on a
    connection of its own (dramatiq's stays as it is). One thread's only."""

    def __init__(self, broker: RabbitmqBroker, *, depth: int = DEPTH) -> None:
        super().__init__(broker, depth=depth)
        self.broker: RabbitmqBroker = broker
        self._connection: Any = None
        self._channel: Any = None
        self._next_tag = 1
        self._waiting: dict[int, tuple[dramatiq.Message[Any], int]] = {}
        """Delivery tag -> message and cases, for those not yet confirmed."""
        self._returned: set[int] = set()
        self._tag_of: dict[str, int] = {}
        self._blocked = False

    def publish(self, message: dramatiq.Message[Any], cases: int) -> int:
        """See ``PublishWindow.publish``."""
        try:
            channel = self._open()
            self.broker.declare_queue(message.queue_name, ensure=True)
            self.broker.emit_before("enqueue", message, None)
            tag = self._next_tag
            self._next_tag += 1
            self._waiting[tag] = (message, cases)
            self._tag_of[message.message_id] = tag
            channel.basic_publish(
                exchange="",
                routing_key=message.queue_name,
                body=message.encode(),
                properties=pika.BasicProperties(
                    delivery_mode=2,
                    priority=message.options.get("broker_priority"),
                    message_id=message.message_id,
                ),
                mandatory=True,
            )
            self._connection.process_data_events(time_limit=0)
            while len(self._waiting) >= self.depth:
                self._block()
        except (pika.exceptions.AMQPError, dramatiq.errors.ConnectionError) as exc:
            self._lost(exc)
        return self._take_confirmed()

    def _settle(self) -> None:
        try:
            while self._waiting:
                self._block()
        except (pika.exceptions.AMQPError, dramatiq.errors.ConnectionError) as exc:
            self._lost(exc)

    def _open(self) -> Any:
        if self._connection is not None and self._connection.is_open:
            if self._channel is not None and self._channel.is_open:
                return self._channel
            # the broker closed the channel alone (seen in a wait with no time limit): what it
            # had not confirmed never will be, and a new channel's delivery tags start at 1
            self._lost(pika.exceptions.ChannelWrongStateError("the broker closed the channel"))
        self._connection = pika.BlockingConnection(self.broker.parameters)
        channel = self._connection.channel()._impl
        selected: list[bool] = []

        def on_select(_frame: Any) -> None:
            selected.append(True)
            self._wake()

        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=on_select)
        channel.add_on_return_callback(self._on_return)
        while not selected:
            self._connection.process_data_events(time_limit=None)
        self._channel, self._next_tag = channel, 1
        return channel

    def _block(self) -> None:
        """Wait for the next confirm (``_on_confirm`` wakes this up)."""
        self._check_channel()
        self._blocked = True
        try:
            self._connection.process_data_events(time_limit=None)
        finally:
            self._blocked = False
        self._check_channel()

    def _check_channel(self) -> None:
        # closed by the broker: a Channel.Close ends one wait (this one or an earlier
        # ``process_data_events``) and no confirm will come, so no wait may start on it
        if not self._channel.is_open:
            raise pika.exceptions.ChannelWrongStateError("the broker closed the window's channel")

    def _wake(self) -> None:
        # process_data_events(time_limit=None) returns once an event is ready for dispatch;
        # callbacks of the asynchronous channel are not such events, this one is
        self._connection.add_callback_threadsafe(_nothing)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            sorted(t for t in self._waiting if t <= method.delivery_tag)
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            entry = self._waiting.pop(tag, None)
            if entry is None:
                continue
            message, cases = entry
            self._tag_of.pop(message.message_id, None)
            if isinstance(method, pika.spec.Basic.Nack) or tag in self._returned:
                self._returned.discard(tag)
                self._refused.append(entry)
            else:
                self._confirmed += cases
                self.broker.emit_after("enqueue", message, None)
        if self._blocked:
            self._wake()

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        # a return comes before its message's ack: the message reached no queue
        tag = self._tag_of.get(properties.message_id or "")
        if tag is not None:
            self._returned.add(tag)

    def _lost(self, exc: BaseException) -> None:
        """The connection failed: what it had not confirmed goes through broker.enqueue."""
        log.info("publish window lost its connection; sending the rest one by one", error=str(exc))
        self._refused.extend(self._waiting[tag] for tag in sorted(self._waiting))
        self._waiting, self._returned, self._tag_of = {}, set(), {}
        self.close()

    def reset(self) -> None:
        """See ``PublishWindow.reset``."""
        self._waiting, self._returned, self._tag_of = {}, set(), {}
        super().reset()

    def close(self) -> None:
        """Close the window's connection."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()


class RedisWindow(PublishWindow):
    """Writes dramatiq's enqueue script calls (the arguments of its ``_dispatch("enqueue")``)
    on a connection of its own without waiting, and reads each reply as it comes."""

    def __init__(self, broker: RedisBroker, *, depth: int = DEPTH) -> None:
        super().__init__(broker, depth=depth)
        self.broker: RedisBroker = broker
        self._connection: Any = None
        self._sha = ""
        self._in_flight: deque[tuple[dramatiq.Message[Any], dramatiq.Message[Any], int]] = deque()

    def publish(self, message: dramatiq.Message[Any], cases: int) -> int:
        """See ``PublishWindow.publish``."""
        broker = self.broker
        try:
            connection = self._open()
            copy = message.copy(options={"redis_message_id": str(uuid.uuid4())})
            broker.emit_before("enqueue", copy, None)
            connection.send_packed_command(
                connection.pack_command(
                    "EVALSHA",
                    self._sha,
                    1,
                    broker.namespace,
                    "enqueue",
                    current_millis(),
                    copy.queue_name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    broker._should_do_maintenance("enqueue"),
                    broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                    copy.options["redis_message_id"],
                    copy.encode(),
                ),
                check_health=False,
            )
            self._in_flight.append((message, copy, cases))
            while self._in_flight and (
                len(self._in_flight) >= self.depth or connection.can_read(timeout=0)
            ):
                self._read_one(connection)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)
        return self._take_confirmed()

    def _settle(self) -> None:
        try:
            while self._in_flight:
                self._read_one(self._connection)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)

    def _open(self) -> Any:
        if self._connection is None:
            client = self.broker.client
            self._sha = client.script_load(self.broker.scripts["dispatch"].script)
            self._connection = client.connection_pool.get_connection()
        return self._connection

    def _read_one(self, connection: Any) -> None:
        message, copy, cases = self._in_flight[0]
        try:
            connection.read_response()
        except redis.ResponseError:
            self._refused.append((message, cases))
        else:
            self._confirmed += cases
            self.broker.emit_after("enqueue", copy, None)
        self._in_flight.popleft()

    def _lost(self, exc: BaseException) -> None:
        """The connection failed: what it had not confirmed goes through broker.enqueue."""
        log.info("publish window lost its connection; sending the rest one by one", error=str(exc))
        self._refused.extend((message, cases) for message, _, cases in self._in_flight)
        self._in_flight.clear()
        if self._connection is not None:
            self._connection.disconnect()
        self.close()

    def reset(self) -> None:
        """See ``PublishWindow.reset``."""
        if self._connection is not None and self._in_flight:
            self._connection.disconnect()
        self._in_flight.clear()
        super().reset()

    def close(self) -> None:
        """Give the window's connection back to the pool (closed if replies are unread)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._in_flight:
            connection.disconnect()
            self._in_flight.clear()
        self.broker.client.connection_pool.release(connection)


def _nothing() -> None:
    return None


def publish_window(broker: dramatiq.Broker, *, depth: int = DEPTH) -> PublishWindow:
    """The window for ``broker``'s kind."""
    if isinstance(broker, RabbitmqBroker):
        return RabbitmqWindow(broker, depth=depth)
    if isinstance(broker, RedisBroker):
        return RedisWindow(broker, depth=depth)
    return PublishWindow(broker, depth=depth)
