"""Operations pages for on-call staff ("Drift"): the overview of ``omvant status`` (queues and
lanes with depth, consumers and the oldest waiting case; failures by reason; stuck cases),
dispatches with pause / resume / cancel (``omvant batches``), and the stuck cases one by one.

Built on ``workers.status``, ``workers.stuck`` and ``workers.store.batches``: the CLI's own
functions. Only the on-call role sees these pages, and they show figures, ids and reason codes,
never a resident or a message's content.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from producers.web.auth import AsOncall, NotFound, console, render
from producers.web.explained import explained
from producers.web.i18n import gettext as _
from workers import status, stuck
from workers.store import batches

router = APIRouter()

ACTIONS = {
    "pause": batches.BatchStatus.PAUSED,
    "resume": batches.BatchStatus.RUNNING,
    "cancel": batches.BatchStatus.CANCELLED,
}


@router.get("/drift")
def overview(request: Request, session: AsOncall) -> Response:
    """What ``omvant status`` shows, as a page (as of loading it: no live refresh yet)."""
    services = console(request)
    snapshot = status.snapshot(
        services.send_broker(),
        services.engine,
        services.settings.queue_prefix,
        sweep_limits=services.settings.sweep_limits,
    )
    return render(request, "operations.html", {"status": snapshot})


def _batch_figures(request: Request) -> list[dict[str, object]]:
    with console(request).begin() as conn:
        return [batches.progress(conn, b) for b in batches.list_all(conn, limit=50)]


@router.get("/drift/utskick")
def dispatches(request: Request, session: AsOncall) -> Response:
    """The newest dispatches and their progress."""
    return render(request, "dispatches.html", {"batches": _batch_figures(request), "error": None})


@router.post("/drift/utskick/{batch_id}")
def steer_batch(
    request: Request,
    batch_id: str,
    session: AsOncall,
    action: Annotated[str, Form(max_length=16)],
) -> Response:
    """Pause, resume or cancel a dispatch (the rules of ``omvant batches``)."""
    services = console(request)
    wanted = ACTIONS.get(action)
    if wanted is None:
        raise NotFound(_("Okänd åtgärd."))
    try:
        with services.begin() as conn:
            batches.set_status(conn, batch_id[:64], wanted)
    except batches.BatchNotFound:
        raise NotFound(_("Utskicket finns inte.")) from None
    except batches.BatchTransitionRefused as exc:
        return render(
            request,
            "dispatches.html",
            {"batches": _batch_figures(request), "error": explained(exc)},
            status_code=409,
        )
    return RedirectResponse("/drift/utskick", status_code=303)


@router.get("/drift/fastnade")
def stuck_cases(request: Request, session: AsOncall) -> Response:
    """Cases that have not moved for longer than their state's limit, longest first."""
    services = console(request)
    now = services.now()
    limits = stuck.limits(services.settings.sweep_limits)
    with services.begin() as conn:
        counts = stuck.count_stuck(conn, now, limits)
        found = stuck.stuck_cases(conn, now, limit=200, seconds=limits)
    return render(request, "stuck.html", {"counts": counts, "limits": limits, "cases": found})
