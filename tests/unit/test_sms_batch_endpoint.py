"""The SMS gateway's batch endpoint (one request, one text, a key per recipient, a result per
recipient), the HTTP adapter's ``send_batch`` against the shipped simulator over real HTTP on
loopback, and the one-at-a-time ``send_batch`` every other gateway inherits."""

from __future__ import annotations

import httpx

from workers.adapters.http_sms_gateway import HttpSmsGateway
from workers.adapters.notifiers import (
    NotificationRefused,
    NotifierUnavailable,
    Recipient,
    SimulatedSmsGateway,
)
from workers.adapters.sms_gateway_server import MAX_BATCH, SmsGatewaySimulator

NUMBERS = [f"+4670174{i:04d}" for i in range(6)]
TEXT = "Du har ett meddelande"


def recipients(count: int, prefix: str = "c") -> list[Recipient]:
    return [Recipient(NUMBERS[i % len(NUMBERS)], f"{prefix}{i}:sms") for i in range(count)]


def batches(sms_simulator: SmsGatewaySimulator) -> list[int]:
    return list(httpx.get(f"{sms_simulator.url}/messages").json()["batches"])


def test_one_request_answers_each_recipient_accepted_duplicate_refused_or_unavailable(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    gateway = HttpSmsGateway(sms_simulator.url)
    before = gateway.send(to=NUMBERS[1], text=TEXT, idempotency_key="c1:sms")  # single endpoint
    sms_simulator.behave(refuse=[NUMBERS[2]], unavailable=[NUMBERS[3]])
    answers = gateway.send_batch(text=TEXT, recipients=recipients(4))
    assert batches(sms_simulator) == [4]  # one request for the four
    accepted, duplicate, refused, unavailable = answers
    assert isinstance(accepted, str) and gateway.lookup("c0:sms") == accepted
    assert duplicate == before  # the first message's reference; nothing sent again
    assert isinstance(refused, NotificationRefused) and "number-refused" in str(refused)
    assert refused.reason == "notification-refused"
    assert isinstance(unavailable, NotifierUnavailable) and not unavailable.maybe_accepted
    assert sorted(m["key"] for m in sms_simulator.messages()) == ["c0:sms", "c1:sms"]
    assert gateway.lookup("c3:sms") is None  # not taken: safe to send again later


def test_a_batch_dedupes_its_keys_with_the_single_endpoint_and_within_itself(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    gateway = HttpSmsGateway(sms_simulator.url)
    first = gateway.send_batch(text=TEXT, recipients=recipients(3))
    again = gateway.send_batch(text=TEXT, recipients=[*recipients(3), recipients(1)[0]])
    assert again == [*first, first[0]]
    assert len(sms_simulator.messages()) == 3
    assert gateway.send(to=NUMBERS[0], text=TEXT, idempotency_key="c0:sms") == first[0]
    assert len(sms_simulator.messages()) == 3


def test_a_5xx_or_a_long_429_answers_every_recipient_not_taken(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    gateway = HttpSmsGateway(sms_simulator.url, sleep=lambda _: None)
    sms_simulator.behave(fail_next=1)
    answers = gateway.send_batch(text=TEXT, recipients=recipients(3))
    assert all(isinstance(a, NotifierUnavailable) and not a.maybe_accepted for a in answers)
    sms_simulator.behave(throttle_next=1, retry_after=30)
    answers = gateway.send_batch(text=TEXT, recipients=recipients(3))
    assert all(isinstance(a, NotifierUnavailable) and a.retry_after == 30 for a in answers)
    assert sms_simulator.messages() == []


def test_a_short_429_is_waited_out_and_the_batch_sent(sms_simulator: SmsGatewaySimulator) -> None:
    waits: list[float] = []
    sms_simulator.behave(throttle_next=1, retry_after=0.5)
    answers = HttpSmsGateway(sms_simulator.url, sleep=waits.append).send_batch(
        text=TEXT, recipients=recipients(2)
    )
    assert waits == [0.5]
    assert all(isinstance(a, str) for a in answers)


def test_a_timeout_leaves_every_recipient_in_doubt_and_lookup_settles_each(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    sms_simulator.behave(delay_after=1.0)
    gateway = HttpSmsGateway(sms_simulator.url, timeout=0.3)
    answers = gateway.send_batch(text=TEXT, recipients=recipients(3))
    assert all(isinstance(a, NotifierUnavailable) and a.maybe_accepted for a in answers)
    assert all(gateway.lookup(f"c{i}:sms") is not None for i in range(3))


def test_the_adapter_splits_what_is_larger_than_its_batch_cap(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    answers = HttpSmsGateway(sms_simulator.url, max_batch=2).send_batch(
        text=TEXT, recipients=recipients(5)
    )
    assert batches(sms_simulator) == [2, 2, 1]
    assert len({a for a in answers if isinstance(a, str)}) == 5


def test_the_simulator_refuses_a_batch_over_its_cap_or_a_malformed_one(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    too_many = [{"to": NUMBERS[0], "idempotency_key": f"k{i}"} for i in range(MAX_BATCH + 1)]
    response = httpx.post(
        f"{sms_simulator.url}/messages/batch", json={"text": TEXT, "messages": too_many}
    )
    assert response.status_code == 413
    for body in ({"messages": []}, {"text": TEXT, "messages": [{"to": NUMBERS[0]}]}):
        assert httpx.post(f"{sms_simulator.url}/messages/batch", json=body).status_code == 400
    assert sms_simulator.messages() == []


def test_a_gateway_without_a_batch_endpoint_sends_one_at_a_time_and_stops_when_it_is_down() -> None:
    class DownAfterTwo(SimulatedSmsGateway):
        def send(self, *, to: str, text: str, idempotency_key: str) -> str:
            if len(self.sends) >= 2:
                raise NotifierUnavailable("down")
            return super().send(to=to, text=text, idempotency_key=idempotency_key)

    gateway = DownAfterTwo(refuse=frozenset({NUMBERS[1]}))
    answers = gateway.send_batch(text=TEXT, recipients=recipients(5))
    assert isinstance(answers[0], str)
    assert isinstance(answers[1], NotificationRefused)
    assert isinstance(answers[2], str)
    assert all(isinstance(a, NotifierUnavailable) for a in answers[3:])
    assert len(answers) == 5
    assert list(gateway.sends) == ["c0:sms", "c2:sms"]  # c4 not tried once c3 failed
