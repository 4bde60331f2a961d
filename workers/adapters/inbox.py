"""The resident's 1177 inbox: where a composed message is delivered, and whence events about
its reading come (published on an AMQP exchange, see ``contracts.inbox_event``)."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kombu

from contracts.inbox_event import InboxEventV2
from workers.adapters.inbox_records import InboxRecords, MemoryInboxRecords, SqliteInboxRecords
from workers.adapters.keyed_records import KeyReused, TakenStats
from workers.adapters.outbox_file import JsonlRecorder


def delivery_key_for(case_id: str) -> str:
    """The delivery key of a case's message: the same on every attempt, in every process."""
    return f"{case_id}:inbox"


@dataclass(frozen=True)
class InboxMessage:
    """A message as it lands in the inbox. ``case_id`` is the sender's reference;
    ``delivery_key`` the idempotency key the inbox stores it under (``delivery_key_for``)."""

    case_id: str
    personnummer: str
    subject: str
    body: str
    signature: str
    sent_on: dt.date
    answerable: bool
    attachment_sha256: tuple[str, ...] = ()
    delivery_key: str = ""

    @property
    def key(self) -> str:
        """The delivery key (the case's own when none was given)."""
        return self.delivery_key or delivery_key_for(self.case_id)


class InboxRefused(RuntimeError):
    """The inbox will not take the message (permanent)."""


class InboxUnavailable(RuntimeError):
    """The inbox could not take the message now (timeout, 5xx, refused connection): retry.

    Attributes
    ----------
    maybe_accepted:
        True when the inbox may have taken it all the same (a timeout after the request was
        sent). Harmless: the retry delivers under the same key, which the inbox deduplicates.
    """

    def __init__(self, detail: str, *, maybe_accepted: bool = False) -> None:
        super().__init__(detail)
        self.maybe_accepted = maybe_accepted


class Inbox(abc.ABC):
    """Delivers messages to residents' inboxes.

    Every implementation MUST be idempotent on ``InboxMessage.key``: delivering under a key the
    inbox has taken before (from any process, before or after a restart of either side) shows
    the resident nothing new and returns the first delivery's inbox id. The dispatch stage
    relies on it: a crash between the inbox taking a message and the record of it is settled
    by delivering again under the same key.
    """

    @abc.abstractmethod
    def deliver(self, message: InboxMessage) -> str:
        """Deliver once per delivery key; return the inbox message id.

        Raises
        ------
        InboxRefused
            The inbox refuses the message for good.
        InboxUnavailable
            The inbox cannot take it now: try again later (with the same key).
        """


class SimulatedInbox(Inbox):
    """Keeps delivered messages by delivery key, as a real inbox API would.

    Given a folder (``OMVANT_SIM_OUTBOX``), the messages are kept in ``inbox.sqlite3`` there,
    shared by every process on the machine, and each new one is appended to ``inbox.jsonl``;
    otherwise in this process's memory (or in ``records``, to share them between instances).
    """

    def __init__(self, outbox_dir: Path | None = None, records: InboxRecords | None = None) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "inbox.jsonl" if outbox_dir else None)
        if records is None:
            records = (
                SqliteInboxRecords(outbox_dir / "inbox.sqlite3")
                if outbox_dir
                else MemoryInboxRecords()
            )
        self.records = records

    def deliver(self, message: InboxMessage) -> str:
        try:
            taken = self.records.take(message.key, message.case_id)
        except KeyReused as exc:
            raise InboxRefused(str(exc)) from exc
        if taken.new:
            self.recorder.append(
                {
                    "inbox_message_id": taken.id,
                    "key": message.key,
                    "case_id": message.case_id,
                    "subject_chars": len(message.subject),
                    "body_chars": len(message.body),
                    "attachments": list(message.attachment_sha256),
                }
            )
        return taken.id

    def delivered_case_ids(self) -> list[str]:
        """The cases delivered here, in order of delivery."""
        found = (self.records.find(key) for key in self.records.taken_keys())
        return [str(f["case_id"]) for f in found if f]

    def stats(self) -> TakenStats:
        """Attempts, distinct messages and duplicates refused (as the HTTP simulator counts)."""
        return self.records.stats()


class InboxEventPublisher(abc.ABC):
    """How the inbox tells the world a resident opened or answered a message."""

    @abc.abstractmethod
    def publish(self, events: Sequence[InboxEventV2]) -> None:
        """Publish events (at least once)."""


class KombuInboxEventPublisher(InboxEventPublisher):
    """Publishes inbox events as plain JSON on a topic exchange, as the 1177 inbox would.

    ``url`` is any kombu transport: ``amqp://`` in production and tests, ``memory://`` for the
    in-process demo.
    """

    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange = kombu.Exchange(exchange, type="topic", durable=True)

    def publish(self, events: Sequence[InboxEventV2]) -> None:
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
