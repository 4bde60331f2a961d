"""Answers come home: the inbox's answered event carries the answer, which is stored sealed,
shown to its clinic only (access-logged) and alerted as the clinic or template says."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from typer.testing import CliRunner

from contracts.inbox_event import InboxEventError, InboxEventV2, parse_inbox_event
from contracts.read_receipt import Answer, QuestionAnswer, ReadReceiptV2
from contracts.registry import VERSIONS
from contracts.upcasters import UPCASTERS
from producers.cli import app
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from tests.unit import test_inbox_events
from workers.adapters import population
from workers.adapters.inbox import KombuInboxEventPublisher
from workers.adapters.notifiers import SimulatedEmailSender
from workers.answer_seal import AnswerKeyMissing, answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.inbox_events_bridge import InboxEventsBridge, exchange_name
from workers.read_receipts import ALERT_SUBJECT, ALERT_TEXT
from workers.settings import Settings
from workers.store import access_log, answers, cases
from workers.store.cases import Transition
from workers.store.schema import case_answers, rejected_messages
from workers.store.schema import cases as cases_table
from workers.templates import store as template_store
from workers.templates.model import validated

ctx = test_inbox_events.ctx
"""The inbox-event tests' fixture: the stages in this process on SQLite, the stub broker."""
wait_until = test_inbox_events.wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "inbox_events"
CLINIC = "SE2321000016-VC01"
USER = "SE2321000016-S101"
T = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
SECRET_TEXT = "Jag har ont i knät sedan i fredags."
QUESTION = "Hur länge har du haft besvären?"
"""The question template's one question (an answer to another is refused)."""


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_version_1_inbox_events_frozen_as_published_upcast_to_version_2() -> None:
    answered = parse_inbox_event(fixture("v1_answered.json"))
    assert isinstance(answered, InboxEventV2)
    assert answered.answer == Answer(kind="counter-question", text="", question_answers=[])
    opened = parse_inbox_event(fixture("v1_opened.json"))
    assert opened.answer is None and opened.occurred_at == T - dt.timedelta(hours=2)
    latest = parse_inbox_event(fixture("v2_answered.json"))
    assert latest.answer is not None and latest.answer.text == SECRET_TEXT
    assert latest.answer.question_answers[0].answer == "En vecka."


def test_version_1_read_receipts_upcast_and_version_2_is_published() -> None:
    assert set(VERSIONS["ReadReceipt"]) == {1, 2}
    upcast = UPCASTERS[("ReadReceipt", 1)](json.loads(fixture("read_receipt_v1_answered.json")))
    receipt = ReadReceiptV2.model_validate(upcast)
    assert receipt.answer is not None and receipt.answer.kind == "answer"


@pytest.mark.parametrize(
    "event",
    [
        {"version": 2, "event": "answered", "case_id": "c", "occurred_at": "2026-11-25T09:00:00Z"},
        {
            "version": 2,
            "event": "opened",
            "case_id": "c",
            "occurred_at": "2026-11-25T09:00:00Z",
            "answer": {"kind": "answer"},
        },
    ],
)
def test_an_answer_goes_with_answered_events_and_only_with_them(event: dict[str, object]) -> None:
    with pytest.raises(InboxEventError) as caught:
        parse_inbox_event(json.dumps(event))
    assert caught.value.reason == "invalid-payload"
    assert SECRET_TEXT not in caught.value.detail


def question_template(**changes: object) -> dict[str, object]:
    return {
        "id": "vc01.fragor",
        "kind": "questions",
        "scope": "local",
        "owner": CLINIC,
        "name": "Frågor inför besök",
        "instruction": ".",
        "text": "Svara gärna på frågorna.",
        "questions": [QUESTION],
        "active": True,
        **changes,
    }


def deliver(ctx: Context, case_id: str, template_id: str = "vc01.fragor") -> None:
    [resident] = reachable_residents(ctx.settings.seed, 1, frozenset({"sms"}))
    item = cleared_item(case_id, resident, clinic=CLINIC, template_id=template_id)
    with ctx.engine.begin() as conn:
        store_cleared(conn, [item])
        cases.apply(conn, [Transition(case_id, CaseState.DELIVERED)], stage="test")


def publish_answers(ctx: Context, events: list[InboxEventV2], expected: int) -> None:
    bridge = InboxEventsBridge(ctx, "memory://", chunk_size=2, linger=0.05)
    thread, stop = bridge.start()
    try:
        KombuInboxEventPublisher("memory://", exchange_name(ctx.settings)).publish(events)
        wait_until(lambda: bridge.forwarded.receipts == len(events))
        assert isinstance(ctx.broker, StubBroker)
        ctx.broker.join(f"{ctx.settings.queue_prefix}read-receipts", timeout=10_000)

        def alerted() -> int:
            with ctx.engine.connect() as conn:
                return len(
                    conn.execute(
                        sa.select(case_answers.c.case_id).where(case_answers.c.alert.is_not(None))
                    ).all()
                )

        wait_until(lambda: alerted() == expected)
    finally:
        stop.set()
        thread.join(timeout=10)


def answered(case_id: str, kind: str = "partial-answer") -> InboxEventV2:
    answer = Answer(
        kind=kind,  # type: ignore[arg-type]
        text=SECRET_TEXT,
        question_answers=[QuestionAnswer(question=QUESTION, answer="En vecka.")],
    )
    return InboxEventV2(case_id=case_id, event="answered", answer=answer, occurred_at=T)


def test_an_answer_comes_home_sealed_shown_to_its_clinic_and_alerted_once(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template()))
        answers.set_clinic_alert(conn, CLINIC, answers.AnswerAlert("email", "hud@region.example"))
    deliver(ctx, "q-1")
    publish_answers(ctx, [answered("q-1"), answered("q-1")], expected=1)
    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(case_answers)).one()
        case = conn.execute(sa.select(cases_table).where(cases_table.c.id == "q-1")).one()
    assert row.kind == "partial-answer" and case.answer_kind == "partial-answer"
    assert "knät" not in row.sealed and "vecka" not in row.sealed, "sealed at rest"
    assert SECRET_TEXT in answer_seal(ctx.settings).open(row.sealed)
    assert isinstance(ctx.email, SimulatedEmailSender)
    [alert] = ctx.email.recorder.records
    assert alert["to"] == "hud@region.example"
    assert (alert["subject"], alert["text"]) == (ALERT_SUBJECT, ALERT_TEXT)
    assert "q-1" not in alert["text"] and "knä" not in alert["text"], "the alert is content-free"

    url = ctx.settings.database_url
    shown = CliRunner().invoke(
        app,
        ["cases", "show", "q-1", "--clinic", CLINIC, "--user", USER, "--answer", "--json",
         "--database", url],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    answer = json.loads(shown.stdout)["answer"]
    assert answer["text"] == SECRET_TEXT and answer["kind"] == "partial-answer"
    assert answer["question_answers"] == [{"question": QUESTION, "answer": "En vecka."}]
    other = CliRunner().invoke(
        app,
        ["cases", "show", "q-1", "--clinic", "SE2321000016-VC02", "--user", USER, "--answer",
         "--database", url],
    )  # fmt: skip
    assert other.exit_code == 1 and SECRET_TEXT not in other.output
    with ctx.engine.connect() as conn:
        actions = [a.action for a in access_log.entries(conn, CLINIC)]
    assert actions == ["cases-show", "cases-show-answer"]


def test_a_question_templates_notification_setting_overrides_the_clinics(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template(notification={"alert": "none"})))
        template_store.create(
            conn,
            validated(
                question_template(
                    id="vc01.egen",
                    notification={"alert": "email", "mailbox": "egen@region.example"},
                )
            ),
        )
        answers.set_clinic_alert(conn, CLINIC, answers.AnswerAlert("email", "hud@region.example"))
    deliver(ctx, "q-1")
    deliver(ctx, "q-2", template_id="vc01.egen")
    publish_answers(ctx, [answered("q-1"), answered("q-2")], expected=2)
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert [r["to"] for r in ctx.email.recorder.records] == ["egen@region.example"]
    with ctx.engine.connect() as conn:
        assert answers.get(conn, CLINIC, "q-1").alert == "none"  # type: ignore[union-attr]


def test_a_server_deployment_refuses_to_start_without_an_answer_key(tmp_path: Path) -> None:
    server = Settings(database_url="postgresql://u@127.0.0.1:1/x", answer_key=None)
    with pytest.raises(AnswerKeyMissing, match="OMVANT_ANSWER_KEY"):
        answer_seal(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    env["OMVANT_DATABASE_URL"] = "postgresql://u@127.0.0.1:1/x"
    started = subprocess.run(
        [sys.executable, "-c", "import workers.app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0 and "OMVANT_ANSWER_KEY is not set" in started.stderr


def test_the_embedded_default_makes_its_own_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    embedded = Settings(home=tmp_path / "home", answer_key=None)
    sealed = answer_seal(embedded).seal("hemligt")
    key = tmp_path / "home" / "answer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert answer_seal(Settings(home=tmp_path / "home", answer_key=None)).open(sealed) == "hemligt"


def test_the_demo_answers_and_staff_see_answers_content_and_unanswered_cases(
    tmp_path: Path,
) -> None:
    from producers.demo import run_demo

    url = f"sqlite:///{tmp_path}/demo.db"
    summary = run_demo(Settings(database_url=url, blob_dir=tmp_path / "b"), count=120)
    assert summary["answered"] > 0
    runner = CliRunner()
    base = ["--user", USER, "--database", url, "--json"]

    def listing(clinic: str, *args: str) -> list[dict[str, object]]:
        result = runner.invoke(app, ["cases", "list", "--clinic", clinic, *args, *base])
        assert result.exit_code == 0, result.output
        return list(json.loads(result.stdout))

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        clinics = sorted(conn.execute(sa.select(cases_table.c.clinic_hsa_id).distinct()).scalars())
    engine.dispose()
    answered_rows = [r for c in clinics for r in listing(c, "--status", "answered")]
    unanswered_rows = [r for c in clinics for r in listing(c, "--status", "unanswered")]
    assert len(answered_rows) == summary["answered"]
    assert all(r["answered_at"] and r["answer_kind"] for r in answered_rows)
    assert all(r["answered_at"] is None for r in unanswered_rows)
    assert {r["template_id"] for r in unanswered_rows} <= {
        "bifoga-bild-till-varden",
        "fragor-infor-vardkontakt-sjukskrivning",
    }
    some = answered_rows[0]
    clinic = next(c for c in clinics if any(r["case_id"] == some["case_id"] for r in listing(c)))
    shown = runner.invoke(
        app, ["cases", "show", str(some["case_id"]), "--clinic", clinic, "--content", *base]
    )
    assert shown.exit_code == 0, shown.output
    content = json.loads(shown.stdout)["content"]
    assert content["subject"] and content["body"] and content["signature"]
    newest_first = listing(clinic)
    received = [r["received_at"] for r in newest_first]
    assert received == sorted(received, reverse=True)  # type: ignore[type-var]
    number = population.test_personnummer()[0]
    resident = runner.invoke(
        app, ["cases", "list", "--clinic", clinic, "--resident", number, *base]
    )
    assert resident.exit_code == 0, resident.output
    assert all(r["resident"].startswith(number[:8]) for r in json.loads(resident.stdout))
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        entries = access_log.entries(conn, clinic)
    engine.dispose()
    assert "cases-show-content" in [e.action for e in entries]
    assert number in entries[-1].personnummer, "a search by resident is logged"


def test_omvant_worker_without_an_answer_key_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMVANT_ANSWER_KEY", raising=False)
    result = CliRunner().invoke(
        app,
        ["worker", "--broker", "redis://127.0.0.1:6379/6",
         "--database", "postgresql://u@127.0.0.1:1/x"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("omvant: OMVANT_ANSWER_KEY is not set")


def test_an_answer_is_called_back_once_as_case_answered_without_its_content(ctx: Context) -> None:
    from tests.web.api_support import make_key
    from workers.adapters.webhook_receiver import WebhookReceiver
    from workers.store.schema import case_events, intake_keys
    from workers.webhooks import WebhookSender

    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template()))
    deliver(ctx, "q-9")
    with WebhookReceiver() as receiver:
        key = make_key(ctx.settings.database_url, "journal-q", [CLINIC], webhook_url=receiver.url)
        receiver.signing_key = key.signing_key
        with ctx.engine.begin() as conn:  # the case came in through the key's integration
            conn.execute(
                intake_keys.insert().values(
                    clinic_hsa_id=CLINIC,
                    idempotency_key="q-9",
                    case_id="q-9",
                    integration="journal-q",
                    first_seen_at=T,
                )
            )
        publish_answers(ctx, [answered("q-9", "counter-question")] * 2, expected=1)
        publish_answers(ctx, [answered("q-9", "answer")], expected=1)  # a later answer: no news
        sender = WebhookSender(ctx.engine, ctx.settings)
        sender.run_once()
        sender.run_once()
        sender.close()
    with ctx.engine.connect() as conn:
        history = conn.execute(
            sa.select(case_events.c.state, case_events.c.at).where(case_events.c.case_id == "q-9")
        ).all()
    assert [h.state for h in history].count("answered") == 1
    [answer_event] = [e for e in receiver.events.values() if e["type"] == "case.answered"]
    assert answer_event["case"] == {
        "id": "q-9",
        "clinic_hsa_id": CLINIC,
        "batch_id": "b1",
        "state": "answered",
        "reason": None,
    }
    assert answer_event["occurred_at"] == T.isoformat()
    assert sorted(e["type"] for e in receiver.events.values()) == [
        "case.answered",
        "case.delivered",
        "case.read",
    ]
    body = json.dumps(list(receiver.events.values()), ensure_ascii=False)
    assert "knä" not in body and "vecka" not in body and "counter" not in body, "no content"
    assert receiver.bad_signatures == 0 and receiver.deliveries == len(receiver.events)


def test_an_answer_to_an_information_template_is_refused_kept_sealed_and_not_alerted(
    ctx: Context,
) -> None:
    with ctx.engine.begin() as conn:
        template_store.create(conn, validated(question_template()))
        answers.set_clinic_alert(conn, CLINIC, answers.AnswerAlert("email", "hud@region.example"))
    deliver(ctx, "i-1", template_id="meddelande-till-invanare")  # information: no questions
    deliver(ctx, "q-1")
    publish_answers(ctx, [answered("i-1"), answered("q-1"), answered("nobody")], expected=1)
    with ctx.engine.connect() as conn:
        stored = conn.execute(sa.select(case_answers.c.case_id)).scalars().all()
        case = conn.execute(sa.select(cases_table).where(cases_table.c.id == "i-1")).one()
        rows = conn.execute(sa.select(rejected_messages).order_by(rejected_messages.c.reason))
        kept, unknown = rows.all()
    assert unknown.reason == "unknown-case"
    assert "Jag har ont" not in unknown.body, "any refused answer is kept sealed"
    assert stored == ["q-1"], "the question case's answer comes home, the other does not"
    assert case.answer_kind is None and case.answered_at is None
    assert isinstance(ctx.email, SimulatedEmailSender)
    assert len(ctx.email.recorder.records) == 1, "one alert: the question case's"
    assert kept.reason == "answer-not-expected"
    assert kept.queue == f"{ctx.settings.queue_prefix}read-receipts"
    body = json.loads(kept.body)
    assert (body["case_id"], body["event"]) == ("i-1", "answered"), "nothing lost"
    assert "Jag har ont" not in kept.body, "the refused answer is kept sealed, as answers are"
    assert "text" not in body["answer"] and "question_answers" not in body["answer"]
    assert SECRET_TEXT in answer_seal(ctx.settings).open(body["answer"]["sealed"])
