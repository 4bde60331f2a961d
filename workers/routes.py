"""Which contract goes to which queue and actor: the whole pipeline on one screen.

    SendCase ──► recipient-validation ──RecipientValidated──► message-composition
      ──MessageComposed──► attachment-check ──AttachmentsCleared──► notification-dispatch
      ──► (NotificationDispatched: recorded)        inbox ──ReadReceipt──► read-receipts

Any stage may end a case with CaseRejected (recorded, not routed).
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.queues import Queues


@dataclass(frozen=True)
class Route:
    """Where messages of one contract are consumed: a queue and a stable actor name."""

    queue: Queues
    actor_name: str
    stage: str


ROUTES: dict[str, Route] = {
    "SendCase": Route(Queues.RECIPIENT_VALIDATION, "validate_recipients", "recipient-validation"),
    "RecipientValidated": Route(Queues.MESSAGE_COMPOSITION, "compose_messages", "composition"),
    "MessageComposed": Route(Queues.ATTACHMENT_CHECK, "check_attachments", "attachment-check"),
    "AttachmentsCleared": Route(
        Queues.NOTIFICATION_DISPATCH, "dispatch_notifications", "notification-dispatch"
    ),
    "ReadReceipt": Route(Queues.READ_RECEIPTS, "collect_read_receipts", "read-receipts"),
}
"""Contract name -> its consumer. Contracts not listed here are terminal facts."""

TERMINAL_CONTRACTS = frozenset({"NotificationDispatched", "CaseRejected"})

STAGES: dict[str, Route] = {route.stage: route for route in ROUTES.values()}
"""Stage name (as ``omvant worker STAGE`` takes it) -> its route."""
