"""Which contract goes to which queue and actor: the whole pipeline on one screen.

    SendCase ──► recipient-validation ──RecipientValidated──► message-composition
      ──MessageComposed──► attachment-check ──AttachmentsCleared──► notification-dispatch
      (inbox delivery: delivers, writes the notification outbox); a case without attachments
      goes from composition to notification-dispatch (composition clears it: nothing to check)
      ──NotificationQueued──► notification-sending (sends; records notified)
      inbox ──ReadReceipt──► read-receipts
      unread follow-ups and the sweep (``omvant sweep``) send through notification-sending's
      protocol too.

Any stage may end a case: rejected with a reason code, recorded in the system of record, not
routed.

Lanes (``workers/queues.py``): the first five stages each have a normal queue (e.g.
``recipient-validation``), an urgent lane (``recipient-validation.urgent``) consumed by an actor
of higher priority in the same workers, and bulk lanes (``recipient-validation.bulk-1`` ..)
that dispatches are spread over. ``lane_for`` below decides a case's lane.

Intake for any language: ``omvant.intake`` (AMQP exchange, or Redis stream) ──► intake bridge
──► recipient-validation lanes; refused messages ──► ``omvant.intake.rejects``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.attachments_cleared import NAME as ATTACHMENTS_CLEARED
from contracts.message_composed import NAME as MESSAGE_COMPOSED
from contracts.notification_queued import NAME as NOTIFICATION_QUEUED
from contracts.read_receipt import NAME as READ_RECEIPT
from contracts.recipient_validated import NAME as RECIPIENT_VALIDATED
from contracts.send_case import NAME as SEND_CASE
from workers.queues import NORMAL, URGENT, Queues, bulk_lane, lane_queue, lanes_of
from workers.server_probe import (
    BLOB_STORE,
    CLAMD,
    DIRECTORY,
    EMAIL_API,
    INBOX,
    REDIS,
    SMS_GATEWAY,
    SMTP,
)

if TYPE_CHECKING:
    from contracts.registry import Parsed
    from workers.bootstrap import Context

Process = Callable[["Parsed", "Context"], None]
"""A stage's ``process(parsed, ctx)``: runs one parsed message."""


@dataclass(frozen=True)
class Route:
    """Where messages of one contract are consumed: a queue, a stable actor name, the stage
    (as ``omvant worker STAGE`` names it) and the stage module whose ``process`` runs them."""

    queue: Queues
    actor_name: str
    stage: str
    module: str
    """The stage module (``workers.<stage>``): its ``process(parsed, ctx)`` consumes the
    contract. Named, not imported, since every stage module imports this table."""
    servers: tuple[str, ...] = ()
    """The outside servers the stage calls besides the broker and the database
    (``workers.server_probe`` names): ``omvant worker STAGE`` asks each one the settings
    configure before it starts (a simulated one needs nothing)."""

    def processor(self) -> Process:
        """The stage function that consumes this route's contract."""
        process: Process = importlib.import_module(self.module).process
        return process

    @property
    def urgent_actor_name(self) -> str:
        """The actor of the urgent lane: the same stage, taken first by the workers."""
        return f"{self.actor_name}_urgent"

    def lanes(self) -> tuple[str, ...]:
        """This stage's lanes."""
        return lanes_of(self.queue)

    def lane(self, lane: str) -> tuple[str, str]:
        """The queue (without prefix) and actor name of one lane."""
        if lane not in self.lanes():
            lane = NORMAL
        actor = self.urgent_actor_name if lane == URGENT else self.actor_name
        return lane_queue(self.queue, lane), actor


ROUTES: dict[str, Route] = {
    SEND_CASE: Route(
        Queues.RECIPIENT_VALIDATION,
        "validate_recipients",
        "recipient-validation",
        "workers.recipient_validation",
        servers=(DIRECTORY, REDIS, BLOB_STORE),  # blobs: whether a case's files are stored
    ),
    RECIPIENT_VALIDATED: Route(
        Queues.MESSAGE_COMPOSITION, "compose_messages", "composition", "workers.composition"
    ),
    MESSAGE_COMPOSED: Route(
        Queues.ATTACHMENT_CHECK,
        "check_attachments",
        "attachment-check",
        "workers.attachment_check",
        servers=(CLAMD, BLOB_STORE),
    ),
    ATTACHMENTS_CLEARED: Route(
        Queues.NOTIFICATION_DISPATCH,
        "dispatch_notifications",
        "notification-dispatch",
        "workers.notification_dispatch",
        servers=(DIRECTORY, INBOX, REDIS),
    ),
    NOTIFICATION_QUEUED: Route(
        Queues.NOTIFICATION_SENDING,
        "send_notifications",
        "notification-sending",
        "workers.notification_sending",
        servers=(SMS_GATEWAY, EMAIL_API, SMTP, REDIS),
    ),
    READ_RECEIPT: Route(
        Queues.READ_RECEIPTS,
        "collect_read_receipts",
        "read-receipts",
        "workers.read_receipts",
        servers=(EMAIL_API, SMTP),  # the clinic's answer alerts
    ),
}
"""Contract name -> its consumer. Contracts not listed here are terminal facts."""

STAGES: dict[str, Route] = {route.stage: route for route in ROUTES.values()}
"""Stage name (as ``omvant worker STAGE`` takes it) -> its route."""


def lane_for(priority: str, batch_lane: int | None) -> str:
    """The lane of a case: urgent first, then a dispatch's bulk lane, else the normal lane."""
    if priority == URGENT:
        return URGENT
    if batch_lane is not None:
        return bulk_lane(batch_lane)
    return NORMAL
