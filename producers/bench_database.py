"""PostgreSQL's own counters of the bench's database: commits and rows written per case.

``pg_stat_database`` counts per database (only the bench's own); ``pg_stat_wal`` counts WAL for
the whole cluster (other clients of a shared server included). A backend reports its counts
when it goes idle or ends, so the bench reads the end after its worker processes have stopped.
"""

from __future__ import annotations

import sqlalchemy as sa

COUNTERS = sa.text(
    "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted,"
    " (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes"
    " FROM pg_stat_database WHERE datname = current_database()"
)
NAMES = {
    "xact_commit": "commits",
    "tup_inserted": "rows_inserted",
    "tup_updated": "rows_updated",
    "tup_deleted": "rows_deleted",
    "wal_bytes": "wal_bytes_cluster",
}


def write_counters(engine: sa.Engine) -> dict[str, float] | None:
    """The counters now; None when the database is not PostgreSQL (14 or later)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(COUNTERS).mappings().one_or_none()
    return None if row is None else {NAMES[k]: float(v or 0) for k, v in row.items()}


def per_case(
    before: dict[str, float] | None, after: dict[str, float] | None, cases: int
) -> dict[str, float] | None:
    """What the window wrote per case; None if either reading is missing."""
    if before is None or after is None or not cases:
        return None
    return {name: round((after[name] - before[name]) / cases, 2) for name in before}
