"""Delivery end to end on real servers: SMTP (aiosmtpd), the SMS-gateway simulator over HTTP,
RabbitMQ, PostgreSQL, and real ``omvant`` processes, including one killed mid-batch."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.registry import envelope_for
from contracts.send_case import SendCaseV2
from producers.cli import app
from tests.delivery_support import (
    CLINIC_A,
    SENDER,
    STAFF_A,
    reachable_residents,
)
from tests.e2e.harness import OMVANT, running_workers, wait_until, worker_env_in
from tests.e2e.mid_batch import MidBatch
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.adapters.smtp_email import message_id
from workers.adapters.smtp_sink import SmtpSink
from workers.broker import build_broker
from workers.enqueue import enqueue
from workers.queues import Queues
from workers.store import notifications
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases

pytestmark = pytest.mark.e2e

TEXT = (
    "Du har ett meddelande i e-tjänsterna på 1177. "
    "Meddelandet finns i inkorgen när du loggat in på 1177."
)


@pytest.fixture
def inbox_exchange(rabbitmq_url: str, queue_prefix: str) -> Iterator[str]:
    """The inbox's exchange for this test; it and the bridge's queue are deleted afterwards."""
    name = f"{queue_prefix}omvant.inbox-events"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.queue_delete(f"{queue_prefix}inbox-events")
    channel.exchange_delete(name)
    connection.close()


def bridge_is_bound(rabbitmq_url: str, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_a_case_is_mailed_texted_and_read_through_an_amqp_opened_event(
    rabbitmq_url: str,
    postgres_url: str,
    queue_prefix: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    sms_simulator: SmsGatewaySimulator,
    inbox_exchange: str,
) -> None:
    smtp, sms = smtp_sink, sms_simulator
    upgrade(postgres_url)
    seed = 1177
    [both] = reachable_residents(seed, 1, frozenset({"sms", "email"}))
    [texted] = reachable_residents(seed, 1, frozenset({"sms"}))
    batch = f"e2e6-{queue_prefix.rstrip('.')}"
    requests = [
        SendCaseV2(
            clinic_hsa_id=CLINIC_A,
            sender_hsa_id=SENDER,
            template_id="meddelande-till-invanare",
            fragments=["halsning"],
            personnummer=number,
            idempotency_key=f"{batch}:{i}",
            batch_id=batch,
        )
        for i, number in enumerate((both, texted))
    ]
    env = worker_env_in(
        tmp_path,
        rabbitmq_url,
        postgres_url,
        queue_prefix,
        OMVANT_SEED=str(seed),
        OMVANT_SMTP_URL=smtp.url,
        OMVANT_SMS_GATEWAY_URL=sms.url,
    )
    bridge_log = (tmp_path / "bridge.log").open("wb")
    bridge = subprocess.Popen(
        [OMVANT, "inbox-events"], env=env, stdout=bridge_log, stderr=subprocess.STDOUT
    )
    engine = make_engine(postgres_url)
    try:
        with running_workers(env, tmp_path / "logs", threads=2) as worker:
            broker = build_broker(rabbitmq_url)
            envelope = envelope_for(requests, correlation_id=batch)
            enqueue(
                broker,
                Queues.RECIPIENT_VALIDATION,
                "validate_recipients",
                envelope.model_dump(mode="json"),
                prefix=queue_prefix,
            )

            def states() -> dict[str, str]:
                with engine.connect() as conn:
                    rows = conn.execute(
                        sa.select(cases.c.id, cases.c.state).where(cases.c.batch_id == batch)
                    )
                    return {r.id: r.state for r in rows}

            assert wait_until(lambda: list(states().values()) == ["notified"] * 2, timeout=120), (
                f"{states()}\n{worker.output()[-3000:]}"
            )
            case_both, case_texted = (r.resolved_case_id() for r in requests)
            assert [(m.message_id, m.text) for m in smtp.received] == [
                (message_id(f"{case_both}:email"), TEXT)
            ]
            assert sorted(m["key"] for m in sms.messages()) == sorted(
                [f"{case_both}:sms", f"{case_texted}:sms"]
            )
            assert {m["text"] for m in sms.messages()} == {TEXT}

            # the inbox says the resident opened the message: plain JSON on its exchange
            assert wait_until(
                lambda: bridge_is_bound(rabbitmq_url, f"{queue_prefix}inbox-events"), timeout=60
            ), (tmp_path / "bridge.log").read_text()
            connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
            event = {
                "version": 1,
                "event": "opened",
                "case_id": case_both,
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            connection.channel().basic_publish(
                exchange=inbox_exchange,
                routing_key="inbox.opened",
                body=json.dumps(event).encode(),
                properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
            )
            connection.close()
            assert wait_until(lambda: states()[case_both] == "read", timeout=60), (
                tmp_path / "bridge.log"
            ).read_text()[-3000:]

        listed = CliRunner().invoke(
            app,
            [
                "cases", "list", "--clinic", CLINIC_A, "--user", STAFF_A, "--batch", batch,
                "--json", "--database", postgres_url,
            ],
        )  # fmt: skip
        assert listed.exit_code == 0, listed.output
        status = {
            r["case_id"]: (r["status"], r["channels_notified"]) for r in json.loads(listed.stdout)
        }
        assert status == {case_both: ("read", "email,sms"), case_texted: ("unread", "sms")}
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        bridge_log.close()
        engine.dispose()


def test_killing_a_dispatch_worker_mid_batch_sends_no_notification_twice(
    mid_batch: MidBatch, smtp_sink: SmtpSink, sms_simulator: SmsGatewaySimulator
) -> None:
    smtp, sms = smtp_sink, sms_simulator
    mid_batch.clear(6, "email", "sms")
    items = mid_batch.items
    env = mid_batch.env(
        OMVANT_SMTP_URL=smtp.url,
        OMVANT_SMS_GATEWAY_URL=sms.url,
        OMVANT_SEND_CONCURRENCY="4",
        OMVANT_SMS_BATCH_SIZE="1",  # the group protocol (the batch: its own test)
        OMVANT_EMAIL_RESEND_AFTER_SECONDS="1",
    )
    mid_batch.kill_while_slow(env, sms, delay=2.0, when=lambda: len(sms.sends()) >= 3)
    before = mid_batch.statuses()
    # in doubt: at most the notifications in flight when the worker died (one group of four)
    assert 1 <= before.get(notifications.PENDING, 0) <= 4, before

    def settled(r: notifications.Entry) -> bool:
        # an in-doubt e-mail whose SMS of the same round was sent is settled without a
        # resend: the resident has a notice (notified-otherwise, docs/architecture.md)
        otherwise = r.resolution == notifications.Resolution.NOTIFIED_OTHERWISE
        return r.status == "sent" or (r.status == notifications.UNCONFIRMED and otherwise)

    rows = mid_batch.recover(env, settled, also=lambda: mid_batch.case_states() == {"notified"})
    resent = {
        r.key for r in rows if r.resolution == notifications.Resolution.RESENT_SAME_MESSAGE_ID
    }
    otherwise = {r.key for r in rows if r.resolution == notifications.Resolution.NOTIFIED_OTHERWISE}
    # only an e-mail can be settled otherwise, and only beside a sent SMS of its case
    assert all(k.endswith(":email") for k in otherwise), otherwise
    sms_posts = Counter(s["key"] for s in sms.sends())
    assert sms_posts == Counter({f"{i.case_id}:sms": 1 for i in items})  # asked, never resent
    mails = Counter(m.message_id for m in smtp.received)
    for item in items:
        key = f"{item.case_id}:email"
        # every resident got the e-mail, an in-doubt one once more with the same Message-ID;
        # one settled otherwise went at most once (its SMS went, asserted above)
        least = 0 if key in otherwise else 1
        most = 2 if key in resent else 1
        assert least <= mails[message_id(key)] <= most, (key, mails, resent, otherwise)
