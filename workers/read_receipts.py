"""Stage 5, read-receipt collection: the inbox says a resident opened (or answered) a message.

Consumes ``ReadReceipt`` (forwarded from the inbox's AMQP events by
``workers.inbox_events_bridge``). The first read time is kept, even when an older event comes
late; duplicates and reordering are harmless;
an event for a case the system does not know is kept as an unreadable message (``unknown-case``),
and so is an answer to a case of an information template (``answer-not-expected``), which the
resident cannot answer: it is neither stored as an answer nor alerted (nor taken as a read).

An answer comes home: its kind is kept on the case, the answer itself (text and answers to the
template's questions) sealed in ``case_answers`` (``workers.answer_seal``), an ``answered``
entry without content is written to its history (the integration's ``case.answered``
callback), and the clinic is
alerted as the template's notification setting says, else the clinic's own (none, or one
content-free e-mail to its functional mailbox, through the e-mail notifier).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from contracts import read_receipt
from contracts.read_receipt import ReadReceiptV2
from contracts.registry import Parsed
from workers.answer_seal import answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.log import get_logger
from workers.queues import Queues, queue_name
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, settle
from workers.store import answers, case_notes, cases
from workers.store.cases import Transition

STAGE = ROUTES[read_receipt.NAME].stage
READABLE = frozenset({CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ})
"""States in which a message is in the inbox, so can be read."""


def handle(items: Sequence[ReadReceiptV2]) -> list[Decision]:
    """Every event reads the case; the earliest event time wins as the first read."""
    first: dict[str, ReadReceiptV2] = {}
    for item in items:
        seen = first.get(item.case_id)
        if seen is None or item.occurred_at < seen.occurred_at:
            first[item.case_id] = item
    return [
        Advance(case_id, (Transition(case_id, CaseState.READ, {"read_at": item.occurred_at}),))
        for case_id, item in first.items()
    ]


def _keep_earliest_read(ctx: Context, items: Sequence[ReadReceiptV2]) -> None:
    """An event older than the recorded first read (it came late) moves the read time back."""
    earliest: dict[str, ReadReceiptV2] = {}
    for item in items:
        seen = earliest.get(item.case_id)
        if seen is None or item.occurred_at < seen.occurred_at:
            earliest[item.case_id] = item
    if not earliest:
        return
    with ctx.engine.begin() as conn:
        case_notes.keep_earliest_read(conn, {c: i.occurred_at for c, i in earliest.items()})


ALERT_SUBJECT = "Nytt svar i ett invånarärende"
ALERT_TEXT = (
    "En invånare har svarat i ett ärende som er mottagning skickat via 1177. "
    "Logga in för att läsa svaret."
)
"""The clinic's answer alert: no case content, no resident, nothing but that an answer came."""

log = get_logger(__name__)


def sealed_text(item: ReadReceiptV2) -> str:
    """What of an answer is sealed: its text and the answers to the questions (JSON)."""
    assert item.answer is not None
    return json.dumps(
        item.answer.model_dump(mode="json", include={"text", "question_answers"}),
        ensure_ascii=False,
    )


def _record_answers(ctx: Context, items: Sequence[ReadReceiptV2]) -> list[str]:
    """Keep each case's first answer (sealed); returns the answered cases not yet alerted."""
    answered = [item for item in items if item.answer is not None]
    if not answered:
        return []
    seal = answer_seal(ctx.settings)
    with ctx.engine.begin() as conn:
        clinics = case_notes.clinics_of(conn, [item.case_id for item in answered])
        for item in sorted(answered, key=lambda i: i.occurred_at):
            assert item.answer is not None
            new = answers.add(
                conn,
                case_id=item.case_id,
                clinic_hsa_id=clinics[item.case_id],
                kind=item.answer.kind,
                sealed=seal.seal(sealed_text(item)),
                answered_at=item.occurred_at,
            )
            # a first answer is in the case's history (called back as case.answered): no content
            case_notes.note_answered(
                conn,
                item.case_id,
                kind=item.answer.kind,
                at=item.occurred_at,
                stage=STAGE,
                first=new,
            )
        return answers.unalerted(conn, clinics)


def alert_setting(ctx: Context, conn: sa.Connection, case_id: str) -> answers.AnswerAlert:
    """The template's notification setting for the case's answers, else the clinic's."""
    row = case_notes.template_of(conn, case_id)
    template = ctx.templates.get(row.template_id, row.template_version)
    if template is not None and template.notification is not None:
        return answers.AnswerAlert(template.notification.alert, template.notification.mailbox)
    return answers.clinic_alert(conn, row.clinic_hsa_id)


def _alert_clinics(ctx: Context, case_ids: Sequence[str]) -> None:
    """Alert each clinic once per answered case (a failed send raises: the chunk is retried
    and only cases not yet marked are alerted again)."""
    for case_id in case_ids:
        with ctx.engine.connect() as conn:
            setting = alert_setting(ctx, conn, case_id)
        if setting.alert == "email" and setting.mailbox:
            ctx.email.send(
                to=setting.mailbox,
                subject=ALERT_SUBJECT,
                text=ALERT_TEXT,
                idempotency_key=f"{case_id}:answer-alert",
            )
        with ctx.engine.begin() as conn:
            answers.mark_alerted(conn, case_id, setting.alert)
        log.info("answer alert", case_id=case_id, alert=setting.alert)


def _not_answerable(ctx: Context, conn: sa.Connection, items: Sequence[ReadReceiptV2]) -> set[str]:
    """The answered cases whose template is an information template: the resident cannot
    answer one, so such an answer is refused rather than stored and alerted."""
    refused = set()
    for case_id in {item.case_id for item in items if item.answer is not None}:
        row = case_notes.template_of(conn, case_id)
        template = ctx.templates.get(row.template_id, row.template_version)
        if template is not None and not template.answerable:
            refused.add(case_id)
    return refused


def kept_body(ctx: Context, item: ReadReceiptV2) -> str:
    """A refused event as ``rejected_messages`` keeps it: whole, its answer sealed as answers
    are at rest (``answer.sealed``), so nothing is lost and no answer is kept readable."""
    body = item.model_dump(mode="json")
    if item.answer is not None:
        body["answer"] = {
            "kind": item.answer.kind,
            "sealed": answer_seal(ctx.settings).seal(sealed_text(item)),
        }
    return json.dumps(body)


def process(parsed: Parsed, ctx: Context) -> None:
    """Record reads (and answers); keep events for unknown cases, and answers to information
    templates, as unreadable messages."""
    items = [item for item in parsed.items if isinstance(item, ReadReceiptV2)]
    with ctx.engine.begin() as conn:
        known = cases.states_of(conn, (item.case_id for item in items))
        readable = [item for item in items if known.get(item.case_id) in READABLE]
        unanswerable = _not_answerable(ctx, conn, readable)

        def refused_answer(item: ReadReceiptV2) -> bool:
            return item.answer is not None and item.case_id in unanswerable

        for item in items:
            state = known.get(item.case_id)
            if state in READABLE and not refused_answer(item):
                continue
            if state in READABLE:
                reason = Reason.ANSWER_NOT_EXPECTED
                detail = f"case {item.case_id}'s template is an information template"
            else:
                reason = Reason.UNKNOWN_CASE if state is None else Reason.CASE_NOT_DELIVERED
                detail = f"case {item.case_id} is {state or 'unknown'}"
            cases.record_unreadable(
                conn,
                queue=queue_name(Queues.READ_RECEIPTS, ctx.settings.queue_prefix),
                reason=reason,
                detail=detail,
                body=kept_body(ctx, item),
            )
    items = [item for item in readable if not refused_answer(item)]
    settle(ctx, stage=STAGE, decisions=handle(items), correlation_id=parsed.envelope.correlation_id)
    _keep_earliest_read(ctx, items)
    _alert_clinics(ctx, _record_answers(ctx, items))
