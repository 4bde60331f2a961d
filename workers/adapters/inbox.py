"""The resident's 1177 inbox: where a composed message is delivered."""

from __future__ import annotations

import abc
import datetime as dt
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

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
