"""Operations pages for on-call staff ("Drift"): dispatches with live progress and pause /
resume / cancel, through the same functions as ``omvant batches`` (``workers.store.batches``).
Figures only: no resident and no message content is shown here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from producers.web.auth import AsOncall, NotFound, console, render
from workers.store import batches

router = APIRouter()

ACTIONS = {
    "pause": batches.BatchStatus.PAUSED,
    "resume": batches.BatchStatus.RUNNING,
    "cancel": batches.BatchStatus.CANCELLED,
}


@router.get("/drift")
def operations(request: Request, session: AsOncall) -> Response:
    """The newest dispatches and their progress."""
    services = console(request)
    with services.begin() as conn:
        figures = [batches.progress(conn, b) for b in batches.list_all(conn, limit=50)]
    return render(
        request,
        "operations.html",
        {"batches": figures, "error": request.query_params.get("fel")},
    )


@router.post("/drift/utskick/{batch_id}")
def steer_batch(
    request: Request,
    batch_id: str,
    session: AsOncall,
    action: Annotated[str, Form(max_length=16)],
) -> Response:
    """Pause, resume or cancel a dispatch (the rules of ``omvant batches``)."""
    services = console(request)
    status = ACTIONS.get(action)
    if status is None:
        raise NotFound("Okänd åtgärd.")
    try:
        with services.begin() as conn:
            batches.set_status(conn, batch_id[:64], status)
    except batches.BatchNotFound:
        raise NotFound("Utskicket finns inte.") from None
    except batches.BatchTransitionRefused as exc:
        with services.begin() as conn:
            figures = [batches.progress(conn, b) for b in batches.list_all(conn, limit=50)]
        return render(
            request, "operations.html", {"batches": figures, "error": str(exc)}, status_code=409
        )
    return RedirectResponse("/drift", status_code=303)
