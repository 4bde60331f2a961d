"""The HTTP e-mail API adapter against the shipped e-mail API simulator, over real HTTP on
loopback: one message per idempotency key, lookup by key, an outage, and a simulator whose keys
survive a restart and are shared by processes (the answers both HTTP notifiers map alike:
``test_http_notifiers.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import omvant_sim
from workers.adapters.email_api_server import EmailApiSimulator
from workers.adapters.http_email_api import HttpEmailApi
from workers.adapters.notifier_wiring import build_email_sender
from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable
from workers.adapters.smtp_email import SmtpEmailSender, message_id
from workers.settings import Settings

ADDRESS = "anna.andersson@example.se"
SUBJECT = "Nytt meddelande på 1177"
TEXT = "Du har ett meddelande i e-tjänsterna på 1177."


@pytest.fixture
def simulator() -> Iterator[EmailApiSimulator]:
    with EmailApiSimulator() as sim:
        yield sim


def send(api: HttpEmailApi, key: str, to: str = ADDRESS) -> str:
    return api.send(to=to, subject=SUBJECT, text=TEXT, idempotency_key=key)


def stats(simulator: EmailApiSimulator) -> dict[str, int]:
    return dict(httpx.get(f"{simulator.url}/v1/stats").json())


def test_an_email_is_taken_once_per_key_however_often_it_is_sent(
    simulator: EmailApiSimulator,
) -> None:
    api = HttpEmailApi(simulator.url)
    first = send(api, "c1:email")
    again = send(api, "c1:email")
    other = send(api, "c2:email")
    assert first == again != other
    assert [m["key"] for m in simulator.messages()] == ["c1:email", "c2:email"]
    assert stats(simulator) == {"attempts": 3, "distinct": 2, "duplicates_refused": 1}
    # the Message-ID is the one SMTP would use: a duplicate downstream is recognisable
    assert simulator.messages()[0]["message_id"] == message_id("c1:email")


def test_lookup_finds_a_sent_email_and_none_for_an_unknown_key(
    simulator: EmailApiSimulator,
) -> None:
    api = HttpEmailApi(simulator.url)
    ref = send(api, "c3:email")
    assert api.lookup("c3:email") == ref
    assert api.lookup("c4:email") is None
    assert api.lookup("c3:email:2") is None  # a reminder's key is its own
    assert stats(simulator)["attempts"] == 1  # asking sends nothing


def test_an_outage_is_transient_for_sends_and_lookups_and_takes_nothing(
    simulator: EmailApiSimulator,
) -> None:
    api = HttpEmailApi(simulator.url)
    simulator.behave(fail_for=30)
    with pytest.raises(NotifierUnavailable) as raised:
        send(api, "c5:email")
    assert not raised.value.maybe_accepted
    with pytest.raises(NotifierUnavailable):
        api.lookup("c5:email")
    assert simulator.messages() == []
    simulator.behave(fail_for=0)
    send(api, "c5:email")
    assert api.lookup("c5:email") is not None


def test_the_outage_switch_ends_by_itself_after_its_seconds(simulator: EmailApiSimulator) -> None:
    api = HttpEmailApi(simulator.url)
    simulator.behave(fail_for=0.3)
    with pytest.raises(NotifierUnavailable):
        send(api, "c6:email")
    time.sleep(0.4)
    send(api, "c6:email")
    assert len(simulator.messages()) == 1


def test_a_key_sent_again_for_another_address_is_refused_not_sent(
    simulator: EmailApiSimulator,
) -> None:
    api = HttpEmailApi(simulator.url)
    send(api, "c10:email")
    with pytest.raises(NotificationRefused):
        send(api, "c10:email", to="someone.else@example.se")
    assert [m["to"] for m in simulator.messages()] == [ADDRESS]


def test_a_provider_that_wants_a_token_refuses_without_it_and_that_is_retried() -> None:
    with EmailApiSimulator(token="t0ken") as sim:
        with pytest.raises(NotifierUnavailable, match="OMVANT_EMAIL_API_TOKEN"):
            send(HttpEmailApi(sim.url), "c13:email")
        with pytest.raises(NotifierUnavailable):
            HttpEmailApi(sim.url, token="wrong").lookup("c13:email")
        assert sim.messages() == []
        api = HttpEmailApi(sim.url, token="t0ken")
        assert api.lookup("c13:email") is None
        ref = send(api, "c13:email")
        assert api.lookup("c13:email") == ref


def test_keys_survive_a_restart_and_are_shared_by_simulators_on_one_store(
    tmp_path: Path,
) -> None:
    store = tmp_path / "email.sqlite3"
    with EmailApiSimulator(store=store) as first:
        ref = send(HttpEmailApi(first.url), "c14:email")
    with EmailApiSimulator(store=store) as restarted, EmailApiSimulator(store=store) as beside:
        assert HttpEmailApi(restarted.url).lookup("c14:email") == ref
        assert send(HttpEmailApi(beside.url), "c14:email") == ref
        send(HttpEmailApi(restarted.url), "c15:email")
        assert HttpEmailApi(beside.url).lookup("c15:email") is not None
        assert [m["key"] for m in beside.messages()] == ["c14:email", "c15:email"]
        assert stats(restarted) == {"attempts": 3, "distinct": 2, "duplicates_refused": 1}


def test_a_bad_control_value_is_refused_and_changes_nothing(simulator: EmailApiSimulator) -> None:
    for bad in ({"fail_for": -1}, {"fail_next": 1.5}, {"refuse": "x"}, {"nonsense": 1}):
        assert httpx.post(f"{simulator.url}/v1/control", json=bad).status_code == 400
    good = httpx.post(f"{simulator.url}/v1/control", json={"fail_for": 5})
    assert good.status_code == 200 and 4 < good.json()["fail_for"] <= 5
    assert httpx.get(f"{simulator.url}/v1/control").json()["fail_next"] == 0


def test_the_api_wins_over_smtp_and_its_token_is_masked_in_the_settings() -> None:
    settings = Settings(
        email_api_url="http://127.0.0.1:1",
        email_api_token="very-secret-token",
        smtp_url="smtp://127.0.0.1:25",
    )
    sender = build_email_sender(settings)
    assert isinstance(sender, HttpEmailApi) and sender.can_lookup
    assert sender.client.headers["Authorization"] == "Bearer very-secret-token"
    assert "very-secret-token" not in repr(settings) + str(settings.model_dump())
    smtp_only = build_email_sender(Settings(smtp_url="smtp://127.0.0.1:25"))
    assert isinstance(smtp_only, SmtpEmailSender) and not smtp_only.can_lookup


def test_the_simulator_runs_on_its_own_from_the_command_line(tmp_path: Path) -> None:
    with omvant_sim("email-api", "--port", "0", "--store", tmp_path / "email.sqlite3") as sim:
        ref = send(HttpEmailApi(sim.url), "c16:email")
        assert HttpEmailApi(sim.url).lookup("c16:email") == ref
    assert sim.process.returncode == 0
