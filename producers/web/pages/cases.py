"""The clinic's cases ("Mottagningens ärenden"): filters as in 1177, search by personnummer,
paging, the case page with its history and notifications, and CSV export.

Every page that shows case data writes the access log with the signed-in user's HSA-id, and
the queries are the clinic's own (``workers.store.case_queries`` filters by clinic in SQL):
another clinic's case is "not found", whatever the URL says.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from contracts.send_case import canonical_case_id
from producers.web.auth import Acting, AsStaff, NotFound, console, render
from producers.web.explained import explained
from producers.web.i18n import gettext as _
from producers.web.wording import STATUS
from workers import case_access
from workers.answer_seal import AnswerKeyMissing, AnswerUnreadable, answer_seal
from workers.identity import parse_identity
from workers.log import mask_identity_numbers
from workers.store import case_queries
from workers.templates import store as template_store

router = APIRouter()

EXPORT_LIMIT = 100_000


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as the page's form sends them, checked."""

    case_type: str
    status: str | None
    template_id: str | None
    since: str | None
    until: str | None
    personnummer: str | None
    page: int
    errors: tuple[str, ...]
    normalized_personnummer: str | None

    def fields(self, **changes: object) -> dict[str, str]:
        """The list's filters (with ``changes``) as the form sends them, the personnummer
        too: for the hidden fields of a posted search's pager and export."""
        values: dict[str, object] = {
            "typ": self.case_type,
            "status": self.status or "",
            "mall": self.template_id or "",
            "fran": self.since or "",
            "till": self.until or "",
            "personnummer": self.personnummer or "",
            "sida": self.page,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in ("", None)}

    @property
    def invalid_search(self) -> bool:
        """Whether a personnummer was searched for that is not a valid one."""
        return self.personnummer is not None and self.normalized_personnummer is None

    def params(self, **changes: object) -> str:
        """The query string of this list (with ``changes``), for links to pages and export;
        never the personnummer (a search by it pages and exports by posting ``fields``)."""
        return urlencode({k: v for k, v in self.fields(**changes).items() if k != "personnummer"})


def _date(value: str | None, zone: ZoneInfo, what: str, errors: list[str]) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        errors.append(_("%(what)s ska vara ett datum som 2026-12-01.", what=what))
        return None
    return dt.datetime.combine(day, dt.time(), zone)


def parse_query(
    q: Mapping[str, str], zone: ZoneInfo, *, searched: bool = False
) -> tuple[ListQuery, case_queries.CaseFilter]:
    """The list's filters, and the store's filter they mean. The personnummer is read only
    from a posted search (``searched``): in a query string it would stand in the address bar,
    the browser's history and every access and proxy log on the way."""
    errors: list[str] = []
    case_type = q.get("typ") or "sent-by-care"
    if case_type not in case_queries.CASE_TYPES:
        errors.append(_("Ärendetypen finns inte; visar ärenden skickade av vården."))
        case_type = "sent-by-care"
    status = q.get("status") or None
    if status is not None and status not in case_queries.STATUSES:
        errors.append(_("Okänd status; visar alla."))
        status = None
    since_text, until_text = q.get("fran") or None, q.get("till") or None
    since = _date(since_text, zone, _("Från"), errors)
    until = _date(until_text, zone, _("Till"), errors)
    if until is not None:
        until += dt.timedelta(days=1)
    pnr_text = ((q.get("personnummer") or "").strip()[:40] if searched else "") or None
    normalized = None
    if pnr_text is not None:
        verdict = parse_identity(pnr_text)
        if verdict.valid and verdict.normalized:
            normalized = verdict.normalized
        else:
            errors.append(_("Personnumret är inte giltigt (ÅÅÅÅMMDD-NNNN)."))
    try:
        page = max(1, int(q.get("sida") or 1))
    except ValueError:
        page = 1
    template_id = q.get("mall") or None
    query = ListQuery(
        case_type,
        status,
        template_id,
        since_text,
        until_text,
        pnr_text,
        page,
        tuple(errors),
        normalized,
    )
    filt = case_queries.CaseFilter(
        status=status,
        template_id=template_id,
        since=since,
        until=until,
        personnummer=normalized,
    )
    if pnr_text is not None and normalized is None:
        # an invalid number matches nothing (the list and export log it, and query nothing)
        filt = case_queries.CaseFilter(personnummer="-")
    return query, filt


def _reader(acting: Acting, *, unmasked: bool = False) -> case_access.Reader:
    return case_access.Reader(acting.user_hsa_id, acting.clinic_hsa_id, unmasked=unmasked)


def _log_invalid_search(engine: sa.Engine, reader: case_access.Reader, query: ListQuery) -> None:
    """Write a search for a number that is not a valid personnummer to the access log, the
    number as the clinic typed it (escaped, cut to 40 characters), as ``omvant cases list
    --resident`` does: in the access log only, never in the process log."""
    wrong = case_access.UsageError(
        "invalid-identity-number", "the resident searched for takes a personnummer"
    )
    case_access.usage_error(
        engine, reader, "cases-list", wrong, asked=[], personnummer=[query.personnummer or ""]
    )


@router.get("/arenden")
def case_list(request: Request, acting: AsStaff) -> Response:
    """The clinic's cases, newest first, a page at a time (each page logged as shown). An
    address with a personnummer (an old bookmark) is sent on without it: searches are posted."""
    if "personnummer" in request.query_params:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "personnummer"]
        return RedirectResponse(f"/arenden?{urlencode(kept)}".rstrip("?"), status_code=303)
    query, filt = parse_query(request.query_params, console(request).zone)
    return _list_page(request, acting, query, filt)


@router.post("/arenden")
async def case_search(request: Request, acting: AsStaff) -> Response:
    """The list searched by personnummer (and the other filters): posted, with the CSRF
    token, so that the number stays out of the address and the access logs."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    query, filt = parse_query(values, console(request).zone, searched=True)
    return _list_page(request, acting, query, filt)


def _list_page(
    request: Request, acting: Acting, query: ListQuery, filt: case_queries.CaseFilter
) -> Response:
    services = console(request)
    size = services.web.web_page_size
    now = services.now()
    paged = dataclasses.replace(filt, limit=size, offset=(query.page - 1) * size)
    reader = _reader(acting)
    rows: list[case_queries.CaseRow] = []
    total = 0
    try:
        if query.invalid_search:
            _log_invalid_search(services.engine, reader, query)  # the page says why, no rows
        else:
            total = case_access.count_cases(services.engine, reader, filt, now=now)
            rows = case_access.list_cases(services.engine, reader, paged, now=now).rows
    except case_access.UsageError as exc:
        raise NotFound(explained(exc)) from None
    with services.begin() as conn:
        templates = [
            (t.id, t.name) for t in template_store.listing(conn, clinic_hsa_id=acting.clinic_hsa_id)
        ]
    pages = max(1, -(-total // size))
    return render(
        request,
        "cases_list.html",
        {
            "rows": rows,
            "total": total,
            "query": query,
            "pages": pages,
            "statuses": [(code, STATUS[code]) for code in case_queries.STATUSES],
            "templates": templates,
            "masked": mask_identity_numbers,
            "shown_status": case_queries.shown_status,
            "zone": services.zone,
            "sent": request.query_params.get("skickat"),
        },
    )


def _csv_lines(rows: list[case_queries.CaseRow], full: bool, zone: ZoneInfo) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [
        "case_id",
        "status",
        "overdue",
        "state",
        "reason",
        "template_id",
        "batch_id",
        "resident",
        "received_at",
        "delivered_at",
        "read_at",
        "answered_at",
        "answer_kind",
        "channels_notified",
    ]
    writer.writerow(columns)
    for r in rows:
        writer.writerow(
            [
                r.case_id,
                case_queries.shown_status(r),  # 'answered' once answered, as the CLI's CSV
                "yes" if r.overdue else "",
                r.state,
                r.reason or "",
                r.template_id,
                r.batch_id or "",
                r.personnummer if full else mask_identity_numbers(r.personnummer),
                *(
                    t.astimezone(zone).isoformat(timespec="seconds") if t else ""
                    for t in (r.received_at, r.delivered_at, r.read_at, r.answered_at)
                ),
                r.answer_kind or "",
                ",".join(r.channels_notified),
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/arenden.csv")
def case_export(request: Request, acting: AsStaff) -> Response:
    """The list's cases (every page, same filters) as CSV; logged like the list."""
    _query, filt = parse_query(request.query_params, console(request).zone)
    full = request.query_params.get("fullstandiga") == "1"
    return _export(request, acting, filt, full)


@router.post("/arenden.csv")
async def case_search_export(request: Request, acting: AsStaff) -> Response:
    """The export of a list searched by personnummer (posted, as the search is)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    query, filt = parse_query(values, console(request).zone, searched=True)
    full = values.get("fullstandiga") == "1"
    if query.invalid_search:
        _log_invalid_search(console(request).engine, _reader(acting, unmasked=full), query)
        raise NotFound(_("Personnumret är inte giltigt (ÅÅÅÅMMDD-NNNN)."))
    return _export(request, acting, filt, full)


def _export(
    request: Request, acting: Acting, filt: case_queries.CaseFilter, full: bool
) -> Response:
    services = console(request)
    wanted = dataclasses.replace(filt, limit=EXPORT_LIMIT)
    try:
        rows = case_access.list_cases(
            services.engine, _reader(acting, unmasked=full), wanted, now=services.now()
        ).rows
    except case_access.UsageError as exc:
        raise NotFound(explained(exc)) from None
    stamp = services.now().astimezone(services.zone).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        _csv_lines(rows, full, services.zone),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="arenden-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/arenden/{case_id}")
def case_page(request: Request, case_id: str, acting: AsStaff) -> Response:
    """One case: status, history, notifications, answer, follow-up. Logged, found or not
    (another clinic's case is refused, and logged as such, like a case that does not exist).

    With ``?svar=1`` the resident's answer is opened too (``case_access.open_sealed``, as
    ``omvant cases show --answer``): only for staff of the clinic that owns the case, and the
    read is written to the access log as its own entry (``cases-show-answer``)."""
    services = console(request)
    reader = _reader(acting, unmasked=True)
    case_id = canonical_case_id(case_id)  # an upper-case UUID in the address finds it
    try:
        asked = ("answer",) if request.query_params.get("svar") == "1" else ()
        detail = case_access.show_case(
            services.engine, reader, case_id, now=services.now(), parts=asked
        )
        answer, answer_error = None, None
        if asked:
            try:
                opened = case_access.open_sealed(
                    services.engine, reader, case_id, ("answer",), answer_seal(services.settings)
                )
                answer = opened.get("answer")
            except (AnswerUnreadable, AnswerKeyMissing):
                answer_error = _("Svaret kan inte öppnas: nyckeln som förseglade det saknas.")
    except (case_access.CaseNotFound, case_access.UsageError):
        raise NotFound(_("Ärendet finns inte bland mottagningens ärenden.")) from None
    with services.begin() as conn:
        template = template_store.load(conn, detail.case.template_id)
    return render(
        request,
        "case_show.html",
        {
            "detail": detail,
            "zone": services.zone,
            "template_name": template.name if template else None,
            "answer_opened": request.query_params.get("svar") == "1",
            "answer": answer,
            "answer_error": answer_error,
        },
    )
