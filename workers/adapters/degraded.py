"""Simulated providers made slow and unreliable on purpose, for load tests.

``OMVANT_SIM_LATENCY_MS`` adds that much latency to every inbox delivery, SMS and e-mail;
``OMVANT_SIM_FAILURE_RATE`` makes that share of calls fail transiently (the pipeline retries).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from workers.adapters.inbox import Inbox, InboxMessage
from workers.adapters.notifiers import (
    EmailSender,
    NotifierUnavailable,
    Recipient,
    SendAnswer,
    SmsGateway,
)


class ProviderUnavailable(RuntimeError):
    """A simulated transient failure of a provider (a timeout, a 5xx)."""


class _Degradation:
    def __init__(self, latency_ms: float, failure_rate: float, seed: int) -> None:
        self.latency = max(0.0, latency_ms) / 1000
        self.failure_rate = min(1.0, max(0.0, failure_rate))
        self.rng = random.Random(seed)

    def suffer(self, what: str) -> None:
        if self.latency:
            time.sleep(self.latency)
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise NotifierUnavailable(f"simulated {what} failure")


class DegradedInbox(Inbox):
    """An inbox that is slow and sometimes unavailable."""

    def __init__(self, inner: Inbox, latency_ms: float, failure_rate: float, seed: int) -> None:
        self.inner = inner
        self.degradation = _Degradation(latency_ms, failure_rate, seed)

    def deliver(self, message: InboxMessage) -> str:
        try:
            self.degradation.suffer("inbox")
        except NotifierUnavailable as exc:
            raise ProviderUnavailable(str(exc)) from None
        return self.inner.deliver(message)


class DegradedSmsGateway(SmsGateway):
    """An SMS gateway that is slow and sometimes unavailable."""

    def __init__(
        self, inner: SmsGateway, latency_ms: float, failure_rate: float, seed: int
    ) -> None:
        self.inner = inner
        self.degradation = _Degradation(latency_ms, failure_rate, seed)

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        self.degradation.suffer("sms")
        return self.inner.send(to=to, text=text, idempotency_key=idempotency_key)

    def send_batch(self, *, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        """One request: slow once, and failing for every recipient at once."""
        try:
            self.degradation.suffer("sms batch")
        except NotifierUnavailable as exc:
            return [exc] * len(recipients)
        return self.inner.send_batch(text=text, recipients=recipients)

    def lookup(self, idempotency_key: str) -> str | None:
        self.degradation.suffer("sms lookup")
        return self.inner.lookup(idempotency_key)


class DegradedEmailSender(EmailSender):
    """An e-mail sender that is slow and sometimes unavailable."""

    def __init__(
        self, inner: EmailSender, latency_ms: float, failure_rate: float, seed: int
    ) -> None:
        self.inner = inner
        self.degradation = _Degradation(latency_ms, failure_rate, seed)
        self.can_lookup = inner.can_lookup
        self.can_batch = inner.can_batch

    def lookup(self, idempotency_key: str) -> str | None:
        self.degradation.suffer("email lookup")
        return self.inner.lookup(idempotency_key)

    def send_batch(
        self, *, subject: str, text: str, recipients: Sequence[Recipient]
    ) -> list[SendAnswer]:
        """One request: slow once, and failing for every recipient at once."""
        try:
            self.degradation.suffer("email batch")
        except NotifierUnavailable as exc:
            return [exc] * len(recipients)
        return self.inner.send_batch(subject=subject, text=text, recipients=recipients)

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        self.degradation.suffer("email")
        return self.inner.send(to=to, subject=subject, text=text, idempotency_key=idempotency_key)
