"""ReadReceipt: the inbox says a resident opened (or answered) a message.

Version 2 carries the answer itself (the chosen option, its text and the answers to the
template's questions); ``upcasters.read_receipt_v1_v2`` steps version 1 forward.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from contracts.common import CaseId, FrozenModel

NAME = "ReadReceipt"

AnswerKind = Literal["answer", "partial-answer", "counter-question"]


class ReadReceiptV1(FrozenModel):
    """An inbox event about one case's message. Duplicates and reordering are harmless."""

    case_id: CaseId
    event: Literal["opened", "answered"]
    answer_kind: AnswerKind | None = None
    occurred_at: dt.datetime


AnswerText = Annotated[str, StringConstraints(max_length=20_000)]


class QuestionAnswer(FrozenModel):
    """The resident's answer to one of the template's questions."""

    question: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    answer: AnswerText


class Answer(FrozenModel):
    """What the resident sent back: the chosen option, a text, answers to the questions."""

    kind: AnswerKind
    text: AnswerText = ""
    question_answers: list[QuestionAnswer] = Field(default_factory=list, max_length=50)


class ReadReceiptV2(FrozenModel):
    """An inbox event about one case's message; an ``answered`` one carries the answer."""

    case_id: CaseId
    event: Literal["opened", "answered"]
    answer: Answer | None = None
    occurred_at: dt.datetime

    @model_validator(mode="after")
    def _answer_with_answers(self) -> ReadReceiptV2:
        if (self.event == "answered") != (self.answer is not None):
            raise ValueError("an answer is given with answered events, and only with them")
        return self


LATEST = ReadReceiptV2
