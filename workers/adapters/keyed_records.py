"""What a simulator that takes each message once per idempotency key answers (the simulated
inbox's records and the e-mail API simulator's): a real provider dedupes so, whichever client
process sends and whether or not the provider restarted in between."""

from __future__ import annotations

from dataclasses import dataclass


class KeyReused(ValueError):
    """A key came back naming another recipient or case: the client has a bug; nothing is
    stored (a real provider answers 409 or 422 to this)."""


@dataclass(frozen=True)
class Taken:
    """The answer to one send: the reference of the message under the key, and whether the key
    was new (``False``: taken before, nothing sent again)."""

    id: str
    new: bool


@dataclass(frozen=True)
class TakenStats:
    """Counts so far: every attempt, distinct messages (one per key), duplicates refused."""

    attempts: int
    distinct: int
    duplicates_refused: int
