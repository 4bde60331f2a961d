"""Upcasters step a contract record forward one version at a time: pure dict -> dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Upcaster = Callable[[Record], Record]


def send_case_v1_v2(data: Record) -> Record:
    """SendCase 1 -> 2: version 2 adds personalisation fields; version 1 had none."""
    return {**data, "fields": {}}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("SendCase", 1): send_case_v1_v2,
}
"""``(contract, version) -> upcaster`` to ``version + 1``."""
