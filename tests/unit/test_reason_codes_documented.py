"""Every reason code in workers/reasons.py has its row in docs/reason-codes.md, and back."""

from __future__ import annotations

import re
from pathlib import Path

from workers.reasons import Reason

DOC = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"


def test_reason_codes_and_their_table_are_in_step() -> None:
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), flags=re.MULTILINE))
    assert documented == {reason.value for reason in Reason}
