"""The case state machine: states only move forward; rejected and failed are final."""

from __future__ import annotations

from enum import StrEnum


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
"""States in which the pipeline has finished with a case (reading may still follow). A case
stays delivered only when no channel could be notified: dispatch records both at once."""


def may_advance(current: CaseState, target: CaseState) -> bool:
    """Whether a case in ``current`` may move to ``target``."""
    return current not in FINAL and RANK[target] > RANK[current]
