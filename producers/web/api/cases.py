"""``/v1/cases``: send cases (one SendCase or an array of up to 1,000) and look one up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from contracts.send_case import SendCaseV2, canonical_case_id
from producers import integration
from producers.web.api.models import CasesAccepted, CaseStatusBody
from producers.web.api.refusals import refused
from producers.web.api.strict_json import StrictJsonRoute
from producers.web.api_keys_auth import Integration
from producers.web.deps import Context
from producers.web.idempotency import IdempotencyKey, once
from producers.web.problems import PROBLEM_RESPONSES, Problem
from workers.reasons import Reason

router = APIRouter(route_class=StrictJsonRoute, tags=["cases"], responses=PROBLEM_RESPONSES)

CaseBody = Annotated[
    SendCaseV2 | Annotated[list[SendCaseV2], Body(min_length=1, max_length=1000)],
    Body(
        description="One SendCase record (version 1 or 2: a v1 record is a valid v2 record), "
        "or an array of 1 to 1,000."
    ),
]


@router.post(
    "/cases",
    status_code=202,
    response_model=CasesAccepted,
    responses={
        200: {"model": CasesAccepted, "description": "A repeat of a request (Idempotency-Key)"},
        403: PROBLEM_RESPONSES[422] | {"description": "`clinic-not-allowed`"},
        404: PROBLEM_RESPONSES[422] | {"description": "A batch the key cannot see"},
    },
    summary="Send cases",
)
def post_cases(
    body: CaseBody, key: Integration, context: Context, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Take one case or up to 1,000 into the pipeline, for the key's clinics.

    Each record's own `idempotency_key` makes it one case within the intake window (the case
    id is derived from the clinic and that key). The `Idempotency-Key` header makes the whole
    request safe to repeat."""
    requests = body if isinstance(body, list) else [body]

    def run() -> dict[str, object]:
        try:
            result = integration.send_cases(
                key,
                requests,
                settings=context.settings,
                broker=context.broker,
                engine=context.engine,
            )
        except integration.Refused as exc:
            raise refused(exc) from None
        return CasesAccepted(
            case_ids=result.case_ids, accepted=result.accepted, duplicates=result.duplicates
        ).model_dump()

    dumped = [r.model_dump(mode="json") for r in requests]
    return once(context, key, idempotency_key, route="cases", body=dumped, run=run)


@router.get(
    "/cases/{case_id}",
    response_model=CaseStatusBody,
    responses={404: PROBLEM_RESPONSES[422] | {"description": "`not-found`"}},
    summary="A case's state",
)
def get_case(
    case_id: Annotated[str, Path(max_length=64)], key: Integration, context: Context
) -> JSONResponse:
    """The case's state, reason code, timestamps, notifications and history (never its
    content). Another clinic's case is `not-found`; every look-up is access-logged."""
    status = integration.case_status(context.engine, key, canonical_case_id(case_id))
    if status is None:
        shown = case_id.encode("unicode_escape", "backslashreplace").decode("ascii")[:100]
        raise Problem(404, Reason.NOT_FOUND, f"no case {shown} for this key's clinics")
    body = CaseStatusBody(
        id=status.id,
        clinic_hsa_id=status.clinic_hsa_id,
        state=status.state,
        status=status.status,
        reason=status.reason,
        detail=status.detail,
        template_id=status.template_id,
        batch_id=status.batch_id,
        priority=status.priority,
        timestamps=status.timestamps,
        notifications=status.notifications,
        history=status.history,
    )
    return JSONResponse(jsonable_encoder(body))
