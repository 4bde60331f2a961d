"""Re-drive cases stalled at ``cleared``: their ``AttachmentsCleared`` built again from the record.

A case at ``cleared`` whose message to inbox delivery is gone (a broker that lost it, a bug)
would wait forever. Everything that message carried is recorded by then: the case row (clinic,
priority, batch, identity number, template and its pinned version, the resident's channels
from recipient validation), the sealed content composition wrote (subject, body, signature,
date) and, for a case with attachments, the sealed content the attachment check wrote (the
same, with the cleared attachments). The template gives ``answerable`` and narrows the
channels as composition did (``composition.channels_for``).

Sending the record again is idempotent: inbox delivery records the same delivery key, the inbox
takes the message once per key, and a case delivered meanwhile is not delivered again. A case
whose record is not complete (an attachment case cleared before its attachments were kept
sealed, a template gone) is not re-driven: it is counted and logged for on-call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from contracts.attachments_cleared import AttachmentsClearedV1
from workers.answer_seal import AnswerSeal, AnswerUnreadable, answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.composition import channels_for
from workers.log import get_logger
from workers.stage import emit
from workers.store import case_bodies
from workers.store.schema import case_attachments, cases
from workers.templates.model import Template

log = get_logger(__name__)


@dataclass(frozen=True)
class Rebuilt:
    """The records built again, by correlation id, and the cases that could not be."""

    records: dict[str, list[AttachmentsClearedV1]]
    incomplete: list[str]


def rebuild_cleared(ctx: Context, case_ids: Sequence[str]) -> Rebuilt:
    """The ``AttachmentsCleared`` of each case among ``case_ids`` still at ``cleared``."""
    seal = answer_seal(ctx.settings)
    rows, with_files = rows_at(ctx, CaseState.CLEARED, case_ids)
    records: dict[str, list[AttachmentsClearedV1]] = {}
    incomplete: list[str] = []
    for row in rows:
        record = _record_of(ctx, row, seal, has_files=row.id in with_files)
        if record is None:
            incomplete.append(row.id)
        else:
            records.setdefault(row.correlation_id or "sweep", []).append(record)
    return Rebuilt(records, sorted(incomplete))


Row = sa.Row[tuple[object, ...]]


def rows_at(ctx: Context, state: CaseState, case_ids: Sequence[str]) -> tuple[list[Row], set[str]]:
    """The case rows among ``case_ids`` still at ``state`` (with their sealed ``request`` and
    ``content``), and which of them have attachments."""
    source, parts = case_bodies.joined(cases, "request", "content")
    with ctx.engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(cases, *parts)
                .select_from(source)
                .where(cases.c.id.in_(list(case_ids)), cases.c.state == state.value)
            ).all()
        )
        with_files = {
            r.case_id
            for r in conn.execute(
                sa.select(case_attachments.c.case_id)
                .distinct()
                .where(case_attachments.c.case_id.in_([r.id for r in rows]))
            )
        }
    return rows, with_files


def _record_of(
    ctx: Context, row: Row, seal: AnswerSeal, *, has_files: bool
) -> AttachmentsClearedV1 | None:
    template = ctx.templates.get(str(row.template_id), row.template_version)
    if template is None or not row.content:
        return None
    try:
        content = json.loads(seal.open(str(row.content)))
        attachments = content.get("attachments")
        if has_files and not attachments:
            return None  # cleared before its attachments were kept: not complete
        return AttachmentsClearedV1(
            **composed_fields(row, template, content), attachments=attachments or []
        )
    except (AnswerUnreadable, ValueError, KeyError, ValidationError):
        return None


def composed_fields(row: Row, template: Template, content: dict[str, Any]) -> dict[str, Any]:
    """A composed case's fields (every one but its attachments) from its case row and its
    sealed content: what composition's message and the attachment check's both carry."""
    validated = [c for c in str(row.channels or "").split(",") if c]
    return {
        "case_id": row.id,
        "clinic_hsa_id": row.clinic_hsa_id,
        "priority": row.priority,
        "batch_id": row.batch_id,
        "personnummer": row.personnummer,
        "template_id": row.template_id,
        "template_version": template.version,
        "answerable": template.answerable,
        "subject": content["subject"],
        "body": content["body"],
        "signature": content["signature"],
        "sent_on": content["sent_on"],
        "channels": list(channels_for(validated, template)),  # type: ignore[arg-type]
    }


def redrive_cleared(ctx: Context, case_ids: Sequence[str]) -> Counter[str]:
    """Send the stalled ``cleared`` cases to inbox delivery again, on the process's broker;
    count what was done: ``redriven-cleared``, ``not-rebuilt-cleared`` and (the broker away,
    or an in-process broker no worker consumes) ``not-sent-cleared``."""
    counts: Counter[str] = Counter()
    if not case_ids:
        return counts
    rebuilt = rebuild_cleared(ctx, case_ids)
    for correlation_id, records in rebuilt.records.items():
        try:
            emit(ctx, records, correlation_id=correlation_id)
        except Exception as exc:  # noqa: BLE001 - the broker away: the next run tries again
            counts["not-sent-cleared"] += len(records)
            log.warning("stalled cases not sent: the broker", error=type(exc).__name__)
            continue
        counts["redriven-cleared"] += len(records)
    if rebuilt.incomplete:
        counts["not-rebuilt-cleared"] = len(rebuilt.incomplete)
        log.warning(
            "cases stalled at cleared whose record is not complete; not re-driven",
            cases=len(rebuilt.incomplete),
            example=rebuilt.incomplete[0],
        )
    if counts["redriven-cleared"]:
        log.warning("cases stalled at cleared sent to inbox delivery again", **counts)
    return counts
