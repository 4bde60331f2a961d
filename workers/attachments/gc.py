"""Garbage collection of blobs: remove those no live case refers to any more.

A blob is removed only when it was stored longer ago than the retention and no case that is
live (neither rejected nor failed, and changed within the retention) refers to it. The age
guard protects a file uploaded for cases that are not sent yet; the references protect a file
shared by many cases, however old, while any of them is live.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from workers.adapters.blobs import BlobInfo, BlobStore
from workers.attachments import ownership, references
from workers.store.cases import utcnow


@dataclass
class GcReport:
    """What a collection found and did."""

    examined: int = 0
    kept_recent: int = 0
    kept_referenced: int = 0
    deleted: int = 0
    bytes_freed: int = 0
    deleted_sha256: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """The counts, for ``--json``."""
        return {
            "examined": self.examined,
            "kept_recent": self.kept_recent,
            "kept_referenced": self.kept_referenced,
            "deleted": self.deleted,
            "bytes_freed": self.bytes_freed,
        }


def collect(
    engine: sa.Engine,
    blobs: BlobStore,
    *,
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    batch: int = 1000,
) -> GcReport:
    """Delete every blob older than ``older_than`` that no live case refers to."""
    cutoff = (now or utcnow()) - older_than
    report = GcReport()
    candidates: list[BlobInfo] = []

    def sweep() -> None:
        with engine.connect() as conn:
            live = references.live_references(conn, (b.sha256 for b in candidates), since=cutoff)
        doomed = [b for b in candidates if b.sha256 not in live]
        report.kept_referenced += len(candidates) - len(doomed)
        if not dry_run:
            for info in doomed:
                blobs.delete(info.sha256)
            with engine.begin() as conn:
                references.forget(conn, (b.sha256 for b in doomed))
                ownership.forget(conn, (b.sha256 for b in doomed))
        report.deleted += len(doomed)
        report.bytes_freed += sum(b.size for b in doomed)
        report.deleted_sha256.extend(b.sha256 for b in doomed)
        candidates.clear()

    for info in blobs.blobs():
        report.examined += 1
        if info.stored_at >= cutoff:
            report.kept_recent += 1
            continue
        candidates.append(info)
        if len(candidates) >= batch:
            sweep()
    if candidates:
        sweep()
    return report
