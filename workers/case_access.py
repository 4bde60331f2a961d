"""Reading a clinic's cases, with every attempt in the access log: what the CLI, the web console
and the HTTP API call (no front end decides or logs anything itself).

Each function checks who asks and for which unit (whole HSA-ids: ``workers.hsa``), reads only
that unit's cases (``workers.store.case_queries``) and logs the attempt: in the same transaction
as the read when it is allowed, in one of its own when it is refused or the request is wrong,
so the refusal is logged although the function then raises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workers.answer_seal import AnswerSeal
from workers.hsa import is_hsa_id
from workers.store import access_log, case_bodies, case_queries
from workers.store.schema import cases


class UsageError(ValueError):
    """The request is wrong (an HSA-id that is not one, an unknown status ...); logged as a
    ``usage-error`` attempt. ``code`` is the kebab-case code the front end shows."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CaseNotFound(LookupError):
    """The unit has no such case (another unit's, or none at all); logged as ``refused``."""


@dataclass(frozen=True)
class Reader:
    """Who reads, for which unit, and whether personnummer are shown in full."""

    user_hsa_id: str | None
    unit_hsa_id: str | None
    unmasked: bool = False


def usage_error(
    engine: sa.Engine,
    reader: Reader,
    action: str,
    error: UsageError,
    *,
    asked: list[str],
    personnummer: Sequence[str] = (),
) -> UsageError:
    """Log a wrong request as an attempt and give back the error to raise.

    ``personnummer`` is a resident searched for that is not a valid personnummer, kept as given
    (escaped and cut as every value given is) as a valid one searched for is kept: in the
    access log, in the database only.
    """
    access_log.record_alone(
        engine,
        user_hsa_id=reader.user_hsa_id,
        unit_hsa_id=reader.unit_hsa_id,
        action=action,
        case_ids=asked,
        personnummer=[access_log.as_given(p, 40) for p in personnummer],
        unmasked=reader.unmasked,
        outcome=access_log.USAGE_ERROR,
        detail=str(error),
    )
    return error


def check_reader(engine: sa.Engine, reader: Reader, action: str, *, asked: list[str]) -> None:
    """Refuse (and log) a reader whose user or unit is not a whole HSA-id.

    Raises
    ------
    UsageError
        ``invalid-hsa-id``.
    """
    for what, value in (("--clinic", reader.unit_hsa_id), ("--user", reader.user_hsa_id)):
        if not is_hsa_id(value):
            error = UsageError("invalid-hsa-id", f"{what} must be an HSA-id like SE2321000016-ABCD")
            raise usage_error(engine, reader, action, error, asked=asked)


def _storable(value: str) -> bool:
    """Whether a case id or filter value can be in the database at all."""
    return len(value) <= 200 and "\x00" not in value


MAX_LIMIT = 100_000
"""The most cases one list gives."""
MAX_OFFSET = 1_000_000_000


def check_filter(
    engine: sa.Engine, reader: Reader, action: str, f: case_queries.CaseFilter
) -> None:
    """Refuse (and log) a filter value no case can have (a NUL, a kilobyte of text).

    Raises
    ------
    UsageError
        ``invalid-filter``.
    """
    for name, value in (
        ("--template", f.template_id),
        ("--batch", f.batch_id),
        ("--reference", f.reference),
    ):
        if value is not None and not _storable(value):
            error = UsageError("invalid-filter", f"{name} holds a NUL or is too long")
            raise usage_error(engine, reader, action, error, asked=[])
    # a limit or offset past what the database's integers hold fails the query itself
    if not 1 <= f.limit <= MAX_LIMIT or not 0 <= f.offset <= MAX_OFFSET:
        error = UsageError(
            # thousands separators: ten plain digits would read as an identity number to the mask
            "invalid-filter",
            f"--limit takes 1 to {MAX_LIMIT:,} (and an offset 0 to {MAX_OFFSET:,})",
        )
        raise usage_error(engine, reader, action, error, asked=[])


def _filter_detail(f: case_queries.CaseFilter) -> str:
    parts = [
        f"{name}={value}"
        for name, value in (
            ("status", f.status),
            ("template", f.template_id),
            ("batch", f.batch_id),
            ("reference", access_log.as_given(f.reference, 80) if f.reference else None),
            ("since", f.since.isoformat() if f.since else None),
            ("until", f.until.isoformat() if f.until else None),
            ("personnummer", "searched" if f.personnummer else None),
            ("offset", str(f.offset) if f.offset else None),
        )
        if value is not None
    ]
    return " ".join(parts) or "all"


@dataclass(frozen=True)
class Listing:
    """The cases shown, and whether more matched than the limit let through."""

    rows: list[case_queries.CaseRow]
    more: bool


def list_cases(
    engine: sa.Engine, reader: Reader, f: case_queries.CaseFilter, *, now: dt.datetime
) -> Listing:
    """The unit's cases matching ``f`` (at most ``f.limit``), logged as shown.

    Raises
    ------
    UsageError
        ``invalid-hsa-id``, ``unknown-status``, ``invalid-filter``.
    """
    check_reader(engine, reader, "cases-list", asked=[])
    check_filter(engine, reader, "cases-list", f)
    try:
        with engine.begin() as conn:
            wider = dataclasses.replace(f, limit=f.limit + 1)
            found = case_queries.list_cases(conn, str(reader.unit_hsa_id), wider, now=now)
            rows = found[: f.limit]
            access_log.record(
                conn,
                user_hsa_id=reader.user_hsa_id,
                unit_hsa_id=reader.unit_hsa_id,
                action="cases-list",
                case_ids=[r.case_id for r in rows],
                # the resident searched for is logged too, found or not
                personnummer=[r.personnummer for r in rows]
                + ([f.personnummer] if f.personnummer and f.personnummer.isdigit() else []),
                unmasked=reader.unmasked,
                detail=_filter_detail(f),
            )
            return Listing(rows, len(found) > f.limit)
    except case_queries.UnknownStatus as exc:
        raise usage_error(
            engine, reader, "cases-list", UsageError("unknown-status", str(exc)), asked=[]
        ) from None


def count_cases(
    engine: sa.Engine, reader: Reader, f: case_queries.CaseFilter, *, now: dt.datetime
) -> int:
    """How many of the unit's cases match ``f``, logged (a count is an access too).

    Raises
    ------
    UsageError
        ``invalid-hsa-id``, ``unknown-status``, ``invalid-filter``.
    """
    check_reader(engine, reader, "cases-count", asked=[])
    check_filter(engine, reader, "cases-count", f)
    try:
        with engine.begin() as conn:
            count = case_queries.count_cases(conn, str(reader.unit_hsa_id), f, now=now)
            access_log.record(
                conn,
                user_hsa_id=reader.user_hsa_id,
                unit_hsa_id=reader.unit_hsa_id,
                action="cases-count",
                case_ids=[],
                personnummer=[],
                detail=_filter_detail(f),
            )
            return count
    except case_queries.UnknownStatus as exc:
        raise usage_error(
            engine, reader, "cases-count", UsageError("unknown-status", str(exc)), asked=[]
        ) from None


def _record_case(
    conn: sa.Connection,
    reader: Reader,
    action: str,
    case_id: str,
    *,
    shown: str | None = None,
    refused: str | None = None,
    unmasked: bool = False,
) -> None:
    """Log one read of one case: allowed, with the resident ``shown``, or refused, ``refused``
    saying why (for the auditor)."""
    access_log.record(
        conn,
        user_hsa_id=reader.user_hsa_id,
        unit_hsa_id=reader.unit_hsa_id,
        action=action,
        case_ids=[case_id],
        personnummer=[] if shown is None else [shown],
        unmasked=unmasked,
        outcome=access_log.ALLOWED if refused is None else access_log.REFUSED,
        detail=refused,
    )


def show_case(
    engine: sa.Engine,
    reader: Reader,
    case_id: str,
    *,
    now: dt.datetime,
    parts: tuple[str, ...] = (),
) -> case_queries.CaseDetail:
    """One of the unit's cases with its history, logged with the id asked for.

    ``parts`` are the sealed parts asked for with it (``answer``, ``content``; opened after by
    ``open_sealed``): a refusal is logged for each as well (``cases-show-answer`` refused), so
    the auditor sees what was attempted, not only that a case was.

    Raises
    ------
    UsageError
        ``invalid-hsa-id``.
    CaseNotFound
        The unit has no such case: logged as ``refused``, with whether the case is another
        unit's (for the auditor; the reader is told only that the unit has no such case).
    """
    check_reader(engine, reader, "cases-show", asked=[case_id])
    with engine.begin() as conn:
        detail = (
            case_queries.show_case(conn, str(reader.unit_hsa_id), case_id, now=now)
            if _storable(case_id)
            else None  # no case has such an id (and PostgreSQL refuses NUL in a query)
        )
        if detail is not None:
            _record_case(
                conn,
                reader,
                "cases-show",
                case_id,
                shown=detail.case.personnummer,
                unmasked=reader.unmasked,
            )
            return detail
        exists = (
            _storable(case_id)
            and conn.execute(
                sa.select(sa.func.count()).select_from(cases).where(cases.c.id == case_id)
            ).scalar_one()
        )
        for action in ("cases-show", *(f"cases-show-{part}" for part in parts)):
            _record_case(
                conn,
                reader,
                action,
                case_id,
                refused="another unit's case" if exists else "no such case",
                unmasked=reader.unmasked,
            )
    raise CaseNotFound(f"the unit {reader.unit_hsa_id} has no case {case_id}")


def received(content: dict[str, object]) -> dict[str, object]:
    """The sealed content as the resident received it: subject, body, signature, date and the
    attachments (each with its media type; none for a case without files, or not cleared)."""
    from workers.attachments.identify import CONTENT_TYPES

    media: dict[str, str] = {str(kind): type_ for kind, type_ in CONTENT_TYPES.items()}
    files = content.get("attachments")
    content["attachments"] = [
        {**file, "content_type": media.get(str(file.get("type")), "application/octet-stream")}
        for file in (files if isinstance(files, list) else [])
        if isinstance(file, dict)
    ]
    return content


def open_sealed(
    engine: sa.Engine, reader: Reader, case_id: str, parts: tuple[str, ...], seal: AnswerSeal
) -> dict[str, object]:
    """The sealed ``parts`` of one of the unit's cases, opened, each read logged as its own
    access (``cases-show-answer``, ``cases-show-content``). A part not there is ``None``.

    Raises
    ------
    UsageError
        ``invalid-hsa-id``.
    CaseNotFound
        The unit has no such case (logged as refused, as ``show_case`` does).
    """
    from workers.store import answers

    opened: dict[str, object] = {}
    source, content = case_bodies.joined(cases, "content")
    for part in parts:
        action = f"cases-show-{part}"
        check_reader(engine, reader, action, asked=[case_id])
        with engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(cases.c.personnummer, *content)
                    .select_from(source)
                    .where(cases.c.id == case_id, cases.c.clinic_hsa_id == str(reader.unit_hsa_id))
                ).first()
                if _storable(case_id)
                else None
            )
            if row is None:
                _record_case(conn, reader, action, case_id, refused="not the unit's case")
                raise CaseNotFound(f"the unit {reader.unit_hsa_id} has no case {case_id}")
            if part == "answer":
                stored = answers.get(conn, str(reader.unit_hsa_id), case_id)
                opened[part] = (
                    None
                    if stored is None
                    else {
                        "kind": stored.kind,
                        "answered_at": stored.answered_at.isoformat(timespec="seconds"),
                        **json.loads(seal.open(stored.sealed)),
                        "alert": stored.alert,
                    }
                )
            else:
                opened[part] = received(json.loads(seal.open(row.content))) if row.content else None
            _record_case(
                conn, reader, action, case_id, shown=row.personnummer, unmasked=reader.unmasked
            )
    return opened
