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

import datetime as dt
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
from workers.store.sql import aware_utc

STAGE = ROUTES[read_receipt.NAME].stage
Refusal = tuple[str, str]
"""Why an event is refused: a reason code and a detail without content."""
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


def _template_refusal(ctx: Context, conn: sa.Connection, item: ReadReceiptV2) -> Refusal | None:
    """Why an answer does not fit its case's template, if it does not: an information
    template cannot be answered (``answer-not-expected``), an answer kind the template does not
    offer (``answer-kind-not-offered``) or an answer to a question it does not ask
    (``question-not-asked``) is not the template's answer form. A template no longer known
    takes the answer as it comes."""
    if item.answer is None:
        return None
    row = case_notes.template_of(conn, item.case_id)
    template = ctx.templates.get(row.template_id, row.template_version)
    if template is None:
        return None
    if not template.answerable:
        return Reason.ANSWER_NOT_EXPECTED, (
            f"case {item.case_id}'s template is an information template"
        )
    offered = {option.kind for option in template.answer_options}
    if item.answer.kind not in offered:
        return Reason.ANSWER_KIND_NOT_OFFERED, (
            f"case {item.case_id}'s template offers {', '.join(sorted(offered))}, "
            f"not {item.answer.kind}"
        )
    asked = {_question_key(q) for q in template.questions}
    unasked = [
        n
        for n, qa in enumerate(item.answer.question_answers)
        if _question_key(qa.question) not in asked
    ]
    if unasked:
        # the question's text is the resident's answer's context: its number only, never it
        return Reason.QUESTION_NOT_ASKED, (
            f"case {item.case_id}'s template does not ask question_answers "
            f"{', '.join(str(n) for n in unasked[:10])}"
        )
    return None


def _question_key(question: str) -> str:
    """A question as the template and the inbox may both write it (spaces, case)."""
    return " ".join(question.split()).casefold()


def _future_refusal(ctx: Context, item: ReadReceiptV2) -> Refusal | None:
    """An event time beyond ``event_clock_skew_seconds`` after now is refused
    (``event-in-future``): a first read or answer time cannot lie ahead."""
    at = aware_utc(item.occurred_at)
    latest = ctx.now() + dt.timedelta(seconds=ctx.settings.event_clock_skew_seconds)
    if at is not None and at > latest:
        return Reason.EVENT_IN_FUTURE, (
            f"case {item.case_id}'s event time is more than "
            f"{ctx.settings.event_clock_skew_seconds:g} s ahead of the time received"
        )
    return None


def _early_refusal(
    ctx: Context, item: ReadReceiptV2, delivered_at: dt.datetime | None
) -> Refusal | None:
    """An event time more than ``event_clock_skew_seconds`` before the case's delivery is
    refused (``event-before-delivery``): a message cannot be read or answered before it is in
    the inbox. A case without a recorded delivery time is not checked."""
    at = aware_utc(item.occurred_at)
    if at is None or delivered_at is None:
        return None
    earliest = delivered_at - dt.timedelta(seconds=ctx.settings.event_clock_skew_seconds)
    if at < earliest:
        return Reason.EVENT_BEFORE_DELIVERY, (
            f"case {item.case_id}'s event time is more than "
            f"{ctx.settings.event_clock_skew_seconds:g} s before its delivery"
        )
    return None


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
    """Record reads (and answers); keep events for unknown cases, events dated ahead or before
    the delivery, and answers that do not fit their template, as unreadable messages (answers
    sealed)."""
    items = [item for item in parsed.items if isinstance(item, ReadReceiptV2)]
    accepted: list[ReadReceiptV2] = []
    with ctx.engine.begin() as conn:
        known = case_notes.deliveries(conn, [item.case_id for item in items])
        for item in items:
            case = known.get(item.case_id)
            refusal: Refusal | None
            if case is None or case.state not in READABLE:
                state = None if case is None else case.state
                reason = Reason.UNKNOWN_CASE if state is None else Reason.CASE_NOT_DELIVERED
                refusal = reason, f"case {item.case_id} is {state or 'unknown'}"
            else:
                refusal = (
                    _future_refusal(ctx, item)
                    or _early_refusal(ctx, item, case.delivered_at)
                    or _template_refusal(ctx, conn, item)
                )
            if refusal is None:
                accepted.append(item)
                continue
            cases.record_unreadable(
                conn,
                queue=queue_name(Queues.READ_RECEIPTS, ctx.settings.queue_prefix),
                reason=refusal[0],
                detail=refusal[1],
                body=kept_body(ctx, item),
            )
    settle(
        ctx, stage=STAGE, decisions=handle(accepted), correlation_id=parsed.envelope.correlation_id
    )
    _keep_earliest_read(ctx, accepted)
    _alert_clinics(ctx, _record_answers(ctx, accepted))
