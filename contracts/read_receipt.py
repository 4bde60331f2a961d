"""ReadReceipt: the inbox says a resident opened (or answered) a message."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from contracts.common import CaseId, FrozenModel

NAME = "ReadReceipt"

AnswerKind = Literal["answer", "partial-answer", "counter-question"]


class ReadReceiptV1(FrozenModel):
    """An inbox event about one case's message. Duplicates and reordering are harmless."""

    case_id: CaseId
    event: Literal["opened", "answered"]
    answer_kind: AnswerKind | None = None
    occurred_at: dt.datetime


LATEST = ReadReceiptV1
