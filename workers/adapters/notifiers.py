"""Notification channels: SMS and e-mail. A notification never carries health information.

Every send carries an idempotency key (one per case, channel and round). A provider that can be
asked about a key (``lookup``) lets the sending stage settle an "in doubt" send (a crash after
the provider took it, before it was recorded) without sending again; SMTP cannot be asked, see
``workers.notification_sending`` for the e-mail policy.
"""

from __future__ import annotations

import abc
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.adapters.outbox_file import JsonlRecorder
from workers.rate_limit import RateLimiter


class NotificationRefused(RuntimeError):
    """The provider refuses this recipient for good (a permanent failure).

    Attributes
    ----------
    reason:
        A stable reason code (``notification-refused``).
    """

    def __init__(self, detail: str, *, reason: str = "notification-refused") -> None:
        super().__init__(detail)
        self.reason = reason


class NotifierUnavailable(RuntimeError):
    """The provider could not take the notification now (timeout, 5xx, 429): retry later.

    Attributes
    ----------
    retry_after:
        Seconds the provider asked us to wait (429 ``Retry-After``), if it said.
    maybe_accepted:
        True when the provider may have taken it all the same (a timeout after the request was
        sent): the send stays "in doubt" and is settled by ``lookup``, never by sending blindly.
    """

    def __init__(
        self, detail: str, *, retry_after: float | None = None, maybe_accepted: bool = False
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.maybe_accepted = maybe_accepted


@dataclass(frozen=True)
class Recipient:
    """One recipient of a batch send: the number or address, and the notification's key."""

    to: str
    idempotency_key: str


SendAnswer = str | NotificationRefused | NotifierUnavailable
"""A provider's answer for one recipient: its reference (taken now, or under the same key
before), ``NotificationRefused`` (for good) or ``NotifierUnavailable`` (not taken now; with
``maybe_accepted`` when it may have been)."""


def one_at_a_time(
    send: Callable[[Recipient], str], recipients: Sequence[Recipient]
) -> list[SendAnswer]:
    """A batch sent one recipient at a time, stopping at the first ``NotifierUnavailable``
    (the rest are answered unavailable: certainly not taken)."""
    answers: list[SendAnswer] = []
    for index, recipient in enumerate(recipients):
        try:
            answers.append(send(recipient))
        except NotificationRefused as exc:
            answers.append(exc)
        except NotifierUnavailable as exc:
            answers.append(exc)
            not_tried = NotifierUnavailable(f"not sent: {exc}", retry_after=exc.retry_after)
            answers.extend([not_tried] * (len(recipients) - index - 1))
            break
    return answers


class SmsGateway(abc.ABC):
    """Sends text messages; the gateway keeps them by idempotency key."""

    def send_batch(self, *, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        """Send one text to many recipients, each under its own idempotency key: one answer per
        recipient, in order (a key taken before answers the first message's reference).

        Never raises for a recipient's or the gateway's failure: each recipient's answer says
        it. This default sends one at a time (``one_at_a_time``); a gateway with a batch
        endpoint sends them in one request (``HttpSmsGateway``).
        """
        return one_at_a_time(
            lambda r: self.send(to=r.to, text=text, idempotency_key=r.idempotency_key), recipients
        )

    @abc.abstractmethod
    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        """Send one SMS; return the provider's reference.

        Raises
        ------
        NotificationRefused
            The gateway refuses the number for good (4xx).
        NotifierUnavailable
            Timeout, 5xx or 429: try again later.
        """

    @abc.abstractmethod
    def lookup(self, idempotency_key: str) -> str | None:
        """The reference of the SMS the gateway took under this key, or None if it has none.

        Raises
        ------
        NotifierUnavailable
            The gateway could not answer now.
        """


class EmailSender(abc.ABC):
    """Sends e-mail. SMTP cannot be asked about a message it took; a provider with an API that
    can (look a message up by its idempotency key) sets ``can_lookup`` and implements
    ``lookup``, and an in-doubt e-mail is then settled by asking, as an SMS is.

    A sender that sets ``can_lookup`` MUST be idempotent on the key: its provider keeps one
    message per idempotency key, and a send with a key it has taken sends nothing and returns
    the first message's reference, from whichever process and across the provider's restarts
    (``HttpEmailApi`` sends it as ``Idempotency-Key``). Settling an in-doubt e-mail that was
    not found, and a redelivered chunk, rely on that. SMTP has no such key: its Message-ID,
    derived from the key, only makes a duplicate recognisable downstream."""

    can_lookup: bool = False
    can_batch: bool = False
    """True when ``send_batch`` sends many e-mails in one request (only with ``can_lookup``:
    a batch in doubt is settled by asking about each key, so it may be claimed whole)."""

    def send_batch(
        self, *, subject: str, text: str, recipients: Sequence[Recipient]
    ) -> list[SendAnswer]:
        """Send one e-mail to many recipients, each under its own idempotency key: one answer
        per recipient, in order, as ``SmsGateway.send_batch``. This default sends one at a
        time; ``HttpEmailApi`` sends them in one request to the provider's batch endpoint."""
        return one_at_a_time(
            lambda r: self.send(
                to=r.to, subject=subject, text=text, idempotency_key=r.idempotency_key
            ),
            recipients,
        )

    def lookup(self, idempotency_key: str) -> str | None:
        """The reference of the e-mail taken under this key, or None (only if ``can_lookup``).

        Raises
        ------
        NotifierUnavailable
            The provider could not answer now.
        """
        raise NotImplementedError("this e-mail provider cannot be asked about a message")

    @abc.abstractmethod
    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        """Send one e-mail; return the provider's reference (the Message-ID).

        Raises
        ------
        NotificationRefused
            The server refuses the recipient for good (5xx).
        NotifierUnavailable
            Connection failure, timeout or 4xx: try again later.
        """


def reference(channel: str, key: str) -> str:
    """A deterministic provider-side reference for an idempotency key."""
    return f"{channel}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class SimulatedSmsGateway(SmsGateway):
    """Records each SMS (in memory, and in ``sms.jsonl`` when given a folder); one per key.

    ``refuse`` holds numbers it refuses for good; ``sends`` counts every send call per key, so
    tests can tell a resend from a lookup.
    """

    def __init__(
        self, outbox_dir: Path | None = None, refuse: frozenset[str] = frozenset()
    ) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "sms.jsonl" if outbox_dir else None)
        self.refuse = refuse
        self.sends: dict[str, int] = {}
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        if to in self.refuse:
            raise NotificationRefused(f"number {to[:6]}… refused by the gateway")
        ref = reference("sms", idempotency_key)
        with self._lock:
            self.sends[idempotency_key] = self.sends.get(idempotency_key, 0) + 1
            if idempotency_key in self._by_key:
                return ref
            self._by_key[idempotency_key] = ref
        self.recorder.append({"ref": ref, "to": to, "text": text, "key": idempotency_key})
        return ref

    def lookup(self, idempotency_key: str) -> str | None:
        with self._lock:
            return self._by_key.get(idempotency_key)


class SimulatedEmailSender(EmailSender):
    """Records each e-mail (in memory, and in ``email.jsonl`` when given a folder). Like SMTP
    it cannot be asked about a message, nor dedupes, unless built with ``can_lookup=True`` (an
    e-mail API: then one e-mail per key, as the interface requires)."""

    def __init__(self, outbox_dir: Path | None = None, *, can_lookup: bool = False) -> None:
        self.recorder = JsonlRecorder(outbox_dir / "email.jsonl" if outbox_dir else None)
        self.can_lookup = can_lookup
        self.can_batch = can_lookup  # an e-mail API's twin
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        ref = reference("email", idempotency_key)
        with self._lock:
            if self.can_lookup and idempotency_key in self._by_key:
                return ref
            self._by_key[idempotency_key] = ref
        self.recorder.append(
            {"ref": ref, "to": to, "subject": subject, "text": text, "key": idempotency_key}
        )
        return ref

    def lookup(self, idempotency_key: str) -> str | None:
        if not self.can_lookup:
            return super().lookup(idempotency_key)
        with self._lock:
            return self._by_key.get(idempotency_key)


class ChannelRateLimits:
    """One rate limit per channel (``workers.rate_limit``: shared through Redis when set up so);
    a channel without one is not limited."""

    def __init__(self, limiters: Mapping[str, RateLimiter] | None = None) -> None:
        self.limiters = dict(limiters or {})

    def acquire(self, channel: str) -> None:
        """Wait for the channel's turn.

        Raises
        ------
        RateLimitExceeded
            No turn within the limiter's longest wait: the caller retries later.
        """
        limiter = self.limiters.get(channel)
        if limiter is not None:
            limiter.acquire()

    def take(self, channel: str, wanted: int, *, wait: bool = True) -> int:
        """Up to ``wanted`` turns of the channel at once, for a batch sent at once: as many as
        its limit has left in this second, at least one (``wait=False``: 0 when none is left
        now); all of them when the channel is not limited.

        Raises
        ------
        RateLimitExceeded
            No turn within the limiter's longest wait: the caller retries later.
        """
        limiter = self.limiters.get(channel)
        return wanted if limiter is None else limiter.take(wanted, wait=wait)
