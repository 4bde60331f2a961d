"""The chaos run's view of e-mail sent through the e-mail API simulator: one e-mail per case
key, asked of the simulator over HTTP, as the SMTP sink's record file gives it otherwise."""

from __future__ import annotations

from pathlib import Path

from producers.chaos.checks import Expected
from producers.chaos.faults import gateway_control
from producers.chaos.run import observe
from workers.adapters.email_api_server import EmailApiSimulator
from workers.adapters.http_email_api import HttpEmailApi
from workers.adapters.inbox_server import InboxSimulator
from workers.adapters.sms_gateway_server import SmsGatewaySimulator


def test_the_run_counts_the_emails_the_api_took_per_case(tmp_path: Path) -> None:
    expected = [Expected("c1", True, ("email",)), Expected("c2", True, ("email",))]
    with InboxSimulator() as inbox, SmsGatewaySimulator() as gateway, EmailApiSimulator() as api:
        client = HttpEmailApi(api.url)
        for key in ("c1:email", "c1:email", "c2:email"):
            client.send(to="a@example.se", subject="s", text="t", idempotency_key=key)
        observed, _ = observe(tmp_path, inbox.url, gateway.url, expected, api.url)
    assert dict(observed.email) == {"c1": 1, "c2": 1}


def test_the_fault_schedule_can_take_the_email_api_down_for_a_while() -> None:
    with EmailApiSimulator() as api:
        gateway_control(api.url, path="/v1/control", fail_for=25)
        assert 24 < api.described()["fail_for"] <= 25
