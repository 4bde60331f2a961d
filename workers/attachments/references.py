"""Which cases refer to which blobs, and the content verdicts kept by sha256.

A blob may be shared by many cases (one PDF for 100,000 residents): it is kept while any live
case refers to it. References are recorded at intake, so a case refers to its blobs from the
moment Omvänt knows it, and the cleaned blobs are added when the check clears a case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import cast

import sqlalchemy as sa

from contracts.common import AttachmentType
from workers.attachments.verdict import Verdict
from workers.case_states import FINAL
from workers.reasons import Reason
from workers.store.cases import utcnow
from workers.store.schema import attachment_verdicts, case_attachments, cases
from workers.store.sql import insert_ignoring_conflicts

_BATCH = 500


def _batches(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def record(conn: sa.Connection, pairs: Iterable[tuple[str, str]]) -> None:
    """Record that each ``(case_id, sha256)`` case refers to that blob."""
    rows = [{"case_id": c, "sha256": s} for c, s in dict.fromkeys(pairs)]
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, case_attachments), rows)


def live_references(
    conn: sa.Connection, sha256s: Iterable[str], *, since: dt.datetime | None = None
) -> set[str]:
    """Those of ``sha256s`` that a live case refers to: one not rejected or failed (and, with
    ``since``, changed since then: older cases have expired)."""
    found: set[str] = set()
    final = [state.value for state in FINAL]
    for batch in _batches(sorted(set(sha256s))):
        query = (
            sa.select(case_attachments.c.sha256)
            .distinct()
            .join(cases, cases.c.id == case_attachments.c.case_id)
            .where(case_attachments.c.sha256.in_(batch), cases.c.state.not_in(final))
        )
        if since is not None:
            query = query.where(cases.c.updated_at >= since)
        found.update(str(row[0]) for row in conn.execute(query))
    return found


def forget(conn: sa.Connection, sha256s: Iterable[str]) -> None:
    """Drop the references to deleted blobs, and the passing verdicts on them (a passing
    verdict must not outlive the blob it vouches for; a refusal may)."""
    for batch in _batches(sorted(set(sha256s))):
        conn.execute(case_attachments.delete().where(case_attachments.c.sha256.in_(batch)))
        conn.execute(
            attachment_verdicts.delete().where(
                attachment_verdicts.c.sha256.in_(batch)
                | attachment_verdicts.c.cleaned_sha256.in_(batch),
                attachment_verdicts.c.ok.is_(True),
            )
        )


def load_verdicts(conn: sa.Connection, sha256s: Iterable[str], policy: str) -> dict[str, Verdict]:
    """The kept verdicts on those of ``sha256s`` checked under ``policy``."""
    found: dict[str, Verdict] = {}
    for batch in _batches(sorted(set(sha256s))):
        query = sa.select(attachment_verdicts).where(
            attachment_verdicts.c.sha256.in_(batch), attachment_verdicts.c.policy == policy
        )
        for row in conn.execute(query):
            found[row.sha256] = Verdict(
                ok=bool(row.ok),
                type=cast(AttachmentType | None, row.kind),
                sha256=row.sha256,
                size=int(row.size),
                reason=Reason(row.reason) if row.reason else None,
                detail=row.detail,
                pages=row.pages,
                cleaned_sha256=row.cleaned_sha256,
                cleaned_size=row.cleaned_size,
            )
    return found


def save_verdicts(conn: sa.Connection, verdicts: Iterable[Verdict], policy: str) -> None:
    """Keep content verdicts; a verdict already kept stays as it is."""
    now = utcnow()
    rows: Mapping[str, dict[str, object]] = {
        v.sha256: {
            "sha256": v.sha256,
            "policy": policy,
            "ok": v.ok,
            "kind": v.type,
            "reason": v.reason.value if v.reason else None,
            "detail": (v.detail or None) and v.detail[:500],
            "size": v.size,
            "pages": v.pages,
            "cleaned_sha256": v.cleaned_sha256,
            "cleaned_size": v.cleaned_size,
            "checked_at": now,
        }
        for v in verdicts
    }
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, attachment_verdicts), list(rows.values()))
