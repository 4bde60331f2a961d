"""Dead letters for on-call ("Felade meddelanden"): grouped by reason, inspected (redacted),
replayed. The same functions as ``omvant dlq``: ``workers.failures`` (summary, listing, show)
and ``workers.replay`` (replay), so a replay here is marked, enqueued and confirmed, written
to the on-call audit with the signed-in user's HSA-id, and safe to send twice (a replayed
record is skipped). Inspecting a record writes the access log, as ``omvant dlq show`` does;
personnummer are masked and message text left out (the web has no ``--show-personnummer``).

A replay is two POSTs, both with the CSRF token: the first shows what would be sent (the
replay's own dry run), the second (``confirm=yes``) sends, then redirects, so reloading the
page sends nothing again.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from producers.web.auth import AsOncall, NotFound, console, render
from producers.web.i18n import gettext as _
from workers import failures, replay
from workers.store.failures import Selection

router = APIRouter()

FAILURE_ID = re.compile(r"^[FfRr]?[0-9]{1,18}$")
MAX_IDS = 500
"""Most records one replay from the page names (a group takes any number)."""
NAME = re.compile(r"^[a-z0-9.:_-]{1,128}$")
"""Queue names and reason codes: anything else selects nothing and is refused."""


def _name(value: str | None) -> str | None:
    if not value:
        return None
    if not NAME.fullmatch(value):
        raise NotFound(_("Ingen sådan kö eller orsak."))
    return value


@router.get("/drift/fel")
def dead_letters(request: Request, session: AsOncall) -> Response:
    """Pending failures grouped by queue and reason, then record by record (oldest first)."""
    services = console(request)
    q = request.query_params
    prefix = services.settings.queue_prefix
    selection = Selection(queue=_name(q.get("ko")), reason=_name(q.get("orsak")), prefix=prefix)
    return render(
        request,
        "dead_letters.html",
        {
            "summary": failures.summary(services.engine, prefix=prefix),
            "records": failures.listing(services.engine, selection, limit=200),
            "selection": selection,
            "done": {k: q.get(k) for k in ("aterkorda", "klara", "hoppade", "fel") if q.get(k)},
        },
    )


def _failure_id(value: str) -> str:
    if not FAILURE_ID.fullmatch(value):
        raise NotFound(_("Det finns inget sådant felat meddelande."))
    return value.upper()


@router.get("/drift/fel/{failure_id}")
def dead_letter(request: Request, failure_id: str, session: AsOncall) -> Response:
    """One record, redacted: where, why, the masked traceback and body (the read is logged)."""
    services = console(request)
    found = failures.show(
        services.engine,
        _failure_id(failure_id),
        who=session.user.hsa_id,
        show_personnummer=False,
        prefix=services.settings.queue_prefix,
    )
    if found is None:
        raise NotFound(_("Det finns inget sådant felat meddelande."))
    return render(request, "dead_letter_show.html", {"record": found})


def _selection(ids: list[str], queue: str | None, reason: str | None) -> Selection:
    if ids:
        if len(ids) > MAX_IDS:
            raise NotFound(_("För många meddelanden på en gång."))
        return replay.selected([_failure_id(i) for i in ids])
    if not (queue or reason):
        raise NotFound(_("Välj meddelanden eller en grupp att köra om."))
    return Selection(queue=_name(queue), reason=_name(reason))


@router.post("/drift/fel/kor-om")
def replay_failures(  # noqa: PLR0917 - FastAPI passes the form fields by name
    request: Request,
    session: AsOncall,
    ids: Annotated[list[str] | None, Form(alias="id")] = None,
    queue: Annotated[str | None, Form(alias="ko", max_length=128)] = None,
    reason: Annotated[str | None, Form(alias="orsak", max_length=128)] = None,
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    """Replay records (by id, or a group by queue and reason): first what would be sent,
    then, confirmed, sent (``workers.replay.replay``)."""
    services = console(request)
    chosen = _selection(ids or [], queue, reason)
    broker = services.send_broker()
    prefix = services.settings.queue_prefix
    who = session.user.hsa_id
    if confirm != "yes":
        report = replay.replay(
            services.engine,
            broker,
            chosen,
            who=who,
            prefix=prefix,
            dry_run=True,
            settings=services.settings,
        ).as_dict()
        return render(
            request,
            "replay_confirm.html",
            {"report": report, "ids": ids or [], "queue": queue, "reason": reason},
        )
    data = replay.replay(
        services.engine, broker, chosen, who=who, prefix=prefix, settings=services.settings
    ).as_dict()
    totals: dict[str, Any] = data["totals"]
    done = {
        "aterkorda": totals.get("replayed", 0),
        "klara": totals.get("settled", 0),
        "hoppade": totals.get("skipped", 0)
        + totals.get("not-replayable", 0)
        + totals.get("unknown", 0),
        "fel": totals.get("failed", 0),
    }
    query = urlencode({k: v for k, v in done.items() if v} or {"aterkorda": 0})
    return RedirectResponse(f"/drift/fel?{query}", status_code=303)
