"""Every queue name in one place (kebab-case nouns).

Each pipeline stage has lanes: its plain queue (the normal lane: single cases from clinics and
integrations), an urgent lane that the same workers take first, and a few bulk lanes that
dispatches are spread over so that concurrent dispatches share the workers fairly.
"""

from __future__ import annotations

from enum import StrEnum


class Queues(StrEnum):
    """The pipeline's queues; the intake queue is the recipient-validation queue."""

    RECIPIENT_VALIDATION = "recipient-validation"
    MESSAGE_COMPOSITION = "message-composition"
    ATTACHMENT_CHECK = "attachment-check"
    NOTIFICATION_DISPATCH = "notification-dispatch"
    """Inbox delivery (the queue keeps its published name): delivers, writes the outbox."""
    NOTIFICATION_SENDING = "notification-sending"
    """Sends the notifications of the outbox (ids on the queue, rows in the ledger)."""
    READ_RECEIPTS = "read-receipts"


URGENT = "urgent"
NORMAL = "normal"
BULK_LANES = 2
"""Bulk lanes per stage: each running dispatch is given the least busy one."""

LANED = frozenset(
    {
        Queues.RECIPIENT_VALIDATION,
        Queues.MESSAGE_COMPOSITION,
        Queues.ATTACHMENT_CHECK,
        Queues.NOTIFICATION_DISPATCH,
        Queues.NOTIFICATION_SENDING,
    }
)
"""The stages whose queues have urgent and bulk lanes (read receipts are one small queue)."""


def bulk_lane(number: int) -> str:
    """The name of bulk lane ``number`` (1-based)."""
    return f"bulk-{number}"


def is_bulk_lane(lane: str) -> bool:
    """Whether ``lane`` is one of the bulk lanes (a dispatch's)."""
    return lane.startswith("bulk-")


def lanes_of(queue: Queues | str) -> tuple[str, ...]:
    """The lanes of a stage's queue: normal first."""
    if queue not in LANED:
        return (NORMAL,)
    return (NORMAL, URGENT, *(bulk_lane(n) for n in range(1, BULK_LANES + 1)))


def lane_queue(queue: Queues | str, lane: str = NORMAL) -> str:
    """The queue of one lane of a stage (without prefix); the normal lane is the plain queue."""
    if lane == NORMAL or queue not in LANED:
        return str(queue)
    return f"{queue}.{lane}"


def all_queues() -> list[str]:
    """Every queue of every lane (without prefix): what ``omvant worker`` consumes."""
    return [lane_queue(q, lane) for q in Queues for lane in lanes_of(q)]


def queue_name(queue: Queues | str, prefix: str = "") -> str:
    """The broker-side name of ``queue``; a prefix keeps test runs apart on a shared server."""
    return f"{prefix}{queue}"


def unprefixed(name: str, prefix: str) -> str:
    """``name`` as the commands show queues: without the deployment's prefix."""
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


INTAKE_EXCHANGE = "omvant.intake"
"""The AMQP exchange integrations in any language publish plain JSON SendCase records to."""
INTAKE_REJECTS = "omvant.intake.rejects"
"""Where the intake bridge puts what it refused, with the error and the original body."""
