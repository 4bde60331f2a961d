"""E-mail through the e-mail API's batch endpoint: the adapter against the shipped simulator
over real HTTP (a result per recipient, keys deduped with the single endpoint and across a
restart on the same store), and notification sending claiming a chunk's e-mails in one batch
when the provider has a batch call, and never when it is SMTP (which cannot be asked)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.delivery_support import sending_context
from tests.unit.test_notification_dispatch import STOCKHOLM_AFTERNOON
from tests.unit.test_sms_batch_sending import rows, sms_cases
from workers import notification_sending
from workers.adapters.email_api_server import MAX_BATCH, EmailApiSimulator
from workers.adapters.http_email_api import HttpEmailApi
from workers.adapters.notifiers import (
    NotificationRefused,
    NotifierUnavailable,
    Recipient,
    SendAnswer,
    SimulatedEmailSender,
)
from workers.bootstrap import Context
from workers.store import notifications

SUBJECT = "Nytt meddelande på 1177"
TEXT = "Du har ett meddelande i e-tjänsterna på 1177."
ADDRESSES = [f"invanare-{i:04d}@example.org" for i in range(5)]


def recipients(count: int) -> list[Recipient]:
    return [Recipient(ADDRESSES[i % len(ADDRESSES)], f"c{i}:email") for i in range(count)]


def test_one_request_answers_each_recipient_and_keys_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "email.sqlite3"
    with EmailApiSimulator(store=store, token="t") as sim:
        api = HttpEmailApi(sim.url, token="t")
        single = api.send(to=ADDRESSES[1], subject=SUBJECT, text=TEXT, idempotency_key="c1:email")
        sim.behave(refuse=[ADDRESSES[2]])
        first = api.send_batch(subject=SUBJECT, text=TEXT, recipients=recipients(3))
        assert isinstance(first[0], str) and first[1] == single
        assert isinstance(first[2], NotificationRefused) and "recipient-refused" in str(first[2])
        assert api.lookup("c0:email") == first[0]
        unauthorised = HttpEmailApi(sim.url).send_batch(
            subject=SUBJECT, text=TEXT, recipients=recipients(2)
        )
        assert all(isinstance(a, NotifierUnavailable) for a in unauthorised)  # our token
    with EmailApiSimulator(store=store, token="t") as restarted:
        again = HttpEmailApi(restarted.url, token="t").send_batch(
            subject=SUBJECT, text=TEXT, recipients=recipients(2)
        )
        assert again == first[:2]  # the restarted provider knows both keys: nothing sent
        assert sorted(str(m["key"]) for m in restarted.messages()) == ["c0:email", "c1:email"]


def test_the_simulator_refuses_a_batch_over_its_cap(tmp_path: Path) -> None:
    with EmailApiSimulator() as sim:
        messages = [
            {"to": ADDRESSES[0], "idempotency_key": f"k{i}", "message_id": ""}
            for i in range(MAX_BATCH + 1)
        ]
        body = {"subject": SUBJECT, "text": TEXT, "messages": messages}
        assert httpx.post(f"{sim.url}/v1/messages/batch", json=body).status_code == 413
        assert sim.messages() == []


class CountingEmailApi(HttpEmailApi):
    """Counts batch requests and single sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []
        self.singles = 0

    def send_batch(
        self, *, subject: str, text: str, recipients: Sequence[Recipient]
    ) -> list[SendAnswer]:
        self.batches.append(len(recipients))
        return super().send_batch(subject=subject, text=text, recipients=recipients)

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        self.singles += 1
        return super().send(to=to, subject=subject, text=text, idempotency_key=idempotency_key)


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    with sending_context(sqlite_url, tmp_path, lambda: STOCKHOLM_AFTERNOON) as context:
        yield context


def email_cases(ctx: Context, prefix: str, count: int) -> list[str]:
    return sms_cases(ctx, prefix, count, channel="email")


def test_a_chunks_emails_through_an_api_go_in_one_batch_request(ctx: Context) -> None:
    keys = email_cases(ctx, "mailbatch", 9)
    with EmailApiSimulator() as sim:
        ctx.email = api = CountingEmailApi(sim.url)
        notification_sending.send_notifications(ctx, keys)
        assert (api.batches, api.singles) == ([9], 0)
        assert sorted(str(m["key"]) for m in sim.messages()) == sorted(keys)
    assert {e.status for e in rows(ctx, keys).values()} == {notifications.SENT}


def test_emails_over_smtp_are_never_batched_only_grouped(ctx: Context) -> None:
    keys = email_cases(ctx, "smtp", 9)
    ctx.email = sender = SimulatedEmailSender()  # SMTP's twin: cannot be asked by key
    assert notification_sending.batch_sizes(ctx) == {"sms": 500}
    notification_sending.send_notifications(ctx, keys)
    assert len(sender.recorder.records) == 9
    assert {e.status for e in rows(ctx, keys).values()} == {notifications.SENT}
