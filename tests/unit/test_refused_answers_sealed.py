"""No refused message that can carry a resident's answer is kept readable (outside review D1).

The inbox-events bridge refuses events it cannot read (unknown answer kind, a naive time, broken
JSON); the read-receipt stage refuses envelopes it cannot read. Each is kept in
``rejected_messages`` whole but sealed with the answer key, and ``omvant dlq show`` shows the
seal, never the text, even with ``--show-personnummer``.
"""

from __future__ import annotations

import datetime as dt
import json

import dramatiq
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.inbox_event import InboxEventV1, InboxEventV2
from contracts.read_receipt import Answer, QuestionAnswer, ReadReceiptV2
from contracts.registry import envelope_for
from producers.cli import app
from tests.unit import test_inbox_events
from tests.unit.test_answers_home import (
    CLINIC,
    SECRET_TEXT,
    T,
    answered,
    deliver,
    publish_answers,
    question_template,
)
from workers import failures, rejections, replay
from workers.adapters.notifiers import SimulatedEmailSender
from workers.answer_seal import answer_seal
from workers.bootstrap import Context
from workers.inbox_events_bridge import InboxEventsBridge
from workers.queues import Queues, queue_name
from workers.store import answers, cases
from workers.store import failures as failure_store
from workers.store.failures import Selection
from workers.store.schema import case_answers, rejected_messages
from workers.store.schema import cases as cases_table
from workers.templates import store as template_store
from workers.templates.model import validated

ctx = test_inbox_events.ctx
wait_until = test_inbox_events.wait_until
publish_raw = test_inbox_events.publish_raw

SECRET = "Jag har ont i knät sedan i fredags."
CLEAR = "Jag har ont"
"""The answer's words as they read in any JSON (``knät`` may be escaped)."""


def refused_events() -> list[bytes]:
    answered = {
        "version": 2,
        "event": "answered",
        "case_id": "c-1",
        "occurred_at": "2026-12-02T01:12:00Z",
        "answer": {"kind": "answer", "text": SECRET},
    }
    unknown_kind = {**answered, "answer": {"kind": "approve", "text": SECRET}}
    naive_time = {**answered, "occurred_at": "2026-12-02T01:12:00"}
    broken = b'{"version": 2, "event": "answered", "answer": {"text": "' + SECRET.encode() + b'"'
    return [json.dumps(unknown_kind).encode(), json.dumps(naive_time).encode(), broken]


def rows(ctx: Context) -> list[sa.Row[tuple[object, ...]]]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(sa.select(rejected_messages).order_by(rejected_messages.c.id)))


def test_refused_inbox_events_are_kept_sealed_and_dlq_show_never_prints_the_answer(
    ctx: Context,
) -> None:
    bridge = InboxEventsBridge(ctx, "memory://", chunk_size=3, linger=0.05)
    thread, stop = bridge.start()
    try:
        publish_raw("memory://", ctx, refused_events(), routing_key="inbox.answered")
        wait_until(lambda: bridge.forwarded.rejected == 3)
    finally:
        stop.set()
        thread.join(timeout=10)
    kept = rows(ctx)
    assert [r.reason for r in kept] == ["invalid-payload", "invalid-payload", "malformed-message"]
    seal = answer_seal(ctx.settings)
    for row, sent in zip(kept, refused_events(), strict=True):
        assert CLEAR not in (row.body or "")
        assert row.excerpt is None, "no excerpt: its x runs would give each word's length"
        assert row.body_encoding == rejections.SEALED and row.body.startswith("g1.")
        assert json.loads(seal.open(row.body)) == {"body": sent.decode()}, "nothing lost"
    runner = CliRunner()
    env = {"OMVANT_DATABASE_URL": ctx.settings.database_url}
    for row in kept:
        shown = runner.invoke(
            app, ["dlq", "show", f"R{row.id}", "--show-personnummer", "--json"], env=env
        )
        assert shown.exit_code == 0, shown.output
        assert CLEAR not in shown.output and "fredags" not in shown.output
        assert json.loads(shown.output)["body"]["sealed"].startswith("g1.")


def test_an_unreadable_read_receipt_envelope_is_kept_sealed(ctx: Context) -> None:
    queue = queue_name(Queues.READ_RECEIPTS, ctx.settings.queue_prefix)
    body = json.dumps({"args": [{"answer": {"text": SECRET}}], "kwargs": {}})
    with ctx.engine.begin() as conn:
        cases.record_unreadable(
            conn, queue=queue, reason="malformed-message", detail="x", body=body,
            settings=ctx.settings,
        )  # fmt: skip
        other = queue_name(Queues.MESSAGE_COMPOSITION, ctx.settings.queue_prefix)
        cases.record_unreadable(
            conn, queue=other, reason="malformed-message", detail="x", body="{}",
            settings=ctx.settings,
        )  # fmt: skip
    sealed, plain = rows(ctx)
    assert sealed.body_encoding == rejections.SEALED and CLEAR not in sealed.body
    assert json.loads(answer_seal(ctx.settings).open(sealed.body)) == {"body": body}
    assert plain.body_encoding == "utf-8" and plain.body == "{}", "other queues keep it whole"


def test_only_queues_that_can_carry_answers_are_sealed() -> None:
    assert rejections.carries_answers("p.read-receipts", "p.")
    assert rejections.carries_answers("p.read-receipts.DQ", "p.")
    assert rejections.carries_answers("p.inbox-events", "p.")
    assert not rejections.carries_answers("p.message-composition.urgent", "p.")


def _answered_to(case_id: str, question_answer: QuestionAnswer) -> InboxEventV2:
    """An answer to ``case_id`` that answers one question."""
    return InboxEventV2(
        case_id=case_id,
        event="answered",
        occurred_at=T,
        answer=Answer(kind="answer", text=SECRET_TEXT, question_answers=[question_answer]),
    )


def _refusals(ctx: Context) -> dict[str, sa.Row[tuple[object, ...]]]:
    return {str(r.detail).split("'")[0].removeprefix("case "): r for r in rows(ctx)}


def test_an_answer_the_template_does_not_offer_or_ask_is_refused_sealed_and_not_alerted(
    ctx: Context,
) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(
            conn,
            validated(question_template(answer_options=[{"kind": "answer", "label": "Svara"}])),
        )
        answers.set_clinic_alert(conn, CLINIC, answers.AnswerAlert("email", "hud@region.example"))
    for case_id in ("kind-v2", "kind-v1", "unasked", "fits"):
        deliver(ctx, case_id)
    counter = answered("kind-v2", kind="counter-question")
    unasked = _answered_to("unasked", QuestionAnswer(question="Ej i mallen?", answer="Jag har ont"))
    fits = _answered_to(
        "fits", QuestionAnswer(question=" hur LÄNGE har du  haft besvären? ", answer="x")
    )
    version_1 = InboxEventV1(
        case_id="kind-v1", event="answered", answer_kind="partial-answer", occurred_at=T
    )
    publish_answers(ctx, [counter, unasked, fits, version_1], expected=1)  # type: ignore[list-item]
    with ctx.engine.connect() as conn:
        stored = conn.execute(sa.select(case_answers.c.case_id)).scalars().all()
        read = dict(conn.execute(sa.select(cases_table.c.id, cases_table.c.state)).all())
    assert stored == ["fits"], "an answer fitting the template (spacing, case aside) comes home"
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert len(ctx.email.recorder.records) == 1, "only the fitting answer is alerted"
    refused = _refusals(ctx)
    assert {c: r.reason for c, r in refused.items()} == {
        "kind-v2": "answer-kind-not-offered",
        "kind-v1": "answer-kind-not-offered",
        "unasked": "question-not-asked",
    }
    assert read["kind-v2"] == read["unasked"] == "delivered", "a refused answer is no read"
    for row in refused.values():
        assert CLEAR not in row.body and "Ej i mallen" not in row.body + row.detail
        assert "sealed" in json.loads(row.body)["answer"]


def test_an_event_dated_beyond_the_clock_skew_is_refused_and_a_little_ahead_is_taken(
    ctx: Context,
) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template()))
    deliver(ctx, "far")
    deliver(ctx, "near")
    now = dt.datetime.now(dt.UTC)
    far = answered("far").model_copy(update={"occurred_at": dt.datetime(2099, 1, 1, tzinfo=dt.UTC)})
    near = InboxEventV2(case_id="near", event="opened", occurred_at=now + dt.timedelta(minutes=2))
    publish_answers(ctx, [far, near], expected=0)
    wait_until(lambda: len(rows(ctx)) == 1)
    with ctx.engine.connect() as conn:
        found = {r.id: r for r in conn.execute(sa.select(cases_table))}
    assert found["far"].read_at is None and found["far"].answered_at is None
    assert found["near"].state == "read", "within the 5 minutes' skew: taken as it is"
    [refused] = rows(ctx)
    assert refused.reason == "event-in-future" and CLEAR not in refused.body


def test_an_event_dated_before_the_delivery_beyond_the_clock_skew_is_refused_sealed(
    ctx: Context,
) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template()))
    for case_id in ("early", "skewed", "undated"):
        deliver(ctx, case_id)
    delivered = dt.datetime.now(dt.UTC)
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.update(cases_table)
            .where(cases_table.c.id.in_(["early", "skewed"]))
            .values(delivered_at=delivered)
        )
    early = answered("early").model_copy(update={"occurred_at": delivered - dt.timedelta(hours=1)})
    skewed = InboxEventV2(
        case_id="skewed", event="opened", occurred_at=delivered - dt.timedelta(minutes=2)
    )
    undated = InboxEventV2(case_id="undated", event="opened", occurred_at=T)
    publish_answers(ctx, [early, skewed, undated], expected=0)
    wait_until(lambda: len(rows(ctx)) == 1)
    with ctx.engine.connect() as conn:
        found = {r.id: r for r in conn.execute(sa.select(cases_table))}
        stored = conn.execute(sa.select(case_answers.c.case_id)).scalars().all()
    assert found["early"].state == "delivered" and found["early"].read_at is None
    assert stored == [], "a refused answer is not stored"
    assert found["skewed"].state == "read", "within the 5 minutes' skew: taken as it is"
    assert found["undated"].state == "read", "no delivery time recorded: not checked"
    [refused] = rows(ctx)
    assert refused.reason == "event-before-delivery"
    assert CLEAR not in refused.body and "sealed" in json.loads(refused.body)["answer"]


def test_a_dead_lettered_read_receipt_keeps_its_answer_sealed_and_replays_it_whole(
    ctx: Context,
) -> None:
    deliver(ctx, "dead-1")
    envelope = envelope_for(
        [ReadReceiptV2(case_id="dead-1", event="answered", answer=answered("x").answer,
                       occurred_at=T)],
        correlation_id="inbox-events",
    ).model_dump(mode="json")  # fmt: skip
    message = dramatiq.Message(
        queue_name=queue_name(Queues.READ_RECEIPTS, ctx.settings.queue_prefix),
        actor_name="collect_read_receipts",
        args=(envelope,),
        kwargs={},
        options={},
    )
    seal = answer_seal(ctx.settings)
    record = failures.dead_letter_record(
        message, RuntimeError("boom"), prefix=ctx.settings.queue_prefix, case_ids=["dead-1"],
        seal=seal,
    )  # fmt: skip
    assert CLEAR not in record["body"] and "En vecka" not in record["body"]
    with ctx.engine.begin() as conn:
        failure_store.insert(conn, [record])
        [row] = failure_store.select(conn, Selection())
    for show in (False, True):
        shown = failures.show(ctx.engine, row.id, who="test", show_personnummer=show)
        assert shown is not None
        printed = json.dumps(shown, ensure_ascii=False)
        assert CLEAR not in printed and "En vecka" not in printed
        assert shown["body"]["payload"][0]["answer"]["sealed"].startswith("g1.")
    with ctx.engine.connect() as conn:
        assert replay.plan(conn, row).envelope is None, "not without the key"
        opened = replay.plan(conn, row, ctx.settings)
    assert opened.envelope == envelope, "replayed as it was sent: nothing lost"
