"""``/v1/batches``: dispatches of one template to a list of residents, and their control."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from producers import integration
from producers.web.api.models import BatchProgress, BatchRequest
from producers.web.api.refusals import refused
from producers.web.api.strict_json import StrictJsonRoute
from producers.web.api_keys_auth import Integration
from producers.web.deps import Context
from producers.web.idempotency import IdempotencyKey, once
from producers.web.problems import PROBLEM_RESPONSES
from workers.store.batches import BatchStatus

router = APIRouter(route_class=StrictJsonRoute, tags=["batches"], responses=PROBLEM_RESPONSES)

BatchId = Annotated[str, Path(max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: PROBLEM_RESPONSES[422] | {"description": "`not-found`"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    409: PROBLEM_RESPONSES[422] | {"description": "`batch-transition-refused`"}
}


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchProgress,
    responses={
        200: {"model": BatchProgress, "description": "A repeat of a request (Idempotency-Key)"},
        403: PROBLEM_RESPONSES[422] | {"description": "`clinic-not-allowed`"},
    },
    summary="Start a dispatch",
)
def post_batch(
    body: BatchRequest, key: Integration, context: Context, idempotency_key: IdempotencyKey = None
) -> object:
    """Send one template from one of the key's clinics to every recipient, as a batch on a
    bulk lane (``omvant dispatch``); answers with its progress."""

    def run() -> dict[str, object]:
        try:
            progress = integration.start_batch(
                key,
                clinic_hsa_id=body.clinic_hsa_id,
                sender_hsa_id=body.sender_hsa_id,
                template_id=body.template_id,
                recipients=[
                    integration.BatchRecipient(r.personnummer, dict(r.fields))
                    for r in body.recipients
                ],
                fragments=body.fragments,
                name=body.name,
                settings=context.settings,
                broker=context.broker,
                engine=context.engine,
            )
        except integration.Refused as exc:
            raise refused(exc) from None
        return BatchProgress.model_validate(progress).model_dump(mode="json")

    return once(
        context, key, idempotency_key, route="batches", body=body.model_dump(mode="json"), run=run
    )


@router.get(
    "/batches/{batch_id}", response_model=BatchProgress, responses=NOT_FOUND, summary="Progress"
)
def get_batch(batch_id: BatchId, key: Integration, context: Context) -> BatchProgress:
    """The batch's live figures: cases per state, rejections per reason, what is in flight."""
    try:
        return BatchProgress.model_validate(
            integration.batch_progress(context.engine, key, batch_id)
        )
    except integration.Refused as exc:
        raise refused(exc) from None


def _set(context: Context, key: Integration, batch_id: str, status: BatchStatus) -> BatchProgress:
    try:
        return BatchProgress.model_validate(
            integration.set_batch_status(context.engine, key, batch_id, status)
        )
    except integration.Refused as exc:
        raise refused(exc) from None


@router.post(
    "/batches/{batch_id}/pause",
    response_model=BatchProgress,
    responses=NOT_FOUND | REFUSED,
    summary="Pause",
)
def pause(batch_id: BatchId, key: Integration, context: Context) -> BatchProgress:
    """Hold the batch's cases where they are until resumed."""
    return _set(context, key, batch_id, BatchStatus.PAUSED)


@router.post(
    "/batches/{batch_id}/resume",
    response_model=BatchProgress,
    responses=NOT_FOUND | REFUSED,
    summary="Resume",
)
def resume(batch_id: BatchId, key: Integration, context: Context) -> BatchProgress:
    """Let a paused batch's cases move on."""
    return _set(context, key, batch_id, BatchStatus.RUNNING)


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchProgress,
    responses=NOT_FOUND | REFUSED,
    summary="Cancel",
)
def cancel(batch_id: BatchId, key: Integration, context: Context) -> BatchProgress:
    """Reject every case of the batch not yet delivered (`batch-cancelled`), for good."""
    return _set(context, key, batch_id, BatchStatus.CANCELLED)
