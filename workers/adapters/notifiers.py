"""Notification channels: SMS and e-mail. A notification never carries health information."""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path

from workers.adapters.outbox_file import JsonlRecorder


class NotificationRefused(RuntimeError):
    """The provider refuses this recipient for good (a permanent failure)."""


class NotifierUnavailable(RuntimeError):
    """The provider could not take the notification now (timeout, 5xx, 429): retry later."""


class SmsGateway(abc.ABC):
    """Sends text messages."""

    @abc.abstractmethod
    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        """Send one SMS; return the provider's reference."""


class EmailSender(abc.ABC):
    """Sends e-mail."""

    @abc.abstractmethod
    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        """Send one e-mail; return the provider's reference (the Message-ID)."""


def _reference(channel: str, key: str) -> str:
    return f"{channel}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class SimulatedSmsGateway(SmsGateway):
    """Records each SMS (in memory, and in ``sms.jsonl`` when given a folder)."""

    def __init__(self, outbox_dir: Path | None = None) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "sms.jsonl" if outbox_dir else None)

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        ref = _reference("sms", idempotency_key)
        self.recorder.append({"ref": ref, "to": to, "text": text, "key": idempotency_key})
        return ref


class SimulatedEmailSender(EmailSender):
    """Records each e-mail (in memory, and in ``email.jsonl`` when given a folder)."""

    def __init__(self, outbox_dir: Path | None = None) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "email.jsonl" if outbox_dir else None)

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        ref = _reference("email", idempotency_key)
        self.recorder.append(
            {"ref": ref, "to": to, "subject": subject, "text": text, "key": idempotency_key}
        )
        return ref
