"""The SMS gateway over HTTP (the API of ``workers.adapters.sms_gateway_server``).

Status codes decide what a failure means: 2xx taken; 429 wait as ``Retry-After`` says (a few
times, bounded, then the caller retries later); 5xx and connection failures try again later;
another 4xx refuses the number for good. A read timeout leaves the send in doubt: the gateway
may have taken it, so the caller asks by key (``lookup``) before anything is sent again.

``send_batch`` sends one text to many numbers in one request (``POST /messages/batch``, each
recipient under its own idempotency key) and reads one result per recipient: accepted or
duplicate (taken: the reference), refused (for good, with the gateway's reason) or
unavailable (not taken: later). A failure of the whole request means the same for every
recipient as it does for one send; a recipient the answer does not mention is in doubt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from workers.adapters.notifiers import (
    NotificationRefused,
    NotifierUnavailable,
    Recipient,
    SendAnswer,
    SmsGateway,
)

BATCH_PATH = "/messages/batch"
MAX_BATCH = 500
"""The most recipients the adapter puts in one request (more are sent in several)."""


def retry_after_header(response: httpx.Response) -> float | None:
    """The seconds a 429's ``Retry-After`` asks for, or None (absent, or an HTTP date)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the caller's backoff applies instead


def post_waiting_out_throttling(
    post: Callable[[], httpx.Response],
    *,
    provider: str,
    attempts: int,
    max_wait: float,
    sleep: Callable[[float], None],
) -> httpx.Response:
    """The provider's answer that is not a 429: a 429 whose ``Retry-After`` is at most
    ``max_wait`` is waited out, up to ``attempts`` times; a longer or absent wait, or too many
    429s, is ``NotifierUnavailable`` with ``retry_after`` (the caller retries later)."""
    for _ in range(attempts):
        response = post()
        if response.status_code != 429:
            return response
        wait = retry_after_header(response)
        if wait is None or wait > max_wait:
            raise NotifierUnavailable(f"{provider}: 429", retry_after=wait)
        sleep(wait)
    raise NotifierUnavailable(f"{provider}: 429", retry_after=retry_after_header(response))


def reference_of(response: httpx.Response, *, provider: str, refused: str) -> str:
    """The reference in a send's answer that is not a 429: 2xx taken; 5xx
    ``NotifierUnavailable`` (try again later); another 4xx ``NotificationRefused`` (of
    ``refused``, e.g. "the number", for good)."""
    if response.is_success:
        return str(response.json()["id"])
    if response.status_code >= 500:
        raise NotifierUnavailable(f"{provider}: {response.status_code}")
    raise NotificationRefused(f"{provider} refused {refused}: {response.status_code}")


def posted(post: Callable[[], httpx.Response], *, provider: str) -> httpx.Response:
    """``post()``'s answer; a failure to connect is ``NotifierUnavailable`` (nothing was sent),
    any other transport failure (a read timeout) one with ``maybe_accepted`` (ask by key)."""
    try:
        return post()
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise NotifierUnavailable(f"{provider} unreachable: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise NotifierUnavailable(f"{provider}: {type(exc).__name__}", maybe_accepted=True) from exc


def looked_up(get: Callable[[], httpx.Response], *, provider: str) -> str | None:
    """The reference in ``get()``'s answer to a look-up by key, or None on a 404; a transport
    failure or another status is ``NotifierUnavailable`` (the provider could not answer now)."""
    try:
        response = get()
    except httpx.HTTPError as exc:
        raise NotifierUnavailable(f"{provider} lookup: {type(exc).__name__}") from exc
    if response.status_code == 404:
        return None
    if not response.is_success:
        raise NotifierUnavailable(f"{provider} lookup: {response.status_code}")
    return str(response.json()["id"])


class HttpAdapter:
    """What an HTTP notifier adapter keeps and how it waits out 429s (``HttpSmsGateway``,
    ``HttpEmailApi``).

    Parameters
    ----------
    base_url:
        The provider, e.g. ``http://127.0.0.1:8025``.
    headers:
        Headers sent with every request (a bearer token), or None.
    timeout:
        Seconds for each request.
    max_throttle_wait:
        The longest ``Retry-After`` waited for in here; a longer one is handed to the caller.
    throttle_attempts:
        How many 429s in a row are waited out before handing over.
    sleep:
        How to wait (tests pass a recorder).
    max_batch:
        The most recipients in one batch request.
    """

    provider = "http provider"
    """The provider's name in errors (``"sms gateway"``)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        max_throttle_wait: float = 2.0,
        throttle_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, headers=headers or {}
        )
        self.max_throttle_wait = max_throttle_wait
        self.throttle_attempts = throttle_attempts
        self.sleep = sleep
        self.max_batch = max(1, max_batch)

    def _post_throttled(self, post: Callable[[], httpx.Response]) -> httpx.Response:
        """``post()``'s answer that is not a 429 (``post_waiting_out_throttling``)."""
        return post_waiting_out_throttling(
            post,
            provider=self.provider,
            attempts=self.throttle_attempts,
            max_wait=self.max_throttle_wait,
            sleep=self.sleep,
        )

    def _chunks(self, recipients: Sequence[Recipient]) -> list[Sequence[Recipient]]:
        """``recipients`` in batches of at most ``max_batch``."""
        return [
            recipients[start : start + self.max_batch]
            for start in range(0, len(recipients), self.max_batch)
        ]

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class HttpSmsGateway(HttpAdapter, SmsGateway):
    """Sends through an HTTP SMS gateway (e.g. ``http://127.0.0.1:8025``), keyed by
    ``Idempotency-Key``; the parameters are ``HttpAdapter``'s (no headers)."""

    provider = "sms gateway"

    def send(self, *, to: str, text: str, idempotency_key: str) -> str:
        response = self._post_throttled(lambda: self._post(to, text, idempotency_key))
        return reference_of(response, provider=self.provider, refused="the number")

    def _post(self, to: str, text: str, key: str) -> httpx.Response:
        return posted(
            lambda: self.client.post(
                "/messages", json={"to": to, "text": text}, headers={"Idempotency-Key": key}
            ),
            provider="sms gateway",
        )

    def send_batch(self, *, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        return [answer for chunk in self._chunks(recipients) for answer in self._batch(text, chunk)]

    def _batch(self, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        """One batch request's answers (every recipient's the same when the request failed)."""
        body = {
            "text": text,
            "messages": [{"to": r.to, "idempotency_key": r.idempotency_key} for r in recipients],
        }
        post = lambda: self.client.post(BATCH_PATH, json=body)  # noqa: E731
        return batch_sent(self, post, recipients, provider="sms gateway", what="the number")

    def lookup(self, idempotency_key: str) -> str | None:
        path = f"/messages/{quote(idempotency_key, safe='')}"
        return looked_up(lambda: self.client.get(path), provider="sms gateway")


def batch_sent(
    adapter: HttpAdapter,
    post: Callable[[], httpx.Response],
    recipients: Sequence[Recipient],
    *,
    provider: str,
    what: str,
) -> list[SendAnswer]:
    """Each recipient's answer to one batch request ``post()``: a 429 waited out as the
    adapter waits for one send; a failure of the whole request is every recipient's answer."""
    try:
        response = adapter._post_throttled(lambda: posted(post, provider=provider))
        results = batch_results(response, provider=provider)
    except NotifierUnavailable as exc:
        return [exc] * len(recipients)
    return [
        batch_answer(results.get(r.idempotency_key), provider=provider, what=what)
        for r in recipients
    ]


def batch_results(response: httpx.Response, *, provider: str) -> dict[str, dict[str, Any]]:
    """A batch answer's results by idempotency key.

    Raises
    ------
    NotifierUnavailable
        5xx (not taken); another 4xx, which refuses the request rather than a recipient (our
        request's fault: tried again later, and logged); a 2xx that is not a batch answer
        (perhaps taken: in doubt).
    """
    if response.status_code >= 500:
        raise NotifierUnavailable(f"{provider} batch: {response.status_code}")
    if not response.is_success:
        raise NotifierUnavailable(f"{provider} refused the batch request: {response.status_code}")
    try:
        return {str(r["idempotency_key"]): r for r in response.json()["results"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise NotifierUnavailable(
            f"{provider}: unreadable batch answer", maybe_accepted=True
        ) from exc


def batch_answer(result: dict[str, Any] | None, *, provider: str, what: str) -> SendAnswer:
    """One recipient's answer from its batch result: ``accepted`` or ``duplicate`` (taken: the
    reference), ``refused`` (for good, of ``what``), ``unavailable`` (not taken); none or an
    unknown status: perhaps taken, in doubt."""
    if result is None:
        return NotifierUnavailable(f"{provider}: no result for the recipient", maybe_accepted=True)
    status, reason = result.get("status"), result.get("reason", "")
    if status in {"accepted", "duplicate"} and result.get("id"):
        return str(result["id"])
    if status == "refused":
        return NotificationRefused(f"{provider} refused {what}: {reason}")
    if status == "unavailable":
        return NotifierUnavailable(f"{provider}: recipient unavailable: {reason}")
    return NotifierUnavailable(f"{provider}: unknown result {status!r}", maybe_accepted=True)
