"""The HTTP SMS adapter against the shipped gateway simulator, over real HTTP on loopback (the
answers both HTTP notifiers map alike: ``test_http_notifiers.py``)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.processes import omvant_sim
from workers.adapters.http_sms_gateway import HttpSmsGateway
from workers.adapters.notifiers import NotifierUnavailable
from workers.adapters.sms_gateway_server import SmsGatewaySimulator

PHONE = "+46701740605"


def test_an_sms_is_taken_once_per_key_and_can_be_looked_up(
    sms_simulator: SmsGatewaySimulator,
) -> None:
    gateway = HttpSmsGateway(sms_simulator.url)
    ref = gateway.send(to=PHONE, text="Du har ett meddelande", idempotency_key="c1:sms:1")
    again = gateway.send(to=PHONE, text="Du har ett meddelande", idempotency_key="c1:sms:1")
    assert ref == again
    assert [m["key"] for m in sms_simulator.messages()] == ["c1:sms:1"]
    assert gateway.lookup("c1:sms:1") == ref
    assert gateway.lookup("c2:sms:1") is None
    assert httpx.get(f"{sms_simulator.url}/messages/{ref}").json()["key"] == "c1:sms:1"


def test_a_5xx_is_transient_and_not_taken(sms_simulator: SmsGatewaySimulator) -> None:
    sms_simulator.behave(fail_next=1)
    gateway = HttpSmsGateway(sms_simulator.url)
    with pytest.raises(NotifierUnavailable) as raised:
        gateway.send(to=PHONE, text="x", idempotency_key="k1")
    assert not raised.value.maybe_accepted
    assert sms_simulator.messages() == []
    gateway.send(to=PHONE, text="x", idempotency_key="k1")
    assert len(sms_simulator.messages()) == 1


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
    sms_simulator: SmsGatewaySimulator, control: dict[str, object]
) -> None:
    refused = httpx.post(f"{sms_simulator.url}/control", json=control, timeout=2)
    assert refused.status_code == 400
    assert httpx.post(f"{sms_simulator.url}/control", content=b"zzz", timeout=2).status_code == 400
    sent = httpx.post(
        f"{sms_simulator.url}/messages",
        json={"to": PHONE, "text": "x"},
        headers={"Idempotency-Key": "after-bad-control"},
        timeout=2,
    )
    assert sent.status_code == 201
    good = httpx.post(f"{sms_simulator.url}/control", json={"fail_next": 1, "retry_after": 2})
    assert good.status_code == 200 and good.json()["fail_next"] == 1
