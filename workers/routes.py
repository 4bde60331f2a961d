"""Which contract goes to which queue and actor: the whole pipeline on one screen.

    SendCase ──► recipient-validation ──RecipientValidated──► message-composition
      ──MessageComposed──► attachment-check ──AttachmentsCleared──► notification-dispatch
      (inbox delivery: delivers, writes the notification outbox)
      ──NotificationQueued──► notification-sending (sends; records notified)
      inbox ──ReadReceipt──► read-receipts
      unread follow-ups and the sweep (``omvant sweep``) send through notification-sending's
      protocol too.

Any stage may end a case with CaseRejected (recorded, not routed).

Lanes (``workers/queues.py``): the first five stages each have a normal queue (e.g.
``recipient-validation``), an urgent lane (``recipient-validation.urgent``) consumed by an actor
of higher priority in the same workers, and bulk lanes (``recipient-validation.bulk-1`` ..)
that dispatches are spread over. ``lane_for`` below decides a case's lane.

Intake for any language: ``omvant.intake`` (AMQP exchange, or Redis stream) ──► intake bridge
──► recipient-validation lanes; refused messages ──► ``omvant.intake.rejects``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.queues import NORMAL, URGENT, Queues, bulk_lane, lane_queue, lanes_of


@dataclass(frozen=True)
class Route:
    """Where messages of one contract are consumed: a queue and a stable actor name."""

    queue: Queues
    actor_name: str
    stage: str

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
    "SendCase": Route(Queues.RECIPIENT_VALIDATION, "validate_recipients", "recipient-validation"),
    "RecipientValidated": Route(Queues.MESSAGE_COMPOSITION, "compose_messages", "composition"),
    "MessageComposed": Route(Queues.ATTACHMENT_CHECK, "check_attachments", "attachment-check"),
    "AttachmentsCleared": Route(
        Queues.NOTIFICATION_DISPATCH, "dispatch_notifications", "notification-dispatch"
    ),
    "NotificationQueued": Route(
        Queues.NOTIFICATION_SENDING, "send_notifications", "notification-sending"
    ),
    "ReadReceipt": Route(Queues.READ_RECEIPTS, "collect_read_receipts", "read-receipts"),
}
"""Contract name -> its consumer. Contracts not listed here are terminal facts."""

TERMINAL_CONTRACTS = frozenset({"NotificationDispatched", "CaseRejected"})

STAGES: dict[str, Route] = {route.stage: route for route in ROUTES.values()}
"""Stage name (as ``omvant worker STAGE`` takes it) -> its route."""


def lane_for(priority: str, batch_lane: int | None) -> str:
    """The lane of a case: urgent first, then a dispatch's bulk lane, else the normal lane."""
    if priority == URGENT:
        return URGENT
    if batch_lane is not None:
        return bulk_lane(batch_lane)
    return NORMAL
