"""Failures captured when they happen, and the on-call view of them (issue 12).

Two things leave a failure record, in the same transaction that records the cases' outcome:

* a message dramatiq dead-letters after its retries (``RecordDeadLetters``): its queue and
  actor, contract and version, cases, the reason (``outage`` when an outside system, the
  database or the broker was down, else ``technical-failure``), the final exception's type and
  its traceback with identity numbers masked, the attempts, the first and last failure time,
  and the envelope (at most ``MAX_BODY_CHARS``) needed to replay it;
* a case a stage rejects for a reason an operator can put right (``REPLAYABLE_REJECTIONS``,
  e.g. ``template-unknown``): the record the stage read for that case, so that once the
  template exists the case can be replayed and go through.

The record is the source of truth, not the broker's ``<queue>.XQ``: dramatiq keeps only the
last body there, no error, and drops it after 7 days. Rows of ``rejected_messages`` (messages
no stage could read) are part of the same view, with ids ``R<n>``.

The functions below return plain data so that the CLI (``omvant dlq``) and the web console
call the same ones.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
import sqlalchemy as sa
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from pydantic import BaseModel

from contracts.envelope import Envelope, split_message_id
from contracts.read_receipt import NAME as READ_RECEIPT
from contracts.registry import Parsed, contract_of, envelope_for
from workers.after_message import AfterMessage
from workers.answer_seal import AnswerSeal, seal_answers
from workers.log import SENSITIVE_KEYS, mask_identity_numbers, scrub
from workers.queues import unprefixed
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.store import access_log
from workers.store import failures as store
from workers.store.cases import utcnow
from workers.store.failures import FailureKind, FailureRow, Selection
from workers.transient import is_outage

MAX_BODY_CHARS = 1_000_000
"""Longest body kept for replay; a longer one is cut and marked, and cannot be replayed."""
MAX_TRACEBACK_CHARS = 20_000
FIRST_FAILED_AT = "omvant_first_failed_at"
"""The message option (epoch ms) in which ``FailureClock`` keeps a message's first failure."""

REPLAYABLE_REJECTIONS = frozenset(
    {
        Reason.TEMPLATE_UNKNOWN,
        Reason.TEMPLATE_INACTIVE,
        Reason.FRAGMENT_UNKNOWN,
        Reason.FIELD_MISSING,
        Reason.SENDER_UNKNOWN,
        Reason.CLINIC_UNKNOWN,
        Reason.ATTACHMENT_MISSING,
        Reason.DIRECTORY_REFUSED,
    }
)
"""Case rejections an operator can put right without a new request (create or activate the
template, add the fragment or the catalogue entry, upload the file, fix the directory's
configuration): each leaves a failure record that ``omvant dlq replay`` can send again. Other
rejections are about the resident or the request itself and are final."""


def dead_letter_reason(error: BaseException) -> Reason:
    """``outage`` when ``error`` is an outside system, the database or the broker being down
    (replay once it is back), else ``technical-failure`` (a poison case or a bug)."""
    return Reason.OUTAGE if is_outage(error) else Reason.TECHNICAL_FAILURE


class FailureClock(AfterMessage):
    """Stamps a message's first failure time on its options, so the dead-letter record can say
    how long it failed. Must run before ``Retries`` re-enqueues the message: ``build_broker``
    adds it after ``Retries`` in the list (dramatiq runs "after" hooks in reverse order)."""

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        if exception is not None:
            message.options.setdefault(FIRST_FAILED_AT, int(time.time() * 1000))


def redacted_traceback(error: BaseException) -> str:
    """The exception's traceback with identity numbers masked and quoted inputs dropped."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return scrub(text)[-MAX_TRACEBACK_CHARS:]


def _bounded(body: str) -> tuple[str, bool]:
    if len(body) <= MAX_BODY_CHARS:
        return body, False
    return body[:MAX_BODY_CHARS], True


def _unprefixed(queue: str, prefix: str) -> str:
    return unprefixed(q_name(queue), prefix)


def _clinic_of(payload: Any) -> str | None:
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        clinic = payload[0].get("clinic_hsa_id")
        return str(clinic)[:48] if clinic else None
    return None


def dead_letter_record(
    message: MessageProxy | dramatiq.Message[Any],
    error: BaseException,
    *,
    prefix: str,
    case_ids: Sequence[str],
    now: dt.datetime | None = None,
    seal: AnswerSeal | None = None,
) -> dict[str, Any]:
    """The failure record of a message dramatiq has given up on; with ``seal``, the answers
    of a ``ReadReceipt`` envelope are kept sealed (``answer_seal.seal_answers``), so that no
    dead letter keeps an answer readable (replay opens them again)."""
    now = now or utcnow()
    raw = message.args[0] if len(message.args) == 1 else None
    envelope = raw if isinstance(raw, dict) else {}
    if raw is not None and len(message.args) == 1:
        kept = raw
        if seal is not None and envelope.get("contract") == READ_RECEIPT:
            kept = seal_answers(envelope, seal)
        body_text = json.dumps(kept, default=str, ensure_ascii=False)
    else:
        body_text = json.dumps({"args": list(message.args), "kwargs": message.kwargs}, default=str)
    body, truncated = _bounded(body_text)
    first_ms = message.options.get(FIRST_FAILED_AT)
    first = dt.datetime.fromtimestamp(first_ms / 1000, dt.UTC) if first_ms else now
    version = envelope.get("version")
    return {
        "kind": FailureKind.DEAD_LETTER.value,
        "queue": _unprefixed(message.queue_name, prefix)[:128],
        "actor": message.actor_name[:80],
        "contract": str(envelope.get("contract"))[:64] if envelope.get("contract") else None,
        "contract_version": version if isinstance(version, int) else None,
        "message_id": str(envelope.get("message_id"))[:64] if envelope.get("message_id") else None,
        # Redis keys each delivery by its own id (a retry is a new one); the rest by message id
        "broker_message_id": str(message.options.get("redis_message_id") or message.message_id),
        "case_ids": json.dumps([c for c in case_ids if c]),
        "case_count": len([c for c in case_ids if c]),
        "clinic_hsa_id": _clinic_of(envelope.get("payload")),
        "reason": dead_letter_reason(error).value,
        "detail": scrub(f"{type(error).__name__}: {error}")[:500],
        "exception_type": f"{type(error).__module__}.{type(error).__qualname__}"[:128],
        "traceback": redacted_traceback(error),
        "attempts": max(1, int(message.options.get("retries", 1))),
        "first_failed_at": first,
        "last_failed_at": now,
        "body": body,
        "body_truncated": truncated,
    }


@dataclass
class Reading:
    """The message a stage is working on: its envelope and records, indexed by case only when
    a rejection needs it (most messages have none: the hot path pays nothing for it)."""

    envelope: Envelope
    items: Sequence[BaseModel]
    case_id_of: Callable[[BaseModel], str]
    _records: dict[str, tuple[int, BaseModel]] | None = None

    @property
    def records(self) -> Mapping[str, tuple[int, BaseModel]]:
        """Case id -> (position in the payload, record)."""
        if self._records is None:
            self._records = {
                str(self.case_id_of(item)): (index, item) for index, item in enumerate(self.items)
            }
        return self._records


def reading(parsed: Parsed, case_id_of: Callable[[Any], str]) -> Reading:
    """What a stage is running: its records, so a rejection that an operator can put right is
    kept with what is needed to send it again (the actor shell puts it in ``ctx.reading``)."""
    return Reading(parsed.envelope, parsed.items, case_id_of)


def rejection_records(
    rejects: Sequence[tuple[str, str, str | None]],
    current: Reading | None,
    *,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Failure records for the ``(case_id, reason, detail)`` rejections an operator can fix."""
    fixable = [r for r in rejects if r[1] in REPLAYABLE_REJECTIONS]
    if not fixable:
        return []
    now = now or utcnow()
    out: list[dict[str, Any]] = []
    for case_id, reason, detail in fixable:
        found = current.records.get(case_id) if current else None
        record: dict[str, Any] = {
            "kind": FailureKind.REJECTED_CASE.value,
            "queue": "unknown",
            "actor": None,
            "contract": None,
            "contract_version": None,
            "message_id": None,
            "broker_message_id": None,
            "case_ids": json.dumps([case_id]),
            "case_count": 1,
            "clinic_hsa_id": None,
            "reason": reason,
            "detail": None if detail is None else scrub(detail)[:500],
            "exception_type": None,
            "traceback": None,
            "attempts": 1,
            "first_failed_at": now,
            "last_failed_at": now,
            "body": None,
            "body_truncated": False,
        }
        if current is not None and found is not None:
            index, item = found
            name, version = contract_of(type(item))
            route = ROUTES.get(name)
            message_id = current.envelope.message_id
            if len(current.records) > 1:
                message_id = split_message_id(message_id, index)
            envelope = envelope_for(
                [item], correlation_id=current.envelope.correlation_id, message_id=message_id
            )
            body, truncated = _bounded(json.dumps(envelope.model_dump(mode="json")))
            record.update(
                queue=str(route.queue) if route else "unknown",
                actor=route.actor_name if route else None,
                contract=name,
                contract_version=version,
                message_id=message_id,
                clinic_hsa_id=getattr(item, "clinic_hsa_id", None),
                body=body,
                body_truncated=truncated,
            )
        out.append(record)
    return out


def record_rejections(
    conn: sa.Connection, rejects: Sequence[tuple[str, str, str | None]], current: Reading | None
) -> None:
    """Write the failure records of fixable rejections (in the caller's transaction), with the
    records of ``current`` (what the stage is running) when it has them."""
    store.insert(conn, rejection_records(rejects, current))


# --- the on-call view ---------------------------------------------------------------------


def _age(when: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if when is None else max(0.0, (now - when).total_seconds())


def summary(
    engine: sa.Engine,
    selection: Selection | None = None,
    *,
    now: dt.datetime | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Pending failures grouped by queue and reason: counts, cases and the oldest age."""
    now = now or utcnow()
    with engine.connect() as conn:
        found = store.groups(conn, selection or Selection(prefix=prefix))
    groups = [
        {
            **g,
            "oldest": g["oldest"].isoformat() if g["oldest"] else None,
            "oldest_age_seconds": _age(g["oldest"], now),
        }
        for g in found
    ]
    return {
        "total": sum(g["count"] for g in groups),
        "groups": groups,
    }


def listing(engine: sa.Engine, selection: Selection, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The pending records one by one (oldest first), without bodies or tracebacks."""
    with engine.connect() as conn:
        rows = store.select(conn, selection, limit=limit)
    return [brief(r) for r in rows]


def brief(row: FailureRow) -> dict[str, Any]:
    """A record's headline: what, where, why, when, how often."""
    return {
        "id": row.id,
        "kind": row.kind.value,
        "status": row.status.value,
        "queue": row.queue,
        "reason": row.reason,
        "contract": row.contract,
        "contract_version": row.contract_version,
        "cases": len(row.case_ids),
        "attempts": row.attempts,
        "first_failed_at": row.first_failed_at.isoformat(),
        "last_failed_at": row.last_failed_at.isoformat(),
        "replays": row.replays,
    }


def _redact_record(value: Any, show: bool) -> Any:
    if isinstance(value, dict):
        return {
            k: ("[left out]" if k in SENSITIVE_KEYS and not show else _redact_record(v, show))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_record(v, show) for v in value]
    if isinstance(value, str) and not show:
        return mask_identity_numbers(value)
    return value


def _residents(body: Any) -> list[str]:
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, list):
        return []
    return [
        str(r["personnummer"]) for r in payload if isinstance(r, dict) and r.get("personnummer")
    ]


def show(
    engine: sa.Engine,
    failure_id: str,
    *,
    who: str,
    show_personnummer: bool = False,
    prefix: str = "",
) -> dict[str, Any] | None:
    """One record in full: personnummer masked and message text left out unless
    ``show_personnummer``. The read is written to the access log (with whether it was
    unmasked) and to the on-call audit. None if there is no such record."""
    with engine.begin() as conn:
        rows = store.select(conn, Selection(ids=(failure_id,), prefix=prefix))
        if not rows:
            return None
        row = rows[0]
        try:
            body: Any = json.loads(row.body) if row.body else None
        except ValueError:
            body = row.body
        access_log.record(
            conn,
            user_hsa_id=who[:48],
            unit_hsa_id=(row.clinic_hsa_id or "operations")[:48],
            action="dlq-show",
            case_ids=row.case_ids,
            personnummer=_residents(body),
            unmasked=show_personnummer,
        )
        store.audit(
            conn,
            who=who,
            action="show",
            selection={"ids": [row.id], "show_personnummer": show_personnummer},
            count=1,
            outcome={"found": 1},
        )
    return {
        **brief(row),
        "actor": row.actor,
        "message_id": row.message_id,
        "broker_message_id": row.broker_message_id,
        "case_ids": row.case_ids,
        "clinic": row.clinic_hsa_id,
        "detail": row.detail if show_personnummer else _redact_record(row.detail, False),
        "exception_type": row.exception_type,
        "traceback": row.traceback,
        "body_truncated": row.body_truncated,
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "body": _shown_body(body, show_personnummer),
    }


def _shown_body(body: Any, show: bool) -> Any:
    """A JSON body with personnummer masked and message text left out; a body that is not
    JSON (an unreadable message) is left out whole unless asked for."""
    if show or body is None or isinstance(body, dict | list):
        return _redact_record(body, show)
    return (
        f"[left out: {len(str(body))} characters that are not JSON; --show-personnummer shows them]"
    )


def audit_log(engine: sa.Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest on-call actions first."""
    with engine.connect() as conn:
        entries = store.audit_entries(conn, limit=limit)
    return [{**e, "at": e["at"].isoformat() if e["at"] else None} for e in entries]
