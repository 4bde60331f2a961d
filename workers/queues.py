"""Every queue name in one place (kebab-case nouns)."""

from __future__ import annotations

from enum import StrEnum


class Queues(StrEnum):
    """The pipeline's queues; the intake queue is the recipient-validation queue."""

    RECIPIENT_VALIDATION = "recipient-validation"
    MESSAGE_COMPOSITION = "message-composition"
    ATTACHMENT_CHECK = "attachment-check"
    NOTIFICATION_DISPATCH = "notification-dispatch"
    READ_RECEIPTS = "read-receipts"


INTAKE = Queues.RECIPIENT_VALIDATION
"""Where integration teams and ``omvant push`` put ``SendCase`` messages."""


def queue_name(queue: Queues | str, prefix: str = "") -> str:
    """The broker-side name of ``queue``; a prefix keeps test runs apart on a shared server."""
    return f"{prefix}{queue}"
