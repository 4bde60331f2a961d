"""Putting failed messages back on their queue, and purging them (``omvant dlq``).

A replay is three steps, in this order, each in its own transaction:

1. **mark**: the record goes from open to *replaying*, and the cases it names that are failed
   (or rejected) with its reason are reopened at the step they had reached
   (``workers/store/reopen.py``);
2. **enqueue**: the original envelope (only the cases still to do) goes back on its queue and
   lane, for its actor (with publisher confirms on RabbitMQ);
3. **confirm**: the record becomes *replayed*; the broker's ``.XQ`` copy is removed.

The mark is taken with the record locked and holds it for ``REPLAY_LEASE_SECONDS`` (60): a
second replay running at the same time skips it ("taken by another replay"), so two on-call
engineers replaying at once enqueue it once. A crash after 1 leaves the record *replaying*; the
next replay takes it again once the lease has run out (at once if the enqueue itself failed),
so nothing is lost. A crash between 2 and 3 can put the message on its queue twice; the stages
are idempotent (states only move forward, the inbox delivery and every notification are keyed
per case), so a case still goes through once. A record whose cases have all settled meanwhile
(sent, read, or ended for another reason) is closed as *settled* without sending anything; a
replayed record is never sent again. Every call writes one audit entry (who, when, which
selection, how many) before it touches a record, kept up to date while it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dramatiq
import sqlalchemy as sa

from contracts.registry import ContractError, envelope_for, parse
from workers.answer_seal import (
    AnswerKeyMissing,
    AnswerUnreadable,
    answer_seal,
    has_sealed_answers,
    open_answers,
)
from workers.case_states import FINAL, CaseState
from workers.dead_letters import remove_copies
from workers.enqueue import enqueue
from workers.queues import queue_name
from workers.reasons import Reason
from workers.routes import ROUTES, lane_for
from workers.settings import Settings
from workers.store import batches, cases
from workers.store import failures as store
from workers.store.cases import utcnow
from workers.store.failures import FailureKind, FailureRow, FailureStatus, Selection
from workers.store.reopen import reopen

TEMPLATE_FIXES = frozenset(
    {Reason.TEMPLATE_INACTIVE, Reason.FRAGMENT_UNKNOWN, Reason.FIELD_MISSING}
)
"""Rejections fixed by a new version of the template: a replayed case uses the current one."""

SETTLED_FOR_GOOD = frozenset({CaseState.NOTIFIED, CaseState.READ})
"""States after which replaying a message would have nothing left to do."""


@dataclass
class Outcome:
    """What a replay or purge did with one record."""

    id: str
    result: str
    """replayed, settled, skipped, not-replayable, failed, purged (or would-... in a dry run)"""
    cases: int = 0
    detail: str | None = None


@dataclass
class Report:
    """What one replay or purge did, record by record, with totals."""

    action: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    dead_letter_copies_removed: int = 0

    def totals(self) -> dict[str, int]:
        """How many records ended each way."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the web console."""
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "records": len(self.outcomes),
            "totals": self.totals(),
            "cases": sum(o.cases for o in self.outcomes if not o.result.startswith("skip")),
            "dead_letter_copies_removed": self.dead_letter_copies_removed,
            "outcomes": [asdict(o) for o in self.outcomes],
        }


@dataclass(frozen=True)
class Plan:
    """What a replay of one record would send: the envelope, or why nothing."""

    envelope: dict[str, Any] | None
    cases: list[str]
    reopen: list[str]
    why_not: str | None = None
    settled: bool = False


def _case_id(item: Any) -> str:
    resolved = getattr(item, "resolved_case_id", None)
    return str(resolved() if callable(resolved) else getattr(item, "case_id", ""))


def plan(conn: sa.Connection, row: FailureRow, settings: Settings | None = None) -> Plan:
    """Decide, from the cases' current states, what replaying ``row`` would send. Answers the
    record keeps sealed are opened with the ``settings``' answer key."""
    if row.kind == FailureKind.UNREADABLE:
        return Plan(None, [], [], "a message no stage could read: fix the producer and resend")
    if not row.body or row.body_truncated:
        return Plan(None, [], [], "the body was not kept whole: replay from the producer")
    try:
        raw = json.loads(row.body)
        if has_sealed_answers(raw):
            if settings is None:
                return Plan(None, [], [], "its answers are sealed: replay with the answer key")
            raw = open_answers(raw, answer_seal(settings))
        parsed = parse(raw)
    except (ValueError, ContractError, AnswerUnreadable, AnswerKeyMissing) as exc:
        return Plan(None, [], [], f"the body cannot be read: {exc}")
    states = cases.states_of(conn, [_case_id(i) for i in parsed.items])
    reasons = _reasons(conn, list(states))
    keep: list[Any] = []
    to_reopen: list[str] = []
    for item in parsed.items:
        case_id = _case_id(item)
        verdict = _verdict(row, parsed.envelope.contract, states.get(case_id), reasons.get(case_id))
        if verdict != "skip":
            keep.append(item)
        if verdict == "reopen":
            to_reopen.append(case_id)
    if not keep:
        return Plan(None, [], [], "every case has settled", settled=True)
    if len(keep) == len(parsed.items):
        envelope = raw
    else:
        envelope = envelope_for(
            keep,
            correlation_id=parsed.envelope.correlation_id,
            message_id=parsed.envelope.message_id,
        ).model_dump(mode="json")
    return Plan(envelope, [_case_id(i) for i in keep], to_reopen)


def _verdict(row: FailureRow, contract: str, state: CaseState | None, reason: str | None) -> str:
    """For one case of a record: ``reopen`` (ended with the record's reason), ``send`` (not
    created yet, or still in flight) or ``skip`` (settled, or ended another way)."""
    if state is None:
        return "send" if contract == "SendCase" else "skip"
    if state in FINAL:
        return "reopen" if reason == row.reason else "skip"
    if state in SETTLED_FOR_GOOD:
        return "skip"
    if row.kind == FailureKind.REJECTED_CASE and row.status != FailureStatus.REPLAYING:
        return "skip"  # in flight again already: another record's replay reopened it
    return "send"


def _reasons(conn: sa.Connection, case_ids: list[str]) -> dict[str, str | None]:
    if not case_ids:
        return {}
    from workers.store.schema import cases as cases_table

    rows = conn.execute(
        sa.select(cases_table.c.id, cases_table.c.reason).where(cases_table.c.id.in_(case_ids))
    )
    return {r.id: r.reason for r in rows}


def _destination(conn: sa.Connection, row: FailureRow, envelope: dict[str, Any]) -> tuple[str, str]:
    """The queue (lane, without prefix) and actor a replay goes to: a dead letter's own; a
    rejected case's by its contract's route and its lane (urgent, its dispatch's, normal)."""
    if row.kind == FailureKind.DEAD_LETTER and row.actor:
        return row.queue, row.actor
    route = ROUTES[str(envelope.get("contract"))]
    record = envelope["payload"][0]
    batch_id = record.get("batch_id")
    lane_number = (
        batches.statuses(conn, [batch_id]).get(batch_id, (None, None))[1] if batch_id else None
    )
    return route.lane(lane_for(str(record.get("priority", "normal")), lane_number))


def replay(
    engine: sa.Engine,
    broker: dramatiq.Broker,
    selection: Selection,
    *,
    who: str,
    prefix: str = "",
    dry_run: bool = False,
    rate: float | None = None,
    progress: Callable[[Outcome], None] | None = None,
    settings: Settings | None = None,
) -> Report:
    """Replay the selected records (see the module's docstring for the protocol); the
    ``settings``' answer key opens the answers a record keeps sealed."""
    with engine.connect() as conn:
        rows = store.select(conn, selection)
    report = Report("replay", dry_run)
    audit = _Audit(engine, who, report, selection)
    report.outcomes.extend(_unknown(selection, rows))
    copies: dict[str, list[str]] = {}
    interval = 1.0 / rate if rate else 0.0
    for row in rows:
        started = time.monotonic()
        outcome = _replay_one(
            engine, broker, row, prefix=prefix, dry_run=dry_run, settings=settings
        )
        report.outcomes.append(outcome)
        if outcome.result in ("replayed", "settled") and row.broker_message_id:
            copies.setdefault(queue_name(row.queue, prefix), []).append(row.broker_message_id)
        audit.progress()
        if progress:
            progress(outcome)
        if interval and outcome.result == "replayed":
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    if copies and not dry_run:
        report.dead_letter_copies_removed = remove_copies(broker, copies)
    audit.finish()
    return report


def _unknown(selection: Selection, rows: Sequence[FailureRow]) -> list[Outcome]:
    """An outcome for each id asked for that names no record (never a silent nothing)."""
    found = {r.id for r in rows}
    asked = dict.fromkeys(store.canonical_id(i) for i in selection.ids)
    return [Outcome(i, "unknown", detail="no such record") for i in asked if i not in found]


def _replay_one(
    engine: sa.Engine,
    broker: dramatiq.Broker,
    row: FailureRow,
    *,
    prefix: str,
    dry_run: bool,
    settings: Settings | None = None,
) -> Outcome:
    if row.status in (FailureStatus.REPLAYED, FailureStatus.SETTLED, FailureStatus.PURGED):
        return Outcome(row.id, "skipped", detail=f"already {row.status.value}")
    with engine.begin() as conn:
        if row.kind != FailureKind.UNREADABLE and not dry_run:
            # Read it again, locked: another replay may have taken it since it was listed.
            current = store.lock_one(conn, row.id)
            if current is None or not store.takeable(current, utcnow()):
                state = current.status.value if current else "gone"
                why = "taken by another replay" if state == "replaying" else f"already {state}"
                return Outcome(row.id, "skipped", detail=why)
            row = current
        chosen = plan(conn, row, settings)
        if chosen.envelope is None:
            if chosen.settled and not dry_run:
                store.set_status(conn, row.id, FailureStatus.SETTLED, expect=store.PENDING)
            result = "settled" if chosen.settled else "not-replayable"
            return Outcome(row.id, f"would-{result}" if dry_run else result, detail=chosen.why_not)
        queue, actor = _destination(conn, row, chosen.envelope)
        if dry_run:
            return Outcome(row.id, "would-replay", len(chosen.cases), f"to {queue}")
        # 1. mark (the record is locked: no other replay marks it in between)
        store.set_status(conn, row.id, FailureStatus.REPLAYING, expect=store.PENDING, replay=True)
        reopen(
            conn,
            chosen.reopen,
            reason=row.reason,
            detail=f"replay of failure {row.id}",
            pin_current_template=row.reason in TEMPLATE_FIXES,
        )
    # 2. enqueue
    try:
        enqueue(broker, queue, actor, chosen.envelope, prefix=prefix)
    except Exception as exc:  # noqa: BLE001 - reported; the record stays replaying for a rerun
        with engine.begin() as conn:
            store.release(conn, row.id)  # nothing was sent: the next replay may take it now
        return Outcome(row.id, "failed", len(chosen.cases), f"{type(exc).__name__}: {exc}")
    # 3. confirm
    with engine.begin() as conn:
        store.set_status(conn, row.id, FailureStatus.REPLAYED, expect=[FailureStatus.REPLAYING])
    return Outcome(row.id, "replayed", len(chosen.cases), f"to {queue}")


def purge(
    engine: sa.Engine,
    broker: dramatiq.Broker,
    selection: Selection,
    *,
    who: str,
    prefix: str = "",
    dry_run: bool = False,
) -> Report:
    """Close the selected records for good (their bodies and tracebacks are dropped; the
    headline stays for the audit), delete selected ``rejected_messages`` rows, and remove the
    broker's ``.XQ`` copies. Cases stay as they are."""
    with engine.connect() as conn:
        rows = store.select(conn, selection)
    report = Report("purge", dry_run)
    audit = _Audit(engine, who, report, selection)
    report.outcomes.extend(_unknown(selection, rows))
    copies: dict[str, list[str]] = {}
    for row in rows:
        if dry_run:
            report.outcomes.append(Outcome(row.id, "would-purge", len(row.case_ids)))
            continue
        with engine.begin() as conn:
            if row.kind == FailureKind.UNREADABLE:
                done = store.delete_unreadable(conn, row.id)
            else:
                done = store.set_status(conn, row.id, FailureStatus.PURGED, expect=[*store.PENDING])
        report.outcomes.append(Outcome(row.id, "purged" if done else "skipped", len(row.case_ids)))
        audit.progress()
        if done and row.broker_message_id:
            copies.setdefault(queue_name(row.queue, prefix), []).append(row.broker_message_id)
    if copies:
        report.dead_letter_copies_removed = remove_copies(broker, copies)
    audit.finish()
    return report


class _Audit:
    """The audit entry of one replay or purge: written before the first record is touched
    (``unfinished``), brought up to date after each record (one small update beside the
    record's own two transactions), and completed at the end; a run killed midway leaves an
    entry saying what it had done by then."""

    def __init__(self, engine: sa.Engine, who: str, report: Report, selection: Selection):
        self.engine, self.report = engine, report
        with engine.begin() as conn:
            self.id = store.audit(
                conn,
                who=who,
                action=report.action,
                selection=selection.describe(),
                count=0,
                outcome=self._outcome(finished=False),
                dry_run=report.dry_run,
            )

    def _outcome(self, *, finished: bool) -> dict[str, Any]:
        data = self.report.as_dict()
        outcome = {
            "totals": data["totals"],
            "cases": data["cases"],
            "ids": [o.id for o in self.report.outcomes][:1000],
            "dead_letter_copies_removed": self.report.dead_letter_copies_removed,
        }
        return outcome if finished else {**outcome, "unfinished": True}

    def _write(self, *, finished: bool) -> None:
        with self.engine.begin() as conn:
            store.audit_update(
                conn,
                self.id,
                count=len(self.report.outcomes),
                outcome=self._outcome(finished=finished),
            )

    def progress(self) -> None:
        if not self.report.dry_run:
            self._write(finished=False)

    def finish(self) -> None:
        self._write(finished=True)


def selected(ids: Sequence[str]) -> Selection:
    """A selection of records by id, whatever their status (a replayed one is then skipped)."""
    return Selection(ids=tuple(ids), statuses=tuple(s.value for s in FailureStatus))
