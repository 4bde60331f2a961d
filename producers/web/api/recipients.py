"""``/v1/recipients/check``: the pre-send check, as ``omvant recipients check``."""

from __future__ import annotations

from fastapi import APIRouter

from producers import integration
from producers.web.api.models import RecipientsCheckRequest, RecipientsCheckResult
from producers.web.api.strict_json import StrictJsonRoute
from producers.web.api_keys_auth import Integration
from producers.web.deps import Context
from producers.web.problems import PROBLEM_RESPONSES, Problem
from workers.adapters.account_directory import DirectoryUnavailable
from workers.reasons import Reason

router = APIRouter(route_class=StrictJsonRoute, tags=["recipients"], responses=PROBLEM_RESPONSES)


@router.post(
    "/recipients/check",
    response_model=RecipientsCheckResult,
    responses={503: PROBLEM_RESPONSES[422] | {"description": "The directory is unavailable"}},
    summary="Check residents before sending",
)
def check(
    body: RecipientsCheckRequest, _key: Integration, context: Context
) -> RecipientsCheckResult:
    """Whether each resident has an active 1177 login, is not blocked and has SMS or e-mail
    notifications on, with the pipeline's reason codes (`no-account`, `login-blocked`,
    `no-notification-channel`, `invalid-identity-number`, ...)."""
    try:
        result = integration.check_residents(body.personnummer, context.directory)
    except DirectoryUnavailable as exc:
        raise Problem(
            503,
            Reason.TECHNICAL_FAILURE,
            f"the account directory is unavailable: {exc}"[:300],
            headers={"Retry-After": "5"},
        ) from None
    return RecipientsCheckResult.model_validate(result)
