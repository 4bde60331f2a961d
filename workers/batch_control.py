"""What the workers know of dispatches: each batch's status and bulk lane, cached briefly.

The actor shell asks for every chunk (to hold a paused batch's cases and reject a cancelled
one's) and ``emit`` asks for the lane; one query per batch a second keeps that free per case.
A process keeps its cache in its ``Context`` (``ctx.batches``).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from workers.queues import BULK_LANES
from workers.store import batches
from workers.store.batches import BatchStatus
from workers.store.engine import reads

TTL_SECONDS = 1.0
"""How stale a worker's view of a batch may be: a pause or cancel acts within this."""


@dataclass(frozen=True)
class BatchView:
    """A batch as a worker sees it: ``known`` is false for a batch id with no batches row."""

    status: BatchStatus
    lane: int
    known: bool


def hashed_lane(batch_id: str) -> int:
    """The bulk lane of a batch id that has no row (e.g. the demo's): stable in every process."""
    return zlib.crc32(batch_id.encode()) % BULK_LANES + 1


class BatchCache:
    """Batch views of one database, refreshed at most once per ``ttl`` seconds per batch."""

    def __init__(self, engine: sa.Engine, ttl: float = TTL_SECONDS) -> None:
        self.engine = engine
        self.ttl = ttl
        self._views: dict[str, tuple[float, BatchView]] = {}
        self._lock = threading.Lock()

    def views(self, batch_ids: Iterable[str | None]) -> dict[str, BatchView]:
        """The view of each batch id given (ids that are None are skipped)."""
        ids = {b for b in batch_ids if b}
        if not ids:
            return {}
        now = time.monotonic()
        with self._lock:
            found = {b: v for b, (at, v) in self._views.items() if b in ids and now - at < self.ttl}
        missing = ids - found.keys()
        if missing:
            with reads(self.engine).connect() as conn:
                rows = batches.statuses(conn, missing)
            fresh = {
                b: BatchView(rows[b][0], rows[b][1], True)
                if b in rows
                else BatchView(BatchStatus.RUNNING, hashed_lane(b), False)
                for b in missing
            }
            with self._lock:
                for b, view in fresh.items():
                    self._views[b] = (now, view)
            found.update(fresh)
        return found

    def forget(self) -> None:
        """Drop every cached view (the next question asks the database)."""
        with self._lock:
            self._views.clear()
