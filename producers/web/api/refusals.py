"""``integration.Refused`` as problem details."""

from __future__ import annotations

from producers.integration import Refused
from producers.web.problems import FieldError, Problem


def refused(exc: Refused) -> Problem:
    """The problem for a refusal of the integration layer."""
    errors = [FieldError(field=exc.field, rule=exc.reason, message=exc.detail)] if exc.field else []
    return Problem(exc.status, exc.reason, exc.detail, errors=errors)
