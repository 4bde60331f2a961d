"""The one way back in the state machine: an operator's replay reopens a failed case, or one
rejected for a reason that has since been put right, at the last step it had reached.

Everything else only moves forward (``workers/case_states.py``). The update is guarded by the
state and the reason the failure record names, so a case that moved on (or was reopened by
another replay) is left as it is, and a second replay of the same record changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from workers.case_states import FINAL, RANK, CaseState
from workers.store.cases import utcnow
from workers.store.schema import case_events, cases, templates

_FINAL_VALUES = [state.value for state in FINAL]
_OPEN_VALUES = [state.value for state in CaseState if state not in FINAL]
"""States a case can be put back in (the history also has entries that are no state, such as
``answered``)."""
_current_version = (
    sa.select(templates.c.current_version)
    .where(templates.c.id == cases.c.template_id)
    .scalar_subquery()
)


def last_open_state(conn: sa.Connection, case_id: str) -> CaseState:
    """The last state the case had before it ended (received if its history says nothing)."""
    row = conn.execute(
        sa.select(case_events.c.state)
        .where(case_events.c.case_id == case_id, case_events.c.state.in_(_OPEN_VALUES))
        .order_by(case_events.c.id.desc())
        .limit(1)
    ).first()
    return CaseState(row.state) if row else CaseState.RECEIVED


def reopen(
    conn: sa.Connection,
    case_ids: Iterable[str],
    *,
    reason: str,
    detail: str,
    pin_current_template: bool = False,
) -> dict[str, CaseState]:
    """Put each case that is failed or rejected with ``reason`` back in its last open state.

    ``pin_current_template`` pins the case to its template's current version: a case composes
    with the version current when it arrived, but the fix of a template rejection (a fragment
    added, the template activated) is a newer version, which the replayed case must use.

    Returns
    -------
    dict[str, CaseState]
        The cases reopened now, with the state each is back in.
    """
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    ended = conn.execute(
        sa.select(cases.c.id, cases.c.state).where(
            cases.c.id.in_(ids), cases.c.state.in_(_FINAL_VALUES), cases.c.reason == reason
        )
    ).all()
    now = utcnow()
    reopened: dict[str, CaseState] = {}
    for row in ended:
        state = last_open_state(conn, row.id)
        moved = conn.execute(
            cases.update()
            .where(cases.c.id == row.id, cases.c.state == row.state, cases.c.reason == reason)
            .values(
                state=state.value,
                state_rank=RANK[state],
                reason=None,
                detail=None,
                updated_at=now,
                **({"template_version": _current_version} if pin_current_template else {}),
            )
        ).rowcount
        if moved:
            conn.execute(
                case_events.insert().values(
                    case_id=row.id,
                    state=state.value,
                    stage="replay",
                    reason=None,
                    detail=detail[:500],
                    at=now,
                )
            )
            reopened[row.id] = state
    return reopened
