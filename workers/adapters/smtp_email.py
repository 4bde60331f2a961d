"""E-mail notifications over SMTP (``smtplib``): STARTTLS and authentication as configured.

``OMVANT_SMTP_URL`` says where and how: ``smtp://user:password@host:587?starttls=true``,
``smtps://host:465`` (TLS from the first byte), ``smtp://host:25`` (plain, for a local relay),
and ``cafile=PATH`` to trust a private CA. The Message-ID is derived from the idempotency key,
so a message sent twice would at least be recognisable as the same one downstream.

SMTP has no way to ask a server "did you take message X": an e-mail left in doubt by a crash is
settled by policy in ``workers.notification_sending`` (by default sent once more, after a delay,
with the same Message-ID, so the duplicate is recognisable).
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from workers.adapters.notifiers import EmailSender, NotificationRefused, NotifierUnavailable

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Read ``smtp://`` or ``smtps://`` URLs (see the module docstring).

        Raises
        ------
        ValueError
            Another scheme, or no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("OMVANT_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls=query.get("starttls", "").lower() in _TRUE,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=query.get("cafile"),
        )


def message_id(idempotency_key: str, domain: str = "omvant.invalid") -> str:
    """The deterministic Message-ID of a notification."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpEmailSender(EmailSender):
    """Sends notifications over one SMTP session per thread, kept open between messages.

    A kept session is checked with ``NOOP`` before each message and opened again if the server
    closed it, so a stale session never turns into a lost or doubled message.
    """

    def __init__(self, config: SmtpConfig, *, sender: str, timeout: float = 10.0) -> None:
        self.config = config
        self.sender = sender
        self.timeout = timeout
        self._local = threading.local()

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.cafile)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        smtp: smtplib.SMTP
        if c.implicit_tls:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout, context=self._tls())
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=self.timeout)
            if c.starttls:
                smtp.starttls(context=self._tls())
        if c.username:
            smtp.login(c.username, c.password or "")
        return smtp

    def _session(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (OSError, smtplib.SMTPException):
                pass
            self._drop(smtp)
        smtp = self._connect()
        self._local.smtp = smtp
        return smtp

    def _drop(self, smtp: smtplib.SMTP) -> None:
        self._local.smtp = None
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def close(self) -> None:
        """Close this thread's session."""
        smtp = getattr(self._local, "smtp", None)
        if smtp is not None:
            self._drop(smtp)

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = message_id(idempotency_key)
        message.set_content(text)
        try:
            smtp = self._session()
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifierUnavailable(f"smtp authentication failed: {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifierUnavailable(f"smtp connect: {type(exc).__name__}") from exc
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise NotificationRefused(f"smtp refused the recipient: {codes}") from exc
            raise NotifierUnavailable(f"smtp recipient deferred: {codes}") from exc
        except smtplib.SMTPSenderRefused as exc:
            raise NotifierUnavailable(
                f"smtp refused our sender ({exc.smtp_code}): check OMVANT_SMTP_URL and smtp_from"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise NotificationRefused(f"smtp refused the message: {exc.smtp_code}") from exc
            raise NotifierUnavailable(f"smtp: {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(smtp)
            raise NotifierUnavailable(
                f"smtp: {type(exc).__name__} during the session", maybe_accepted=True
            ) from exc
        return str(message["Message-ID"])
