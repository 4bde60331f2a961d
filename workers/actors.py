"""The thin shells that connect each stage's ``process`` to its queue as a dramatiq actor.

A shell never lets bad input crash a worker or loop: an unreadable message is recorded with a
reason code and acknowledged. A chunk that fails technically is split into single cases so one
bad case cannot take its chunk-mates to the dead-letter queue (an outage, which fails every case
alike, is retried whole instead: ``workers/transient.py``); a single case that keeps failing is
retried with backoff, then dead-lettered and its case recorded as failed. A chunk with invalid
records is split too, so its valid records still run.

Before a chunk runs, the shell asks (cached, ``workers.batch_control``) about the dispatches
its cases belong to: a paused batch's cases go back on their lane with a delay, a cancelled
batch's cases are rejected with ``batch-cancelled``; the rest run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy

from contracts.envelope import origin_message_id, split_message_id
from contracts.read_receipt import NAME as READ_RECEIPT
from contracts.registry import ContractError, Parsed, parse
from contracts.send_case import NAME as SEND_CASE
from workers import case_ownership, failures, metrics
from workers.after_message import AfterMessage
from workers.answer_seal import answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState, ends_until
from workers.chunk_split import put_back_one_by_one
from workers.log import get_logger
from workers.message_guard import UNREADABLE_ACTOR, record_quarantined
from workers.queues import URGENT, lane_queue, lanes_of, queue_name
from workers.reasons import Reason
from workers.routes import ROUTES, Process, Route
from workers.stage import emit, ending
from workers.store import batches, cases
from workers.store import failures as failure_store
from workers.store.batches import BatchStatus
from workers.store.engine import reads
from workers.transient import MAX_BACKOFF_MS, MIN_BACKOFF_MS, is_outage, retry_when

log = get_logger(__name__)

NORMAL_PRIORITY = 10
URGENT_PRIORITY = 0
"""dramatiq runs lower numbers first: a worker takes an urgent chunk before any other."""


def _body_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        return json.dumps({"args": list(args), "kwargs": kwargs}, default=str)
    except (TypeError, ValueError):
        return repr((args, kwargs))


def run_message(
    contract: str, process: Process, ctx: Context, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Run one message through a stage: the body of every actor."""
    route = ROUTES[contract]
    queue = queue_name(route.queue, ctx.settings.queue_prefix)
    try:
        if len(args) != 1 or kwargs:
            raise ContractError("malformed-message", "an actor takes exactly one envelope")
        parsed = parse(args[0])
        if parsed.envelope.contract != contract:
            raise ContractError(
                Reason.WRONG_QUEUE, f"{parsed.envelope.contract} does not belong on {queue}"
            )
    except ContractError as exc:
        if split_unreadable_chunk(route, ctx, args, exc):
            return
        with ctx.engine.begin() as conn:
            cases.record_unreadable(
                conn,
                queue=queue,
                reason=exc.reason,
                detail=exc.detail,
                body=_body_text(args, kwargs),
                settings=ctx.settings,
            )
        log.warning("message rejected", queue=queue, reason=exc.reason, detail=exc.detail)
        return
    held = hold_by_batch(contract, parsed, ctx)
    if held is None:
        return
    parsed = held
    owned, chunk_cases = drop_foreign_cases(parsed, ctx, queue)
    if owned is None:
        return
    parsed = owned
    stage_ctx = dataclasses.replace(
        ctx, reading=failures.reading(parsed, _case_id), chunk_cases=chunk_cases
    )
    try:
        process(parsed, stage_ctx)
    except Exception as exc:
        if len(parsed.items) <= 1 or is_outage(exc) or isinstance(exc, dramatiq.Retry):
            raise  # an outage, or a provider's "wait": retry the chunk whole
        log.warning(
            "chunk failed; splitting it into single cases",
            queue=queue,
            cases=len(parsed.items),
            error=type(exc).__name__,
        )
        for index, item in enumerate(parsed.items):
            emit(
                ctx,
                [item],
                correlation_id=parsed.envelope.correlation_id,
                message_id=split_message_id(parsed.envelope.message_id, index),
            )


def split_unreadable_chunk(
    route: Route, ctx: Context, args: tuple[Any, ...], error: ContractError
) -> bool:
    """An envelope whose records do not all validate: put each record back as a message of
    its own, so the valid ones run and only the invalid ones are recorded. Returns whether it
    split (a single record, or an envelope that is not one, is recorded as it is)."""
    raw = args[0] if len(args) == 1 else None
    if error.reason != "invalid-payload" or not isinstance(raw, dict):
        return False
    records = put_back_one_by_one(route, ctx, raw)
    if records:
        log.warning("chunk with invalid records split", queue=route.queue, records=records)
    return bool(records)


def _cancelled(views: dict[str, Any], item: Any) -> bool:
    view = views.get(getattr(item, "batch_id", None) or "")
    return view is not None and view.status == BatchStatus.CANCELLED


def _case_id(item: Any) -> str:
    resolved = getattr(item, "resolved_case_id", None)
    return str(resolved() if resolved else item.case_id)


def drop_foreign_cases(
    parsed: Parsed, ctx: Context, queue: str
) -> tuple[Parsed | None, case_ownership.ChunkCases]:
    """Record and drop the records naming another clinic's case (``case-not-owned``); return
    what may run (or None), and what was read of the cases (``case_ownership.read_chunk``)."""
    with reads(ctx.engine).connect() as conn:
        chunk_cases = case_ownership.read_chunk(conn, parsed.items)
    dropped = chunk_cases.foreign
    if not dropped:
        return parsed, chunk_cases
    with ctx.engine.begin() as conn:
        for item in dropped:
            cases.record_unreadable(
                conn,
                queue=queue,
                reason=Reason.CASE_NOT_OWNED,
                detail=f"case {item.case_id} is not {item.clinic_hsa_id}'s",
                body=None,
            )
    log.warning("records naming another clinic's case dropped", queue=queue, records=len(dropped))
    running = [item for item in parsed.items if item not in dropped]
    return (Parsed(envelope=parsed.envelope, items=running) if running else None), chunk_cases


def hold_by_batch(contract: str, parsed: Parsed, ctx: Context) -> Parsed | None:
    """Apply pause and cancel of the chunk's dispatches; return what may run now (or None).
    Cancelling stops cases before the inbox; a case already delivered is still notified, and so
    is one whose delivery had begun (its delivery key recorded: a crash in the middle of a chunk
    may have left it in the inbox), which finishes its idempotent delivery."""
    views = ctx.batches.views(getattr(i, "batch_id", None) for i in parsed.items)
    if all(v.status == BatchStatus.RUNNING for v in views.values()):
        return parsed
    paused: list[Any] = []
    cancelled: list[Any] = []
    running: list[Any] = []
    held = [b for b, v in views.items() if v.status != BatchStatus.RUNNING]
    past_the_inbox = ends_until(ROUTES[contract].stage) is None
    with ctx.engine.connect() as conn:
        owners = batches.clinics_of(conn, held)
        halted = [i for i in parsed.items if _cancelled(views, i)]
        begun = set() if past_the_inbox else cases.with_delivery_key(conn, map(_case_id, halted))
    for item in parsed.items:
        batch_id = getattr(item, "batch_id", None) or ""
        view = views.get(batch_id)
        status = view.status if view else BatchStatus.RUNNING
        clinic = getattr(item, "clinic_hsa_id", None)
        if batch_id in owners and clinic is not None and owners[batch_id] != clinic:
            status = BatchStatus.RUNNING  # another clinic's dispatch: batch-not-owned at intake
        if status == BatchStatus.CANCELLED and (past_the_inbox or _case_id(item) in begun):
            status = BatchStatus.RUNNING  # the message is (or may be) in the inbox: it is told
        {BatchStatus.PAUSED: paused, BatchStatus.CANCELLED: cancelled}.get(status, running).append(
            item
        )
    correlation_id = parsed.envelope.correlation_id
    if paused:
        emit(
            ctx, paused, correlation_id=correlation_id, delay_ms=ctx.settings.batch_pause_recheck_ms
        )
    if cancelled:
        with ctx.engine.begin() as conn:
            origin = origin_message_id(parsed.envelope.message_id)
            case_ownership.record_received(conn, cancelled, correlation_id, origin)
            cases.apply(
                conn,
                ending(
                    [_case_id(i) for i in cancelled],
                    CaseState.REJECTED,
                    decided_by=ROUTES[contract].stage,
                    reason=Reason.BATCH_CANCELLED,
                ),
                stage="batch-control",
            )
    if not running:
        return None
    return Parsed(envelope=parsed.envelope, items=running)


class RecordDeadLetters(AfterMessage):
    """After dramatiq gives up on a message, record as failed those of its cases that have
    not passed its stage (``case_states.ends_until``: a case the message's earlier delivery moved
    on, or one already delivered, notified or read, keeps its state), and keep a failure record
    of the message (``workers/failures.py``) in the same transaction: ``outage`` when an outside
    system or server was down, else ``technical-failure``."""

    def __init__(self, context: Callable[[], Context]) -> None:
        self.context = context

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        if exception is None or not message.failed:
            return
        try:
            parsed = parse(message.args[0]) if len(message.args) == 1 else None
        except ContractError:
            parsed = None
        case_ids: list[str] = []
        if parsed is not None:  # Omvänt's id of each case (a SendCase's is derived: _case_id)
            case_ids = [_case_id(item) for item in parsed.items] or list(parsed.envelope.case_ids)
        route = ROUTES.get(parsed.envelope.contract) if parsed is not None else None
        ctx = self.context()
        reason = failures.dead_letter_reason(exception)
        detail = f"{type(exception).__name__} after retries; see omvant dlq"
        record = failures.dead_letter_record(
            message,
            exception,
            prefix=ctx.settings.queue_prefix,
            case_ids=case_ids,
            seal=answer_seal(ctx.settings)
            if parsed is not None and parsed.envelope.contract == READ_RECEIPT
            else None,
        )
        with ctx.engine.begin() as conn:
            cases.apply(
                conn,
                ending(
                    [c for c in case_ids if c],
                    CaseState.FAILED,
                    decided_by=route.stage if route else "dead-letter",
                    reason=reason,
                    detail=detail,
                ),
                stage="dead-letter",
            )
            failure_store.insert(conn, [record])
        metrics.count_dead_letter(message, reason.value, len([c for c in case_ids if c]))
        log.error(
            "message dead-lettered",
            queue=message.queue_name,
            cases=len(case_ids),
            reason=reason.value,
            error=type(exception).__name__,
        )


def declare_actors(
    broker: dramatiq.Broker,
    context: Callable[[], Context],
    *,
    prefix: str = "",
    max_retries: int = 5,
    outage_retry_seconds: float = 600.0,
) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare one actor per stage on ``broker``; ``context`` gives the process's wiring.

    Failures are retried ``max_retries`` times, outages for ``outage_retry_seconds``
    (``workers.transient.retry_when``)."""
    actors: dict[str, dramatiq.Actor[Any, Any]] = {}
    for contract, route in ROUTES.items():
        process = route.processor()

        def body(*args: Any, _c: str = contract, _p: Process = process, **kwargs: Any) -> None:
            run_message(_c, _p, context(), args, kwargs)

        body.__name__ = route.actor_name
        options = {
            "retry_when": retry_when(max_retries, outage_retry_seconds),
            "min_backoff": MIN_BACKOFF_MS,
            "max_backoff": MAX_BACKOFF_MS,
        }
        actors[route.stage] = dramatiq.Actor(
            body,
            broker=broker,
            actor_name=route.actor_name,
            queue_name=queue_name(route.queue, prefix),
            priority=NORMAL_PRIORITY,
            options=options,
        )
        lanes = lanes_of(route.queue)
        if URGENT in lanes:
            actors[f"{route.stage}.{URGENT}"] = dramatiq.Actor(
                body,
                broker=broker,
                actor_name=route.urgent_actor_name,
                queue_name=queue_name(lane_queue(route.queue, URGENT), prefix),
                priority=URGENT_PRIORITY,
                options=options,
            )
        for lane in lanes:
            broker.declare_queue(queue_name(lane_queue(route.queue, lane), prefix))

    def quarantine(*args: Any, **kwargs: Any) -> None:
        reason = record_quarantined(context().engine, args, kwargs, context().settings)
        log.warning("message rejected", reason=reason)

    # the quarantine actor runs on any queue (workers/message_guard.py); it needs one of its own
    actors["unreadable"] = dramatiq.Actor(
        quarantine,
        broker=broker,
        actor_name=UNREADABLE_ACTOR,
        queue_name=queue_name(ROUTES[SEND_CASE].queue, prefix),
        priority=URGENT_PRIORITY,
        options={"max_retries": max_retries, "min_backoff": 200, "max_backoff": 20_000},
    )
    return actors
