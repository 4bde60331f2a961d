"""A short-lived cache of the account directory's answers, so a bulk dispatch (and the
notification stage after it) does not ask the directory about the same resident twice.

``CachedAccountDirectory`` wraps any ``AccountDirectory``: it answers what the cache holds and
asks the directory, in one batched call, only about the rest. The cache lives in Redis when
configured (shared by every worker process) or in this process's memory. Redis keys are a
keyed hash of the number, never the number itself; entries expire after ``ttl`` seconds, so a
resident who turns notifications on is seen within that time. A cache that fails is skipped:
the directory is asked instead.
"""

from __future__ import annotations

import abc
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import redis

from workers.adapters.account_directory import (
    Account,
    AccountDirectory,
    AccountStatus,
    account_from_json,
    account_to_json,
)
from workers.log import get_logger

log = get_logger(__name__)


class AccountCache(abc.ABC):
    """Accounts by normalised personnummer, each kept for a limited time."""

    @abc.abstractmethod
    def get_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        """The cached accounts among ``personnummer`` (missing or expired ones left out)."""

    @abc.abstractmethod
    def put_many(self, accounts: Sequence[Account]) -> None:
        """Keep ``accounts`` for the cache's time to live."""


class InMemoryAccountCache(AccountCache):
    """A bounded, thread-safe TTL cache in this process (oldest entries go first)."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Account]] = OrderedDict()

    def get_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        now = self._clock()
        found: dict[str, Account] = {}
        with self._lock:
            for number in personnummer:
                entry = self._entries.get(number)
                if entry is None:
                    continue
                if entry[0] <= now:
                    del self._entries[number]
                    continue
                found[number] = entry[1]
        return found

    def put_many(self, accounts: Sequence[Account]) -> None:
        expires = self._clock() + self.ttl
        with self._lock:
            for account in accounts:
                self._entries[account.personnummer] = (expires, account)
                self._entries.move_to_end(account.personnummer)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class RedisAccountCache(AccountCache):
    """Entries in Redis under ``prefix`` + a keyed hash of the number, with a TTL."""

    def __init__(
        self, client: redis.Redis, *, ttl: float, prefix: str = "omvant:directory:"
    ) -> None:
        self.client = client
        self.ttl_ms = max(1, int(ttl * 1000))
        self.prefix = prefix

    def key(self, personnummer: str) -> str:
        """The Redis key of one number: a hash, so the key names nobody in clear."""
        digest = hashlib.blake2b(
            personnummer.encode(), key=b"omvant-directory-cache", digest_size=16
        ).hexdigest()
        return f"{self.prefix}{digest}"

    def get_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        numbers = list(dict.fromkeys(personnummer))
        if not numbers:
            return {}
        values: list[Any] = self.client.mget([self.key(n) for n in numbers])
        found: dict[str, Account] = {}
        for number, value in zip(numbers, values, strict=True):
            if value is None:
                continue
            try:
                found[number] = account_from_json({**json.loads(value), "personnummer": number})
            except ValueError:
                continue
        return found

    def put_many(self, accounts: Sequence[Account]) -> None:
        if not accounts:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for account in accounts:
                value = account_to_json(account)
                del value["personnummer"]
                pipe.set(self.key(account.personnummer), json.dumps(value), px=self.ttl_ms)
            pipe.execute()


class CachedAccountDirectory(AccountDirectory):
    """Answers from ``cache`` where it can and asks ``directory`` about the rest, in one call.

    ``hits`` and ``misses`` count the numbers answered each way.
    """

    def __init__(self, directory: AccountDirectory, cache: AccountCache) -> None:
        self.directory = directory
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        numbers = list(dict.fromkeys(personnummer))
        try:
            cached = self.cache.get_many(numbers)
        except redis.RedisError as exc:
            log.warning("directory cache unreadable; asking the directory", error=str(exc))
            cached = {}
        missing = [n for n in numbers if n not in cached]
        self.hits += len(numbers) - len(missing)
        self.misses += len(missing)
        if not missing:
            return cached
        fresh = self.directory.lookup_many(missing)
        answered = [fresh.get(n) or Account(n, AccountStatus.NO_ACCOUNT) for n in missing]
        try:
            self.cache.put_many(answered)
        except redis.RedisError as exc:
            log.warning("directory cache unwritable", error=str(exc))
        return {**cached, **{a.personnummer: a for a in answered}}

    def close(self) -> None:
        self.directory.close()
