"""The HTTP SMS adapter against the shipped gateway simulator, over real HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import omvant_sim
from workers.adapters.http_sms_gateway import HttpSmsGateway
from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable
from workers.adapters.sms_gateway_server import SmsGatewaySimulator

PHONE = "+46701740605"


@pytest.fixture
def simulator() -> Iterator[SmsGatewaySimulator]:
    sim = SmsGatewaySimulator().start()
    yield sim
    sim.stop()


def test_an_sms_is_taken_once_per_key_and_can_be_looked_up(simulator: SmsGatewaySimulator) -> None:
    gateway = HttpSmsGateway(simulator.url)
    ref = gateway.send(to=PHONE, text="Du har ett meddelande", idempotency_key="c1:sms:1")
    again = gateway.send(to=PHONE, text="Du har ett meddelande", idempotency_key="c1:sms:1")
    assert ref == again
    assert [m["key"] for m in simulator.messages()] == ["c1:sms:1"]
    assert gateway.lookup("c1:sms:1") == ref
    assert gateway.lookup("c2:sms:1") is None
    assert httpx.get(f"{simulator.url}/messages/{ref}").json()["key"] == "c1:sms:1"


def test_a_5xx_is_transient_and_not_taken(simulator: SmsGatewaySimulator) -> None:
    simulator.behave(fail_next=1)
    gateway = HttpSmsGateway(simulator.url)
    with pytest.raises(NotifierUnavailable) as raised:
        gateway.send(to=PHONE, text="x", idempotency_key="k1")
    assert not raised.value.maybe_accepted
    assert simulator.messages() == []
    gateway.send(to=PHONE, text="x", idempotency_key="k1")
    assert len(simulator.messages()) == 1


def test_a_429_is_waited_out_as_retry_after_says(simulator: SmsGatewaySimulator) -> None:
    simulator.behave(throttle_next=2, retry_after=1.5)
    waits: list[float] = []
    gateway = HttpSmsGateway(simulator.url, sleep=waits.append)
    gateway.send(to=PHONE, text="x", idempotency_key="k2")
    assert waits == [1.5, 1.5]
    assert len(simulator.messages()) == 1


def test_a_long_retry_after_is_handed_to_the_caller(simulator: SmsGatewaySimulator) -> None:
    simulator.behave(throttle_next=1, retry_after=30)
    gateway = HttpSmsGateway(simulator.url, sleep=lambda _: None)
    with pytest.raises(NotifierUnavailable) as raised:
        gateway.send(to=PHONE, text="x", idempotency_key="k3")
    assert raised.value.retry_after == 30


def test_a_refused_number_is_a_permanent_failure(simulator: SmsGatewaySimulator) -> None:
    simulator.behave(refuse=[PHONE])
    with pytest.raises(NotificationRefused):
        HttpSmsGateway(simulator.url).send(to=PHONE, text="x", idempotency_key="k4")


def test_a_timeout_after_the_gateway_took_it_is_in_doubt_and_lookup_settles_it(
    simulator: SmsGatewaySimulator,
) -> None:
    simulator.behave(delay_after=1.0)
    gateway = HttpSmsGateway(simulator.url, timeout=0.2)
    with pytest.raises(NotifierUnavailable) as raised:
        gateway.send(to=PHONE, text="x", idempotency_key="k5")
    assert raised.value.maybe_accepted
    assert gateway.lookup("k5") is not None


def test_an_unreachable_gateway_is_transient_and_certainly_not_taken() -> None:
    sim = SmsGatewaySimulator().start()
    url = sim.url
    sim.stop()
    with pytest.raises(NotifierUnavailable) as raised:
        HttpSmsGateway(url, timeout=1).send(to=PHONE, text="x", idempotency_key="k6")
    assert not raised.value.maybe_accepted


def test_the_simulator_runs_on_its_own_from_the_command_line() -> None:
    with omvant_sim("sms-gateway", "--port", "0", url_on="stderr") as sim:
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.post(f"{sim.url}/control", json={"fail_next": 1}, timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.json()["fail_next"] == 1


@pytest.mark.parametrize(
    "control",
    [
        {"fail_next": "x"},
        {"fail_next": -1},
        {"throttle_next": 1.5},
        {"delay_before": "slow"},
        {"refuse": PHONE},
        {"bogus": 1},
    ],
)
def test_a_bad_control_request_is_refused_and_the_simulator_keeps_answering(
    simulator: SmsGatewaySimulator, control: dict[str, object]
) -> None:
    refused = httpx.post(f"{simulator.url}/control", json=control, timeout=2)
    assert refused.status_code == 400
    assert httpx.post(f"{simulator.url}/control", content=b"zzz", timeout=2).status_code == 400
    sent = httpx.post(
        f"{simulator.url}/messages",
        json={"to": PHONE, "text": "x"},
        headers={"Idempotency-Key": "after-bad-control"},
        timeout=2,
    )
    assert sent.status_code == 201
    good = httpx.post(f"{simulator.url}/control", json={"fail_next": 1, "retry_after": 2})
    assert good.status_code == 200 and good.json()["fail_next"] == 1


def test_too_many_429s_in_a_row_are_handed_to_the_caller(simulator: SmsGatewaySimulator) -> None:
    simulator.behave(throttle_next=5, retry_after=0.5)
    waits: list[float] = []
    gateway = HttpSmsGateway(simulator.url, sleep=waits.append, throttle_attempts=3)
    with pytest.raises(NotifierUnavailable) as raised:
        gateway.send(to=PHONE, text="x", idempotency_key="k9")
    assert raised.value.retry_after == 0.5
    assert waits == [0.5, 0.5, 0.5]
    assert simulator.messages() == []
