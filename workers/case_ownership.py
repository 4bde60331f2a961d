"""A case belongs to its clinic for good: how the intake stage creates and claims case rows.

Every producer path (the intake bridge, ``omvant push``, ``omvant dispatch``, the Python client)
ends in the intake stage, so this is the one place a case row is created. The rules:

- Omvänt's case id is derived from the clinic: from the clinic and the idempotency key, or
  from the clinic and the producer's own ``case_id`` (its reference) when it gives one
  (``SendCaseV2.resolved_case_id``). No id a clinic can send names another clinic's case.
- A case that exists already is never changed by a request of another clinic or key: no row
  is updated and no history added (``cases.insert_received``).
- A request whose ``case_id`` names a case of the clinic made for another idempotency key is
  not lost: it becomes a case of its own under the id of its key, rejected with
  ``case-id-conflict``.
- The same clinic and key again is a duplicate of the case it made, left alone.
- A request naming another clinic's dispatch (``batch_id``) or blob is a case of its own
  clinic, rejected with ``batch-not-owned`` or ``attachment-not-owned``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from workers.answer_seal import AnswerSeal
from workers.attachments import ownership
from workers.reasons import Reason
from workers.stage import Reject
from workers.store import batches, case_notes, cases

RowsFor = Callable[[Sequence[SendCaseV2]], list[dict[str, Any]]]


@dataclass
class Claimed:
    """What the intake stage does with a chunk's requests."""

    ours: list[SendCaseV2] = field(default_factory=list)
    """Cases this message created (now, or in an earlier delivery of it): decide them."""
    rejects: list[Reject] = field(default_factory=list)
    """Cases this message created that end at once (conflict, another clinic's batch/blob)."""
    duplicates: list[SendCaseV2] = field(default_factory=list)
    """The same clinic and key as an existing case: left alone."""
    unplaceable: list[SendCaseV2] = field(default_factory=list)
    """Requests no case can be made for (an id collision with no key of their own to fall
    back on): the caller records them in ``rejected_messages``."""


def _is(owner: cases.Owner | None, item: SendCaseV2) -> bool:
    return (
        owner is not None
        and owner.clinic_hsa_id == item.clinic_hsa_id
        and owner.idempotency_key == item.idempotency_key
    )


def _sort(
    items: Sequence[tuple[str, SendCaseV2]],
    by_id: Mapping[str, cases.Owner],
    by_key: Mapping[tuple[str, str], cases.Owner],
    origin: str,
) -> tuple[list[tuple[str, SendCaseV2]], list[SendCaseV2], list[SendCaseV2]]:
    """Split ``(case id, request)`` pairs into ours, duplicates and conflicts."""
    ours: list[tuple[str, SendCaseV2]] = []
    duplicates: list[SendCaseV2] = []
    conflicts: list[SendCaseV2] = []
    seen: set[str] = set()
    for case_id, item in items:
        owner = by_id.get(case_id)
        if _is(owner, item):
            assert owner is not None
            if owner.intake_message_id == origin and case_id not in seen:
                ours.append((case_id, item))
                seen.add(case_id)
            else:
                duplicates.append(item)
        elif owner is not None:
            conflicts.append(item)
        elif (item.clinic_hsa_id, item.idempotency_key) in by_key:
            duplicates.append(item)  # the key's case exists under another id: same key, same case
        else:
            conflicts.append(item)
    return ours, duplicates, conflicts


def claim(
    conn: sa.Connection,
    items: Sequence[SendCaseV2],
    *,
    rows_for: RowsFor,
    origin: str,
    stored: Callable[[str], bool],
) -> Claimed:
    """Create the chunk's cases that are new and sort every request (see the module doc).

    ``rows_for`` gives the ``cases`` rows for requests (``received_rows``);
    ``stored`` tells whether a blob is in the blob store (``ownership.usable``).
    """
    claimed = Claimed()
    if not items:
        return claimed
    foreign_batch = _foreign_batches(conn, items)
    rows = rows_for(items)
    for row, item in zip(rows, items, strict=True):
        if item in foreign_batch:
            row["batch_id"] = None
    cases.insert_received(conn, rows)
    pairs = [(item.resolved_case_id(), item) for item in items]
    by_id, by_key = cases.owners(
        conn, (c for c, _i in pairs), ((i.clinic_hsa_id, i.idempotency_key) for i in items)
    )
    ours, claimed.duplicates, conflicts = _sort(pairs, by_id, by_key, origin)
    conflict_ids: set[str] = set()
    fallback = [item for item in conflicts if item.case_id]
    claimed.unplaceable = [item for item in conflicts if not item.case_id]
    if fallback:
        rows = rows_for(fallback)
        for row, item in zip(rows, fallback, strict=True):
            row["id"] = item.key_case_id()
            if item in foreign_batch:
                row["batch_id"] = None
        cases.insert_received(conn, rows)
        second = [(item.key_case_id(), item) for item in fallback]
        by_id, by_key = cases.owners(
            conn, (c for c, _i in second), ((i.clinic_hsa_id, i.idempotency_key) for i in fallback)
        )
        moved, again, lost = _sort(second, by_id, by_key, origin)
        claimed.duplicates.extend(again)
        claimed.unplaceable.extend(lost)
        for case_id, item in moved:
            conflict_ids.add(case_id)
            claimed.rejects.append(
                Reject(
                    case_id,
                    Reason.CASE_ID_CONFLICT,
                    f"case_id {item.case_id!r} is already the clinic's case for another"
                    " idempotency key",
                )
            )
    allowed = ownership.usable(
        conn,
        ((item.clinic_hsa_id, ref.sha256) for _c, item in ours for ref in item.attachments),
        stored,
    )
    for case_id, item in ours:
        if item in foreign_batch:
            claimed.rejects.append(
                Reject(
                    case_id,
                    Reason.BATCH_NOT_OWNED,
                    f"batch {item.batch_id} is another clinic's dispatch",
                )
            )
            continue
        not_owned = ownership.first_not_owned(item.clinic_hsa_id, item.attachments, allowed)
        if not_owned is not None:
            claimed.rejects.append(
                Reject(case_id, Reason.ATTACHMENT_NOT_OWNED, not_owned.detail(item.clinic_hsa_id))
            )
            continue
        claimed.ours.append(item)
    return claimed


def received_rows(
    items: Sequence[SendCaseV2],
    correlation_id: str,
    message_id: str,
    seal: AnswerSeal | None = None,
) -> list[dict[str, object]]:
    """The rows that record the cases as received, and which intake message created them;
    with ``seal``, each row keeps its request sealed (``request``: the sweep rebuilds a lost
    stage message from it, ``workers.redrive``)."""
    return [
        {
            "id": item.resolved_case_id(),
            "clinic_hsa_id": item.clinic_hsa_id,
            "sender_hsa_id": item.sender_hsa_id,
            "template_id": item.template_id,
            "personnummer": item.personnummer,
            "idempotency_key": item.idempotency_key,
            "batch_id": item.batch_id,
            "priority": item.priority,
            "correlation_id": correlation_id,
            "intake_message_id": message_id,
            "producer_reference": item.case_id,  # the producer's own id, kept to trace it
            **({"request": seal.seal(item.model_dump_json())} if seal is not None else {}),
        }
        for item in items
    ]


def record_received(
    conn: sa.Connection, items: Sequence[Any], correlation_id: str, message_id: str
) -> None:
    """Record as received the cases that records of a request name (``SendCase``: its case is
    made when it is taken in), so that they can be ended before their stage ran; records of
    later stages name cases that exist already."""
    requests = [item for item in items if isinstance(item, SendCaseV2)]
    if requests:
        cases.insert_received(conn, received_rows(requests, correlation_id, message_id))


def _foreign_batches(conn: sa.Connection, items: Sequence[SendCaseV2]) -> list[SendCaseV2]:
    """The requests naming a dispatch (batch) that belongs to another clinic."""
    owners = batches.clinics_of(conn, (i.batch_id for i in items if i.batch_id))
    return [
        item
        for item in items
        if item.batch_id and owners.get(item.batch_id, item.clinic_hsa_id) != item.clinic_hsa_id
    ]


@dataclass(frozen=True)
class ChunkCases:
    """What the actor shell reads of a stage message's cases before the stage runs."""

    foreign: list[Any]
    """The records naming another clinic's case (``case-not-owned``)."""
    asked: frozenset[str]
    """The case ids looked up (the records that name a case and a clinic)."""
    arrivals: dict[str, case_notes.Arrival]
    """When each known case of ``asked`` arrived and its pinned template version
    (composition's pins: read here, the stage makes no query of its own for them)."""


def read_chunk(conn: sa.Connection, items: Sequence[Any]) -> ChunkCases:
    """The records of a stage message (``CaseHeader``: ``case_id`` and ``clinic_hsa_id``) whose
    case belongs to another clinic than the record says: forged or corrupted, they must not
    move or add history to that clinic's case (``case-not-owned``); and the arrivals of the
    cases, from the same query. Intake requests derive their ids from their clinic and records
    without a clinic (read receipts) are not asked about; cases Omvänt does not know are left to
    ``unknown-case``."""
    claims = {
        str(item.case_id): str(item.clinic_hsa_id)
        for item in items
        if not isinstance(item, SendCaseV2)
        and isinstance(getattr(item, "case_id", None), str)
        and isinstance(getattr(item, "clinic_hsa_id", None), str)
    }
    if not claims:
        return ChunkCases([], frozenset(), {})
    found = case_notes.headers(conn, list(claims))
    dropped = [
        item
        for item in items
        if str(getattr(item, "case_id", "")) in found
        and found[str(item.case_id)].clinic_hsa_id != claims[str(item.case_id)]
    ]
    arrivals = {case_id: header.arrival for case_id, header in found.items()}
    return ChunkCases(dropped, frozenset(claims), arrivals)
