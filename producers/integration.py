"""What an integration does, whatever way it comes in (HTTP API, CLI): send cases, look one
up, run a dispatch, check residents, upload a file. Every function takes the integration's
key and acts only for its clinics; another clinic's case or batch is "not found".

The HTTP routes (``producers/web/api/``) are thin over these; these are thin over the
functions the intake bridge, ``omvant dispatch`` and ``omvant cases`` use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from workers.intake_bridge import admit
from workers.reasons import Reason
from workers.settings import Settings
from workers.store import access_log, batches, case_queries
from workers.store.api_keys import ApiKey
from workers.store.cases import utcnow
from workers.store.schema import batches as batches_table
from workers.store.schema import cases, intake_keys
from workers.store.sql import aware_utc

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""The form of every case and batch id (``contracts.common.CaseId``): a path that is not one
names nothing, and is not sent to the database (PostgreSQL refuses NUL in text)."""


def _printable(value: str) -> str:
    """``value`` for the access log: what is not of an id's form, escaped."""
    return value.encode("unicode_escape", "backslashreplace").decode("ascii")[:200]


class Refused(Exception):
    """A request the integration may not make; ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = str(reason)
        self.detail = detail
        self.field = field


@dataclass(frozen=True)
class SendResult:
    """What became of the cases of one request, in order."""

    case_ids: list[str]
    accepted: int
    duplicates: int


def _own_batches(conn: sa.Connection, key: ApiKey, batch_ids: set[str]) -> set[str]:
    if not batch_ids:
        return set()
    rows = conn.execute(
        sa.select(batches_table.c.id).where(
            batches_table.c.id.in_(batch_ids),
            batches_table.c.clinic_hsa_id.in_(key.clinics),
        )
    )
    return {row.id for row in rows}


def check_requests(conn: sa.Connection, key: ApiKey, requests: Sequence[SendCaseV2]) -> None:
    """Every request is for one of the key's clinics, and any batch it names is one of theirs.

    Raises
    ------
    Refused
        403 ``clinic-not-allowed``; 404 ``not-found`` for a batch the key cannot see.
    """
    for index, request in enumerate(requests):
        if request.clinic_hsa_id not in key.clinics:
            raise Refused(
                403,
                Reason.CLINIC_NOT_ALLOWED,
                f"key {key.key_id} may not send for {request.clinic_hsa_id}",
                f"[{index}].clinic_hsa_id",
            )
    named = {r.batch_id for r in requests if r.batch_id}
    own = _own_batches(conn, key, named)
    for index, request in enumerate(requests):
        if request.batch_id and request.batch_id not in own:
            raise Refused(
                404,
                Reason.NOT_FOUND,
                f"no batch {request.batch_id} for this key's clinics",
                f"[{index}].batch_id",
            )


def send_cases(
    key: ApiKey,
    requests: Sequence[SendCaseV2],
    *,
    settings: Settings,
    broker: Any,
    engine: sa.Engine,
) -> SendResult:
    """Take the key's requests into the pipeline as the intake bridge does: the records' own
    idempotency keys within the intake window decide which are new.

    Raises
    ------
    Refused
        See ``check_requests``.
    """
    with engine.connect() as conn:
        check_requests(conn, key, requests)
    claims = admit(
        [(r, key.key_id) for r in requests],
        settings=settings,
        broker=broker,
        engine=engine,
        window=dt.timedelta(days=settings.intake_window_days),
    )
    new = sum(1 for c in claims if c.send)
    return SendResult([c.request.resolved_case_id() for c in claims], new, len(claims) - new)


@dataclass(frozen=True)
class CaseStatus:
    """A case as an integration sees it: where it is and when it got there, never its body."""

    id: str
    clinic_hsa_id: str
    state: str
    status: str
    reason: str | None = None
    detail: str | None = None
    template_id: str | None = None
    batch_id: str | None = None
    priority: str | None = None
    timestamps: dict[str, dt.datetime | None] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def _queued(conn: sa.Connection, key: ApiKey, case_id: str) -> CaseStatus | None:
    row = conn.execute(
        sa.select(intake_keys.c.clinic_hsa_id, intake_keys.c.first_seen_at).where(
            intake_keys.c.case_id == case_id, intake_keys.c.clinic_hsa_id.in_(key.clinics)
        )
    ).first()
    if row is None:
        return None
    at = aware_utc(row.first_seen_at)
    return CaseStatus(
        id=case_id,
        clinic_hsa_id=row.clinic_hsa_id,
        state="queued",
        status="in-progress",
        timestamps={"accepted_at": at},
    )


def _status(conn: sa.Connection, detail: case_queries.CaseDetail) -> CaseStatus:
    row = detail.case
    extra = conn.execute(
        sa.select(cases.c.priority, cases.c.detail, cases.c.notified_at).where(
            cases.c.id == row.case_id, cases.c.clinic_hsa_id == row.clinic_hsa_id
        )
    ).first()
    notified_at = extra.notified_at if extra is not None else None
    notified_at = aware_utc(notified_at)
    return CaseStatus(
        id=row.case_id,
        clinic_hsa_id=row.clinic_hsa_id,
        state=row.state,
        status="overdue" if row.overdue else row.status,
        reason=row.reason,
        detail=extra.detail if extra is not None and row.reason else None,
        template_id=row.template_id,
        batch_id=row.batch_id,
        priority=extra.priority if extra is not None else None,
        timestamps={
            "received_at": row.received_at,
            "delivered_at": row.delivered_at,
            "notified_at": notified_at,
            "read_at": row.read_at,
            "answered_at": row.answered_at,
        },
        notifications=[
            {
                "channel": n.channel,
                "round": n.round,
                "status": n.status,
                "reason": n.reason,
                "sent_at": n.sent_at,
            }
            for n in detail.notifications
        ],
        history=[
            {"at": e.at, "state": e.state, "stage": e.stage, "reason": e.reason}
            for e in detail.events
        ],
    )


def case_status(engine: sa.Engine, key: ApiKey, case_id: str) -> CaseStatus | None:
    """The key's case ``case_id`` (queued if the pipeline has not recorded it yet), or None if
    none of the key's clinics has it. Every look-up is written to the access log, found or
    not, as ``api:<key-id>``."""
    now = utcnow()
    if not _ID.fullmatch(case_id):
        with engine.begin() as conn:
            for clinic in key.clinics:
                access_log.record(
                    conn,
                    user_hsa_id=f"api:{key.key_id}"[:48],
                    unit_hsa_id=clinic,
                    action="api-case-not-found",
                    case_ids=[_printable(case_id)],
                    personnummer=[],
                )
        return None
    with engine.begin() as conn:
        for clinic in key.clinics:
            detail = case_queries.show_case(conn, clinic, case_id, now=now)
            if detail is not None:
                access_log.record(
                    conn,
                    user_hsa_id=f"api:{key.key_id}"[:48],
                    unit_hsa_id=clinic,
                    action="api-case-status",
                    case_ids=[case_id],
                    personnummer=[detail.case.personnummer],
                )
                return _status(conn, detail)
        queued = _queued(conn, key, case_id)
        for clinic in [queued.clinic_hsa_id] if queued else key.clinics:
            access_log.record(
                conn,
                user_hsa_id=f"api:{key.key_id}"[:48],
                unit_hsa_id=clinic,
                action="api-case-status" if queued else "api-case-not-found",
                case_ids=[case_id],
                personnummer=[],
            )
        return queued


def own_batch(conn: sa.Connection, key: ApiKey, batch_id: str) -> batches.Batch:
    """The key's batch.

    Raises
    ------
    Refused
        404 ``not-found``: no such batch, or another clinic's.
    """
    batch = None
    if _ID.fullmatch(batch_id):
        with contextlib.suppress(batches.BatchNotFound):
            batch = batches.get(conn, batch_id)
    if batch is None or batch.clinic_hsa_id not in key.clinics:
        raise Refused(
            404, Reason.NOT_FOUND, f"no batch {_printable(batch_id)} for this key's clinics"
        )
    return batch


def batch_progress(engine: sa.Engine, key: ApiKey, batch_id: str) -> dict[str, Any]:
    """The key's batch's live figures (``workers.store.batches.progress``)."""
    with engine.connect() as conn:
        return batches.progress(conn, own_batch(conn, key, batch_id))


def set_batch_status(
    engine: sa.Engine, key: ApiKey, batch_id: str, status: batches.BatchStatus
) -> dict[str, Any]:
    """Pause, resume or cancel the key's batch, as ``omvant batches pause|resume|cancel``.

    Raises
    ------
    Refused
        404 ``not-found``; 409 ``batch-transition-refused``.
    """
    with engine.begin() as conn:
        own_batch(conn, key, batch_id)
        try:
            batch = batches.set_status(conn, batch_id, status)
        except batches.BatchTransitionRefused as exc:
            raise Refused(409, Reason.BATCH_TRANSITION_REFUSED, str(exc)) from None
        return batches.progress(conn, batch)


@dataclass(frozen=True)
class BatchRecipient:
    """One resident of a dispatch, with the template's personalisation fields."""

    personnummer: str
    fields: dict[str, str]


def start_batch(
    key: ApiKey,
    *,
    clinic_hsa_id: str,
    sender_hsa_id: str,
    template_id: str,
    recipients: Sequence[BatchRecipient],
    fragments: Sequence[str] = (),
    name: str | None = None,
    settings: Settings,
    broker: Any,
    engine: sa.Engine,
    chunk: int = 1000,
) -> dict[str, Any]:
    """Start a dispatch of one template to ``recipients`` for one of the key's clinics, as
    ``omvant dispatch`` does: a batch on the next bulk lane, its cases taken in through the
    intake (so their states are called back to the key's webhook). Returns its progress.

    Raises
    ------
    Refused
        403 ``clinic-not-allowed``.
    """
    import uuid

    if clinic_hsa_id not in key.clinics:
        raise Refused(
            403,
            Reason.CLINIC_NOT_ALLOWED,
            f"key {key.key_id} may not send for {clinic_hsa_id}",
            "clinic_hsa_id",
        )
    batch_id = f"dispatch-{uuid.uuid4().hex[:16]}"
    with engine.begin() as conn:
        batches.create(
            conn,
            batch_id=batch_id,
            name=name or f"{template_id} {clinic_hsa_id}",
            clinic_hsa_id=clinic_hsa_id,
            sender_hsa_id=sender_hsa_id,
            template_id=template_id,
            total=len(recipients),
        )
    window = dt.timedelta(days=settings.intake_window_days)
    for start in range(0, len(recipients), chunk):
        requests = [
            SendCaseV2(
                clinic_hsa_id=clinic_hsa_id,
                sender_hsa_id=sender_hsa_id,
                template_id=template_id,
                fragments=list(fragments),
                personnummer=r.personnummer,
                fields=r.fields,
                idempotency_key=f"{batch_id}:{start + offset}",
                batch_id=batch_id,
            )
            for offset, r in enumerate(recipients[start : start + chunk])
        ]
        admit(
            [(r, key.key_id) for r in requests],
            settings=settings,
            broker=broker,
            engine=engine,
            window=window,
        )
        with engine.begin() as conn:
            batches.add_enqueued(conn, batch_id, len(requests))
    with engine.connect() as conn:
        return batches.progress(conn, batches.get(conn, batch_id))


@dataclass(frozen=True)
class Upload:
    """A file checked and stored for one of the key's clinics."""

    ref: dict[str, Any]
    kind: str | None
    pages: int | None
    cleaned: bool


def upload_attachment(
    key: ApiKey,
    *,
    clinic_hsa_id: str,
    data: bytes,
    filename: str,
    declared_type: str,
    settings: Settings,
    engine: sa.Engine,
) -> Upload:
    """Check a file with the pipeline's attachment checks (as ``omvant attachments check``)
    and, if it passes, store it owned by the clinic (as ``omvant attachments put --clinic``:
    only that clinic's cases may send it); returns the AttachmentRef a
    SendCase carries. A refused file is not stored.

    Raises
    ------
    Refused
        403 ``clinic-not-allowed``; 413 ``attachment-too-large``; 422 with the check's reason
        code (``attachment-type-not-allowed``, ``attachment-infected``, ...) or
        ``invalid-payload`` for a name or type an AttachmentRef cannot carry.
    """
    import hashlib

    from pydantic import ValidationError

    from contracts.common import AttachmentRef
    from workers.adapters.blobs import blob_store_from
    from workers.attachments.checker import check_file
    from workers.attachments.limits import Limits
    from workers.attachments.ownership import store_attachment
    from workers.attachments.scanner import scanner_from

    if clinic_hsa_id not in key.clinics:
        raise Refused(
            403,
            Reason.CLINIC_NOT_ALLOWED,
            f"key {key.key_id} may not upload for {clinic_hsa_id}",
            "clinic_hsa_id",
        )
    limits = Limits.from_settings(settings)
    if len(data) > limits.max_bytes:
        raise Refused(
            413,
            Reason.ATTACHMENT_TOO_LARGE,
            f"{len(data):,} bytes is over the limit of {limits.max_bytes:,}",
            "file",
        )
    try:
        ref = AttachmentRef(
            sha256=hashlib.sha256(data).hexdigest(),
            filename=filename,
            declared_type=declared_type,
            size=len(data),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(422, Reason.INVALID_PAYLOAD, f"{where}: {first['msg']}", where) from None
    scanner = scanner_from(settings.clamd_socket, settings.clamd_url, settings.clamd_timeout)
    verdict = check_file(
        data, filename=filename, declared_type=declared_type, limits=limits, scanner=scanner
    )
    if not verdict.ok:
        reason = verdict.reason or Reason.ATTACHMENT_CORRUPT
        raise Refused(422, reason, verdict.detail or str(reason), "file")
    blobs = blob_store_from(settings.blob_dir, settings.blob_url, settings.s3_endpoint_url)
    stored = store_attachment(
        engine,
        blobs,
        data,
        owner_hsa_id=clinic_hsa_id,
        filename=ref.filename,
        declared_type=ref.declared_type,
    )
    return Upload(
        ref=stored.model_dump(mode="json"),
        kind=verdict.type,
        pages=verdict.pages,
        cleaned=verdict.cleaned_sha256 is not None and verdict.cleaned_sha256 != verdict.sha256,
    )


def check_residents(numbers: Sequence[str], directory: Any) -> dict[str, Any]:
    """The pre-send check of ``numbers`` (as ``omvant recipients check``): one verdict each
    with the pipeline's reason codes, and the counts.

    Raises
    ------
    DirectoryUnavailable
        The account directory could not be reached after the retries.
    """
    from producers.recipient_check import CheckSummary, check_with_retries

    checks = check_with_retries(list(numbers), directory)
    summary = CheckSummary()
    for check in checks:
        summary.add(check)
    return {
        "results": [c.as_json() for c in checks],
        "checked": summary.checked,
        "reachable": summary.reachable,
        "reasons": dict(sorted(summary.reasons.items())),
    }
