"""What every stage shares: per-case decisions, recording them, emitting the next contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dramatiq
from pydantic import BaseModel

from contracts.registry import contract_of, envelope_for
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.queues import queue_name
from workers.routes import ROUTES
from workers.store import cases
from workers.store.cases import Transition


@dataclass(frozen=True)
class Advance:
    """The case moves on: the transitions to record, and its record for the next stage."""

    case_id: str
    transitions: tuple[Transition, ...]
    next_item: BaseModel | None = None


@dataclass(frozen=True)
class Reject:
    """The case ends here with a stable reason code."""

    case_id: str
    reason: str
    detail: str | None = None
    values: dict[str, object] = field(default_factory=dict)


Decision = Advance | Reject


def settle(
    ctx: Context, *, stage: str, decisions: Sequence[Decision], correlation_id: str
) -> list[BaseModel]:
    """Record the decisions in one transaction, then emit the next contract for the cases that
    moved on. Returns the records emitted."""
    transitions: list[Transition] = []
    for decision in decisions:
        if isinstance(decision, Advance):
            transitions.extend(decision.transitions)
        else:
            transitions.append(
                Transition(
                    decision.case_id,
                    CaseState.REJECTED,
                    decision.values,
                    reason=decision.reason,
                    detail=decision.detail,
                )
            )
    with ctx.engine.begin() as conn:
        holding = cases.apply(conn, transitions, stage=stage)
    onward = [
        d.next_item
        for d in decisions
        if isinstance(d, Advance) and d.next_item is not None and d.case_id in holding
    ]
    emit(ctx, onward, correlation_id=correlation_id)
    return onward


def emit(ctx: Context, items: Sequence[BaseModel], *, correlation_id: str) -> None:
    """Put records of one contract on the queue its route names, in chunks.

    Urgent and normal cases travel in separate messages; urgent ones get the broker's
    higher priority where the broker has one.
    """
    if not items:
        return
    name, _ = contract_of(type(items[0]))
    route = ROUTES.get(name)
    if route is None:
        return
    size = max(1, ctx.settings.chunk_size)
    lanes: dict[str, list[BaseModel]] = {}
    for item in items:
        lanes.setdefault(str(getattr(item, "priority", "normal")), []).append(item)
    for lane, lane_items in lanes.items():
        for start in range(0, len(lane_items), size):
            envelope = envelope_for(lane_items[start : start + size], correlation_id=correlation_id)
            enqueue(
                ctx.broker,
                route.queue,
                route.actor_name,
                envelope.model_dump(mode="json"),
                prefix=ctx.settings.queue_prefix,
                urgent=lane == "urgent",
            )


def enqueue(
    broker: dramatiq.Broker,
    queue: str,
    actor_name: str,
    envelope: dict[str, object],
    *,
    prefix: str = "",
    urgent: bool = False,
) -> None:
    """Put one envelope on a queue for an actor, by name: no actor object needed."""
    options: dict[str, object] = {"broker_priority": 9} if urgent else {}
    broker.enqueue(
        dramatiq.Message(
            queue_name=queue_name(queue, prefix),
            actor_name=actor_name,
            args=(envelope,),
            kwargs={},
            options=options,
        )
    )
