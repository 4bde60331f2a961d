"""What a worker acknowledges: only a message it has run, on the channel that delivered it.

Two ways dramatiq could acknowledge a message that never ran, both seen in a chaos run:

- **A stale delivery tag** (RabbitMQ). A tag names a message only on the channel that
  delivered it, and each new channel counts from 1 again. After a connection error dramatiq's
  consumer thread makes a new consumer (connection and channel); a worker thread that finishes
  a message of the old channel afterwards acknowledges it through the new one
  (``ConsumerThread.post_process_message`` retries the ack until it goes through), and there
  the old tag names another message, just delivered and not yet run: RabbitMQ forgets it, and
  a process that ends before running it loses it. (A broker restart, then a ``kill -9``: four
  chunks of inbox delivery, 357 cases left at ``cleared``.) ``ChannelBoundConsumer`` marks each
  message with the consumer that delivered it and drops an ack or nack of one another consumer
  delivered: that channel is closed, so RabbitMQ has put the message back already and hands it
  out again (a redelivery, which every stage takes as the duplicate it is).
- **A retry that was never enqueued** (every broker). dramatiq's ``Retries`` re-enqueues a
  failed message with a delay, then the message is acknowledged; when that enqueue fails (the
  broker is away) the error is only logged, and the acknowledgement goes on. ``PutBackRetries``
  marks such a message instead, and the consumer puts it back on its queue (RabbitMQ: nack with
  requeue; Redis: dramatiq's requeue) rather than acknowledging it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import dramatiq
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Retries

from workers.after_message import AfterMessage
from workers.log import get_logger

log = get_logger(__name__)

DELIVERED_BY = "_omvant_delivered_by"
"""The attribute of a message proxy naming the consumer (channel) that delivered it."""
PUT_BACK = "_omvant_put_back"
"""The attribute of a message proxy saying: its retry was not enqueued; put it back."""
PUT_BACK_PAUSE_SECONDS = 1.0
"""How long a worker thread waits before it puts back a message whose retry failed."""


def put_back_wanted(message: MessageProxy) -> bool:
    """Whether ``message`` must go back on its queue instead of being acknowledged."""
    return bool(getattr(message, PUT_BACK, False))


class PutBackRetries(AfterMessage, Retries):
    """dramatiq's ``Retries``, except that a retry whose enqueue fails is not lost: the message
    is marked to be put back on its queue (see the module)."""

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        try:
            Retries.after_process_message(self, broker, message, exception=exception)  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - whatever stopped the enqueue, keep the message
            setattr(message, PUT_BACK, True)
            log.warning(
                "retry not enqueued; the message goes back on its queue",
                queue=message.queue_name,
                error=type(exc).__name__,
            )
            # a broker that hands messages out but takes none is not spun against
            time.sleep(PUT_BACK_PAUSE_SECONDS)


def use_put_back_retries(broker: dramatiq.Broker) -> None:
    """Replace the broker's ``Retries`` by ``PutBackRetries`` (same settings), in place."""
    for index, middleware in enumerate(broker.middleware):
        if type(middleware) is Retries:
            replacement = PutBackRetries(
                max_retries=middleware.max_retries,
                min_backoff=middleware.min_backoff,
                max_backoff=middleware.max_backoff,
                retry_when=middleware.retry_when,
            )
            broker.middleware[index] = replacement


class ChannelBoundConsumer(Consumer):
    """A RabbitMQ consumer that settles only the messages its own channel delivered (see the
    module); ``requeue`` puts messages back at once (nack with requeue), where dramatiq's
    waits for the channel to close."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        """dramatiq's ``_RabbitmqConsumer`` (its ``connection``, ``channel``, ``known_tags``)."""

    def __iter__(self) -> ChannelBoundConsumer:
        return self

    def __next__(self) -> MessageProxy | None:
        message: MessageProxy | None = next(self.inner)
        if message is not None:
            setattr(message, DELIVERED_BY, self)
        return message

    def delivered(self, message: MessageProxy) -> bool:
        """Whether this consumer's channel delivered ``message``."""
        return getattr(message, DELIVERED_BY, None) is self

    def _stale(self, message: MessageProxy, what: str) -> bool:
        if self.delivered(message):
            return False
        log.warning(
            f"{what} of a message from a closed channel dropped; RabbitMQ delivers it again",
            queue=message.queue_name,
        )
        return True

    def ack(self, message: MessageProxy) -> None:
        if not self._stale(message, "ack"):
            self.inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        if not self._stale(message, "nack"):
            self.inner.nack(message)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Put this channel's ``messages`` back on the queue now (the others are back)."""
        for message in messages:
            if self._stale(message, "put-back"):
                continue
            tag = message._tag  # the delivery tag dramatiq's RabbitMQ message carries
            self.inner.known_tags.discard(tag)
            try:
                self.inner.connection.add_callback_threadsafe(
                    partial(self.inner.channel.basic_nack, tag, requeue=True)
                )
            except Exception as exc:  # noqa: BLE001 - pika's errors of a closed connection
                # the channel is closing: RabbitMQ puts the message back as it closes
                raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.inner.close()


class ChannelBoundAcks:
    """Mixed into dramatiq's ``RabbitmqBroker``: its consumers are ``ChannelBoundConsumer``."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        """dramatiq's consumer of ``queue_name``, bound to its channel."""
        inner = super().consume(queue_name, prefetch, timeout)  # type: ignore[misc]
        return ChannelBoundConsumer(inner)
