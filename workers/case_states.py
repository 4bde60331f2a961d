"""The case state machine: states only move forward; rejected and failed are final, and they
end only cases that have not reached the inbox yet (``below_rank`` is the one rule: the SQL
of ``workers.store.cases.apply`` and every caller use it)."""

from __future__ import annotations

from enum import StrEnum

from contracts.attachments_cleared import NAME as ATTACHMENTS_CLEARED
from contracts.message_composed import NAME as MESSAGE_COMPOSED
from contracts.notification_queued import NAME as NOTIFICATION_QUEUED
from contracts.read_receipt import NAME as READ_RECEIPT
from contracts.recipient_validated import NAME as RECIPIENT_VALIDATED
from contracts.send_case import NAME as SEND_CASE
from workers.routes import ROUTES


class CaseState(StrEnum):
    """Where a case is. The order of the first seven is the order of the pipeline."""

    RECEIVED = "received"
    VALIDATED = "validated"
    COMPOSED = "composed"
    CLEARED = "cleared"
    DELIVERED = "delivered"
    NOTIFIED = "notified"
    READ = "read"
    REJECTED = "rejected"
    FAILED = "failed"


RANK: dict[CaseState, int] = {
    CaseState.RECEIVED: 0,
    CaseState.VALIDATED: 10,
    CaseState.COMPOSED: 20,
    CaseState.CLEARED: 30,
    CaseState.DELIVERED: 40,
    CaseState.NOTIFIED: 50,
    CaseState.READ: 60,
    CaseState.REJECTED: 90,
    CaseState.FAILED: 91,
}

FINAL = frozenset({CaseState.REJECTED, CaseState.FAILED})
"""States a case never leaves."""

SETTLED = frozenset(
    {CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ, CaseState.REJECTED, CaseState.FAILED}
)
"""States in which the pipeline may have finished with a case (reading may still follow). A
delivered case has finished only when no notification of it is still to be sent (queued,
pending or retry in the ledger): ``workers.store.notifications.count_settled`` counts so."""

LAST_ENDABLE = CaseState.CLEARED
"""The last state a rejection or failure may end: once the message is in the resident's inbox
(delivered, notified, read), nothing that goes wrong later turns the case into a failure."""

STAGE_INPUT: dict[str, CaseState] = {
    ROUTES[SEND_CASE].stage: CaseState.RECEIVED,
    ROUTES[RECIPIENT_VALIDATED].stage: CaseState.VALIDATED,
    ROUTES[MESSAGE_COMPOSED].stage: CaseState.COMPOSED,
    ROUTES[ATTACHMENTS_CLEARED].stage: CaseState.CLEARED,
    ROUTES[NOTIFICATION_QUEUED].stage: CaseState.DELIVERED,
    ROUTES[READ_RECEIPT].stage: CaseState.DELIVERED,
}
"""The state a stage takes its cases in: its failure may end only cases not yet past it."""


def ends_until(stage: str | None) -> CaseState | None:
    """The last state a rejection or failure decided by ``stage`` may end: its input state;
    None for a stage after delivery (it ends nothing); ``LAST_ENDABLE`` for another name."""
    state = STAGE_INPUT.get(stage or "", LAST_ENDABLE)
    return state if RANK[state] <= RANK[LAST_ENDABLE] else None


def below_rank(target: CaseState, until: CaseState | None = LAST_ENDABLE) -> int:
    """A case moves to ``target`` only while its rank is below this: the rule, once.

    Forward moves go up the pipeline's order only. A move to a final state (rejected, failed)
    ends only cases up to ``until`` (see ``ends_until``), never past ``LAST_ENDABLE``; with
    ``until`` None it ends nothing. Final states rank above every bound: they are never left.
    """
    if target not in FINAL:
        return RANK[target]
    if until is None or RANK[until] > RANK[LAST_ENDABLE]:
        return RANK[CaseState.RECEIVED]  # no case ranks below: nothing is ended
    return RANK[until] + 1


def may_advance(
    current: CaseState, target: CaseState, until: CaseState | None = LAST_ENDABLE
) -> bool:
    """Whether a case in ``current`` may move to ``target`` (for a final ``target``: a
    rejection or failure that may end cases up to ``until``)."""
    return RANK[current] < below_rank(target, until)
