"""The SMTP adapter against a real SMTP server (aiosmtpd) on loopback: plain, STARTTLS + AUTH."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult

from workers.adapters.notifiers import NotificationRefused, NotifierUnavailable
from workers.adapters.smtp_email import SmtpConfig, SmtpEmailSender, message_id
from workers.adapters.smtp_sink import SmtpSink

TEXT = "Du har ett meddelande i e-tjänsterna på 1177."


def sender_for(url: str, timeout: float = 10.0) -> SmtpEmailSender:
    return SmtpEmailSender(
        SmtpConfig.from_url(url), sender="1177 <no-reply@1177.example>", timeout=timeout
    )


def test_an_email_arrives_with_a_message_id_derived_from_its_key(smtp_sink: SmtpSink) -> None:
    sender = sender_for(smtp_sink.url)
    ref = sender.send(
        to="invanare-1@example.org", subject="Nytt meddelande", text=TEXT, idempotency_key="c1:e:1"
    )
    sender.send(
        to="invanare-2@example.org", subject="Nytt meddelande", text=TEXT, idempotency_key="c2:e:1"
    )
    sender.close()
    first, second = smtp_sink.received
    assert first.rcpt_tos == ("invanare-1@example.org",)
    assert first.text == TEXT
    assert first.message_id == ref == message_id("c1:e:1")
    assert second.message_id == message_id("c2:e:1") != ref


def test_a_refused_recipient_is_a_permanent_failure(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse.add("gone@example.org")
    with pytest.raises(NotificationRefused):
        sender_for(smtp_sink.url).send(
            to="gone@example.org", subject="s", text=TEXT, idempotency_key="k"
        )
    assert smtp_sink.received == []


def test_an_unreachable_server_is_transient_and_certainly_not_sent() -> None:
    server = SmtpSink().start()
    url = server.url
    server.stop()
    with pytest.raises(NotifierUnavailable) as raised:
        sender_for(url).send(to="a@example.org", subject="s", text=TEXT, idempotency_key="k")
    assert not raised.value.maybe_accepted


class Passwords:
    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login == b"omvant" and data.password == b"hemligt"
        return AuthResult(success=ok)


def test_starttls_and_authentication_as_the_url_says(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = SmtpSink(
        tls_context=server_context,
        require_starttls=True,
        authenticator=Passwords(),
        auth_require_tls=True,
    ).start()
    try:
        base = f"127.0.0.1:{server.port}?starttls=true&cafile={ca_file}"
        sender_for(f"smtp://omvant:hemligt@{base}").send(
            to="a@example.org", subject="s", text=TEXT, idempotency_key="tls-1"
        )
        assert [m.message_id for m in server.received] == [message_id("tls-1")]
        with pytest.raises(NotifierUnavailable):  # a wrong password sends nothing
            sender_for(f"smtp://omvant:fel@{base}", timeout=1).send(
                to="a@example.org", subject="s", text=TEXT, idempotency_key="tls-2"
            )
        with pytest.raises(NotifierUnavailable):  # the server insists on STARTTLS first
            sender_for(f"smtp://127.0.0.1:{server.port}").send(
                to="a@example.org", subject="s", text=TEXT, idempotency_key="tls-3"
            )
        assert len(server.received) == 1
    finally:
        server.stop()


def test_smtp_urls_are_read_and_bad_ones_refused() -> None:
    config = SmtpConfig.from_url("smtps://u%40x:p@mail.example:2465")
    assert (config.host, config.port, config.implicit_tls, config.username) == (
        "mail.example",
        2465,
        True,
        "u@x",
    )
    assert SmtpConfig.from_url("smtp://relay").port == 25
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.from_url("http://relay")
