"""CaseRejected: a case that will not be delivered, with a stable reason code."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from contracts.common import CaseHeader
from contracts.text import FreeText, Identifier

NAME = "CaseRejected"


class CaseRejectedV1(CaseHeader):
    """Recorded in the system of record; not routed to another stage."""

    stage: Annotated[str, Identifier]
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    detail: Annotated[str, FreeText] | None = None


LATEST = CaseRejectedV1
