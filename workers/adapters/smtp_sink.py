"""An SMTP server that keeps what it receives (aiosmtpd on loopback, any free port).

The demo and the tests send real SMTP to it; ``received`` is what arrived, in order.
``refuse`` holds addresses answered ``550`` (a permanent refusal); STARTTLS and AUTH are
aiosmtpd's, turned on by passing ``tls_context``, ``require_starttls``, ``authenticator``.
Given a ``record`` file, it appends one JSON line per message taken (recipients, Message-ID,
time), written before the ``250``: what ``omvant sim smtp-sink --record FILE`` leaves for a test
that runs the sink as a process of its own.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server took it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    subject: str
    text: str


@dataclass
class _Keeper:
    refuse: set[str] = field(default_factory=set)
    received: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    record: IO[str] | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = parsed.get_body(("plain",))
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            message_id=str(parsed["Message-ID"]),
            subject=str(parsed["Subject"]),
            text=body.get_content().strip() if body is not None else "",
        )
        with self.lock:
            self.received.append(mail)
            if self.record is not None:
                line = {"to": list(mail.rcpt_tos), "message_id": mail.message_id, "at": time.time()}
                self.record.write(json.dumps(line) + "\n")
                self.record.flush()
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """aiosmtpd's controller, able to bind port 0 (it pings its own port on start)."""

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpSink:
    """A running SMTP server (on 127.0.0.1 unless ``host`` says; ``0.0.0.0`` in a container):
    ``start()``, read ``url`` / ``received``, ``stop()``."""

    def __init__(
        self,
        *,
        port: int = 0,
        record: Path | None = None,
        host: str = "127.0.0.1",
        **controller_options: Any,
    ) -> None:
        self._keeper = _Keeper(record=record.open("a", encoding="utf-8") if record else None)
        self._controller = _LoopbackController(
            self._keeper, hostname=host, port=port, **controller_options
        )

    def start(self) -> SmtpSink:
        """Start serving in a background thread."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()
        if self._keeper.record is not None:
            self._keeper.record.close()

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:PORT`` for ``OMVANT_SMTP_URL``."""
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def refuse(self) -> set[str]:
        """Addresses answered 550."""
        return self._keeper.refuse

    @property
    def received(self) -> list[ReceivedMail]:
        """Every message taken, in order."""
        with self._keeper.lock:
            return list(self._keeper.received)
