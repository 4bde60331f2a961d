"""A case's large sealed parts, kept beside its row: written once, read where they are needed.

The ``request`` (the ``SendCase`` as taken in, written by intake with the case row) and the
``content`` (what composition composed, written again by the attachment check with the
cleared attachments) are sealed text of about 0.5 KB each. In ``cases`` they made every state
change copy them into the new row version (PostgreSQL writes the whole row again, to the heap
and the WAL); here each is one row, written in the transaction of the transition that makes it
(``cases.insert_received``, ``cases.apply``), and read only by the sweep's re-drive
(``workers.redrive``) and ``cases show --content`` (``workers.case_access``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from workers.store.arrays import literal
from workers.store.schema import case_bodies, cases
from workers.store.sql import dialect_insert

PARTS = frozenset({"request", "content"})
"""The values of a case row written to ``case_bodies`` instead (by ``cases``)."""

Body = tuple[str, str, str]
"""One part: the case id, the part's name and its sealed text."""

_WRITE_PG = sa.text(
    "INSERT INTO case_bodies (case_id, part, sealed) SELECT * FROM unnest("
    "CAST(:ids AS VARCHAR[]), CAST(:parts AS VARCHAR[]), CAST(:sealed AS TEXT[])) "
    "ON CONFLICT (case_id, part) DO UPDATE SET sealed = excluded.sealed"
)


def parts_of(case_id: str, values: Mapping[str, Any]) -> list[Body]:
    """The parts among a case row's ``values`` (``PARTS``), those set."""
    return [(case_id, k, str(v)) for k, v in values.items() if k in PARTS and v is not None]


def write(conn: sa.Connection, bodies: Iterable[Body]) -> None:
    """Write each part (a part written before is replaced; of two for the same case and part,
    the later wins): one statement on PostgreSQL, an executemany elsewhere."""
    latest = {(case_id, part): sealed for case_id, part, sealed in bodies}
    if not latest:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            _WRITE_PG,
            {
                "ids": literal(c for c, _p in latest),
                "parts": literal(p for _c, p in latest),
                "sealed": literal(latest.values()),
            },
        )
        return
    insert = dialect_insert(conn, case_bodies)
    statement = insert.on_conflict_do_update(
        index_elements=[case_bodies.c.case_id, case_bodies.c.part],
        set_={"sealed": insert.excluded.sealed},
    )
    conn.execute(
        statement, [{"case_id": c, "part": p, "sealed": s} for (c, p), s in latest.items()]
    )


def joined(source: sa.FromClause, *parts: str) -> tuple[sa.FromClause, list[sa.Label[Any]]]:
    """``source`` (``cases`` or a join with it) with the named parts joined on (a case without
    one reads ``None``), and the columns that read them, labelled with the parts' names."""
    columns: list[sa.Label[Any]] = []
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"no case part {part!r}")
        body = case_bodies.alias(f"case_{part}")
        source = source.outerjoin(body, sa.and_(body.c.case_id == cases.c.id, body.c.part == part))
        columns.append(body.c.sealed.label(part))
    return source, columns
