"""E-mail through a provider's HTTP API (the API of ``workers.adapters.email_api_server``).

Unlike SMTP, such a provider can be asked about a message: every send carries the
notification's idempotency key (``Idempotency-Key``), the provider keeps one message per key,
and ``lookup`` asks it by key. So an e-mail left in doubt by a crash is settled by asking (found:
recorded sent; not found: sent with the same key), as an SMS is, and never falls to the
``OMVANT_EMAIL_IN_DOUBT`` policy.

Status codes decide what a failure means, as for the SMS gateway: 2xx taken; 429 wait as
``Retry-After`` says (a few times, bounded, then the caller retries later); 5xx, 401/403/404
(our token or URL: an operator's fix, not the resident's) and connection failures try again
later; another 4xx refuses the address for good. A read timeout leaves the send in doubt: the
provider may have taken it, so the caller asks by key before anything is sent again.

``send_batch`` sends one e-mail to many addresses in one request (``POST /v1/messages/batch``,
each under its own idempotency key and Message-ID) and reads one result per recipient, as
``HttpSmsGateway.send_batch`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from workers.adapters.http_sms_gateway import (
    HttpAdapter,
    batch_sent,
    looked_up,
    posted,
    reference_of,
)
from workers.adapters.notifiers import EmailSender, NotifierUnavailable, Recipient, SendAnswer
from workers.adapters.smtp_email import message_id

MESSAGES_PATH = "/v1/messages"
BATCH_PATH = "/v1/messages/batch"
_OUR_FAULT = frozenset({401, 403, 404})
"""Refusals that say our configuration is wrong (token, URL), not the address: retried."""


class HttpEmailApi(HttpAdapter, EmailSender):
    """Sends through an HTTP e-mail provider, keyed by ``Idempotency-Key``, and asks it by key.

    The provider MUST dedupe by the key: a second POST with a key it has taken sends nothing
    and answers with the first message's reference, whichever process sends it and whether it
    restarted in between. That is what makes a send after ``lookup`` found nothing, or a
    redelivered chunk, safe.

    Parameters
    ----------
    base_url:
        The provider, e.g. ``http://127.0.0.1:8045``.
    token:
        Bearer token the provider wants (``OMVANT_EMAIL_API_TOKEN``), or None.
    options:
        ``HttpAdapter``'s (timeout, throttling, sleep, max_batch).
    """

    provider = "email api"
    can_lookup = True
    can_batch = True

    def __init__(self, base_url: str, *, token: str | None = None, **options: Any) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(base_url, headers=headers, **options)

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        body = {
            "to": to,
            "subject": subject,
            "text": text,
            "message_id": message_id(idempotency_key),
        }
        response = self._post_throttled(lambda: self._post(body, idempotency_key))
        if response.status_code in _OUR_FAULT:  # a 4xx: not taken, and not the address's fault
            raise NotifierUnavailable(
                f"email api refused the request ({response.status_code}): "
                "check OMVANT_EMAIL_API_URL and OMVANT_EMAIL_API_TOKEN"
            )
        return reference_of(response, provider="email api", refused="the address")

    def send_batch(
        self, *, subject: str, text: str, recipients: Sequence[Recipient]
    ) -> list[SendAnswer]:
        return [
            answer
            for chunk in self._chunks(recipients)
            for answer in self._batch(subject, text, chunk)
        ]

    def _batch(self, subject: str, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        """One batch request's answers (every recipient's the same when the request failed)."""
        body = {
            "subject": subject,
            "text": text,
            "messages": [
                {
                    "to": r.to,
                    "idempotency_key": r.idempotency_key,
                    "message_id": message_id(r.idempotency_key),
                }
                for r in recipients
            ],
        }
        post = lambda: self.client.post(BATCH_PATH, json=body)  # noqa: E731
        return batch_sent(self, post, recipients, provider="email api", what="the address")

    def _post(self, body: dict[str, str], key: str) -> httpx.Response:
        return posted(
            lambda: self.client.post(MESSAGES_PATH, json=body, headers={"Idempotency-Key": key}),
            provider="email api",
        )

    def lookup(self, idempotency_key: str) -> str | None:
        """The reference of the e-mail the provider took under this key, or None.

        Raises
        ------
        NotifierUnavailable
            The provider could not answer now (unreachable, timeout, 5xx, our token refused).
        """
        params = {"idempotency_key": idempotency_key}
        return looked_up(
            lambda: self.client.get(MESSAGES_PATH, params=params), provider="email api"
        )
