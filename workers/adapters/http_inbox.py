"""The 1177 inbox over HTTP (the API of ``workers.adapters.inbox_server``), keyed by
``Idempotency-Key``.

2xx taken (201 new, 200 delivered before under that key); 5xx, 429 and connection failures
try again later; 409 (the key names another case) and other 4xx refuse the message for good. A
read timeout may leave the message taken: harmless, the retry delivers under the same key.
"""

from __future__ import annotations

import httpx

from workers.adapters.inbox import Inbox, InboxMessage, InboxRefused, InboxUnavailable


class HttpInbox(Inbox):
    """Delivers over HTTP; selected by ``OMVANT_INBOX_URL``.

    Parameters
    ----------
    base_url:
        The inbox API, e.g. ``http://127.0.0.1:8040``.
    timeout:
        Seconds for each request.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def deliver(self, message: InboxMessage) -> str:
        body = {
            "case_id": message.case_id,
            "personnummer": message.personnummer,
            "subject": message.subject,
            "body": message.body,
            "signature": message.signature,
            "sent_on": message.sent_on.isoformat(),
            "answerable": message.answerable,
            "attachments": list(message.attachment_sha256),
        }
        try:
            response = self.client.post(
                "/v1/messages", json=body, headers={"Idempotency-Key": message.key}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise InboxUnavailable(f"inbox unreachable: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise InboxUnavailable(f"inbox: {type(exc).__name__}", maybe_accepted=True) from exc
        if response.is_success:
            return str(response.json()["id"])
        if response.status_code >= 500 or response.status_code == 429:
            raise InboxUnavailable(f"inbox: {response.status_code}")
        raise InboxRefused(f"inbox refused the message: {response.status_code}")

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
