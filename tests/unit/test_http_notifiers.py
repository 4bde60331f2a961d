"""What both HTTP notifiers (``HttpSmsGateway``, ``HttpEmailApi``: one ``HttpAdapter`` base) make
of their provider's answers, each against its shipped simulator over real HTTP on loopback: a
429 waited out or handed on, a refused recipient final, a timeout after the provider took the
message in doubt (and settled by lookup), an unreachable provider certainly not taken."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.ports import refusing_port
from workers.adapters.email_api_server import EmailApiSimulator
from workers.adapters.http_email_api import HttpEmailApi
from workers.adapters.http_sms_gateway import HttpSmsGateway
from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable
from workers.adapters.sms_gateway_server import SmsGatewaySimulator


@dataclass(frozen=True)
class Provider:
    """One HTTP notifier, its simulator, and a recipient it takes."""

    simulator: Callable[[], EmailApiSimulator | SmsGatewaySimulator]
    adapter: Callable[..., HttpEmailApi | HttpSmsGateway]
    to: str
    send: Callable[[Any, str, str], str]
    """``send(notifier, to, key)``: one notification."""


PROVIDERS = {
    "sms": Provider(
        SmsGatewaySimulator,
        HttpSmsGateway,
        "+46701740605",
        lambda notifier, to, key: notifier.send(to=to, text="x", idempotency_key=key),
    ),
    "email": Provider(
        EmailApiSimulator,
        HttpEmailApi,
        "anna.andersson@example.se",
        lambda notifier, to, key: notifier.send(
            to=to, subject="Nytt meddelande", text="x", idempotency_key=key
        ),
    ),
}


@dataclass
class Running:
    """A provider with its simulator serving."""

    provider: Provider
    simulator: EmailApiSimulator | SmsGatewaySimulator

    def notifier(self, **options: Any) -> Any:
        """The HTTP adapter on the simulator (``options``: the adapter's)."""
        return self.provider.adapter(self.simulator.url, **options)

    def send(self, notifier: Any, key: str) -> str:
        """Send one notification to the provider's recipient under ``key``."""
        return self.provider.send(notifier, self.provider.to, key)


@pytest.fixture(params=list(PROVIDERS))
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    provider = PROVIDERS[request.param]
    with provider.simulator() as simulator:
        yield Running(provider, simulator)


def test_a_429_is_waited_out_as_retry_after_says(running: Running) -> None:
    running.simulator.behave(throttle_next=2, retry_after=1.5)
    waits: list[float] = []
    running.send(running.notifier(sleep=waits.append), "k1")
    assert waits == [1.5, 1.5]
    assert len(running.simulator.messages()) == 1


def test_a_long_retry_after_is_handed_to_the_caller(running: Running) -> None:
    running.simulator.behave(throttle_next=1, retry_after=30)
    with pytest.raises(NotifierUnavailable) as raised:
        running.send(running.notifier(sleep=lambda _: None), "k2")
    assert raised.value.retry_after == 30


def test_too_many_429s_in_a_row_are_handed_to_the_caller(running: Running) -> None:
    running.simulator.behave(throttle_next=5, retry_after=0.5)
    waits: list[float] = []
    with pytest.raises(NotifierUnavailable) as raised:
        running.send(running.notifier(sleep=waits.append, throttle_attempts=3), "k3")
    assert raised.value.retry_after == 0.5
    assert waits == [0.5, 0.5, 0.5]
    assert running.simulator.messages() == []


def test_a_refused_recipient_is_a_permanent_failure(running: Running) -> None:
    running.simulator.behave(refuse=[running.provider.to])
    with pytest.raises(NotificationRefused) as raised:
        running.send(running.notifier(), "k4")
    assert raised.value.reason == "notification-refused"
    assert running.simulator.messages() == []


def test_a_timeout_after_the_provider_took_it_is_in_doubt_and_lookup_settles_it(
    running: Running,
) -> None:
    running.simulator.behave(delay_after=1.0)
    notifier = running.notifier(timeout=0.2)
    with pytest.raises(NotifierUnavailable) as raised:
        running.send(notifier, "k5")
    assert raised.value.maybe_accepted
    running.simulator.behave(delay_after=0.0)
    assert notifier.lookup("k5") is not None


@pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=list(PROVIDERS))
def test_an_unreachable_provider_is_transient_and_certainly_not_taken(provider: Provider) -> None:
    with refusing_port() as port:
        notifier = provider.adapter(f"http://127.0.0.1:{port}", timeout=1)
        with pytest.raises(NotifierUnavailable) as raised:
            provider.send(notifier, provider.to, "k6")
        assert not raised.value.maybe_accepted
        with pytest.raises(NotifierUnavailable):
            notifier.lookup("k6")
