"""The 1177 account directory over HTTP: batched JSON look-ups with timeouts and a rate limit.

The protocol (served by ``workers/adapters/directory_server.py`` for tests and load tests)::

    POST {base}/v1/accounts/lookup   {"personnummer": ["YYYYMMDDNNNN", ...]}  (at most 1,000)
    200 {"accounts": [{"personnummer", "status", "channels", "phone", "email"}, ...]}

A number missing from the answer has no account. Failures split in two:

* transient, ``DirectoryUnavailable`` (the stage raises and dramatiq retries): a timeout, a
  connection error, any 5xx, 408 and 429, an answer that is not the JSON above, and no call
  allowed by the rate limit within its longest wait;
* permanent, ``DirectoryRefused``: any other 4xx (wrong URL, credentials or request), which
  the same request again cannot mend. Recipient validation rejects those cases with the
  reason ``directory-refused``.

Numbers travel in the POST body, never in the URL, so no access log or ``httpx`` request log
holds them; error messages carry the status and never a personnummer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from workers.adapters.account_directory import (
    Account,
    AccountDirectory,
    DirectoryRefused,
    DirectoryUnavailable,
    account_from_json,
)
from workers.rate_limit import RateLimiter, RateLimitExceeded

LOOKUP_PATH = "/v1/accounts/lookup"
MAX_BATCH = 1000
"""The most numbers one request may carry (the server answers 413 beyond it)."""
TRANSIENT_4XX = frozenset({408, 429})


class HttpAccountDirectory(AccountDirectory):
    """Looks residents up in batches of ``batch_size`` numbers per POST.

    Parameters
    ----------
    base_url
        Where the directory answers, e.g. ``https://directory.example.org``.
    timeout
        Seconds for connecting, and for each read and write.
    batch_size
        Numbers per request (1 to ``MAX_BATCH``).
    limiter
        Drawn on once per request, if given.
    token
        Sent as ``Authorization: Bearer ...``, if given.
    transport
        An ``httpx`` transport to use instead of the network (tests of the client alone).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        batch_size: int = 500,
        limiter: RateLimiter | None = None,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "omvant"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.batch_size = min(max(1, batch_size), MAX_BATCH)
        self.limiter = limiter
        self.requests = 0
        self._client = httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        numbers = list(dict.fromkeys(personnummer))
        accounts: dict[str, Account] = {}
        for start in range(0, len(numbers), self.batch_size):
            accounts.update(self._lookup_batch(numbers[start : start + self.batch_size]))
        return accounts

    def close(self) -> None:
        self._client.close()

    def _lookup_batch(self, numbers: list[str]) -> dict[str, Account]:
        if self.limiter is not None:
            try:
                self.limiter.acquire()
            except RateLimitExceeded as exc:
                raise DirectoryUnavailable(str(exc)) from exc
        self.requests += 1
        try:
            response = self._client.post(LOOKUP_PATH, json={"personnummer": numbers})
        except httpx.TimeoutException as exc:
            raise DirectoryUnavailable(
                f"account directory timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise DirectoryUnavailable(
                f"account directory unreachable ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        if status >= 500 or status in TRANSIENT_4XX:
            raise DirectoryUnavailable(f"account directory answered HTTP {status}")
        if status >= 400:
            raise DirectoryRefused(
                f"account directory refused the request: HTTP {status} {response.reason_phrase}"
            )
        return _accounts_in(response, set(numbers))


def _accounts_in(response: httpx.Response, asked: set[str]) -> dict[str, Account]:
    """The accounts of an answer, only for numbers that were asked about."""
    try:
        body: Any = response.json()
        found = [account_from_json(entry) for entry in body["accounts"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DirectoryUnavailable(
            f"account directory answered HTTP {response.status_code} with an unreadable body"
        ) from exc
    return {account.personnummer: account for account in found if account.personnummer in asked}
