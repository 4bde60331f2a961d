"""Upcasters step a contract record forward one version at a time: pure dict -> dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Upcaster = Callable[[Record], Record]


def send_case_v1_v2(data: Record) -> Record:
    """SendCase 1 -> 2: version 2 adds personalisation fields; version 1 had none."""
    return {**data, "fields": {}}


def answer_of_v1(data: Record) -> Record:
    """Version 1 answered events named only the answer's kind: version 2's answer, no text."""
    moved = {k: v for k, v in data.items() if k != "answer_kind"}
    kind = data.get("answer_kind")
    moved["answer"] = None if kind is None else {"kind": kind, "text": "", "question_answers": []}
    return moved


def read_receipt_v1_v2(data: Record) -> Record:
    """ReadReceipt 1 -> 2: ``answer_kind`` becomes ``answer`` (the kind, an empty text)."""
    return answer_of_v1(data)


def inbox_event_v1_v2(data: Record) -> Record:
    """InboxEvent 1 -> 2 (the inbox's own JSON): as ReadReceipt, and the version says 2."""
    return {**answer_of_v1(data), "version": 2}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("SendCase", 1): send_case_v1_v2,
    ("ReadReceipt", 1): read_receipt_v1_v2,
    ("InboxEvent", 1): inbox_event_v1_v2,
}
"""``(contract, version) -> upcaster`` to ``version + 1``."""
