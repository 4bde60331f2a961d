"""The resident's 1177 inbox: where a composed message is delivered, and whence events about
its reading come (published on an AMQP exchange, see ``contracts.inbox_event``)."""

from __future__ import annotations

import abc
import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kombu

from contracts.inbox_event import InboxEventV1
from workers.adapters.outbox_file import JsonlRecorder


@dataclass(frozen=True)
class InboxMessage:
    """A message as it lands in the inbox. ``case_id`` is the sender's reference."""

    case_id: str
    personnummer: str
    subject: str
    body: str
    signature: str
    sent_on: dt.date
    answerable: bool
    attachment_sha256: tuple[str, ...] = ()


class InboxRefused(RuntimeError):
    """The inbox will not take the message (permanent)."""


class Inbox(abc.ABC):
    """Delivers messages to residents' inboxes."""

    @abc.abstractmethod
    def deliver(self, message: InboxMessage) -> str:
        """Deliver once per case: delivering the same case again returns the same inbox id.

        Raises
        ------
        InboxRefused
            The inbox refuses the message for good.
        """


_INBOX_NAMESPACE = uuid.UUID("6f6d7661-6e74-4000-8000-696e626f7831")


class SimulatedInbox(Inbox):
    """Keeps delivered messages (in memory, and in ``inbox.jsonl`` when given a folder)."""

    def __init__(self, outbox_dir: Path | None = None) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "inbox.jsonl" if outbox_dir else None)
        self._delivered: dict[str, str] = {}
        self._lock = threading.Lock()

    def deliver(self, message: InboxMessage) -> str:
        inbox_id = str(uuid.uuid5(_INBOX_NAMESPACE, message.case_id))
        with self._lock:
            if message.case_id in self._delivered:
                return inbox_id
            self._delivered[message.case_id] = inbox_id
        self.recorder.append(
            {
                "inbox_message_id": inbox_id,
                "case_id": message.case_id,
                "subject_chars": len(message.subject),
                "body_chars": len(message.body),
                "attachments": list(message.attachment_sha256),
            }
        )
        return inbox_id

    def delivered_case_ids(self) -> list[str]:
        """The cases delivered here, in order of delivery."""
        with self._lock:
            return list(self._delivered)


class InboxEventPublisher(abc.ABC):
    """How the inbox tells the world a resident opened or answered a message."""

    @abc.abstractmethod
    def publish(self, events: Sequence[InboxEventV1]) -> None:
        """Publish events (at least once)."""


class KombuInboxEventPublisher(InboxEventPublisher):
    """Publishes inbox events as plain JSON on a topic exchange, as the 1177 inbox would.

    ``url`` is any kombu transport: ``amqp://`` in production and tests, ``memory://`` for the
    in-process demo.
    """

    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange = kombu.Exchange(exchange, type="topic", durable=True)

    def publish(self, events: Sequence[InboxEventV1]) -> None:
        with kombu.Connection(self.url) as connection:
            producer = connection.Producer()
            for event in events:
                producer.publish(
                    event.model_dump_json(exclude_none=True),
                    exchange=self.exchange,
                    routing_key=event.routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    declare=[self.exchange],
                    retry=True,
                    retry_policy={"max_retries": 3},
                )
