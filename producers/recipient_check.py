"""The pre-send check of a dispatch list: who cannot be reached through 1177, and why.

Numbers are checked in chunks (one directory call per chunk, batched and cached by the
configured directory), and each verdict is written as soon as its chunk is done, so a list of
100,000 residents streams through in bounded memory.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from workers.adapters.account_directory import AccountDirectory, DirectoryUnavailable
from workers.recipient_validation import RecipientCheck, check_recipients

CHUNK = 2000
RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Waits between attempts when the directory is unavailable (a CLI has no dramatiq)."""


@dataclass
class CheckSummary:
    """Counts of one check run: every number, the reachable ones, and why the rest are not."""

    checked: int = 0
    reachable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def unreachable(self) -> int:
        """Numbers that cannot be reached, for whatever reason."""
        return self.checked - self.reachable

    def add(self, check: RecipientCheck) -> None:
        """Count one verdict."""
        self.checked += 1
        if check.reachable:
            self.reachable += 1
        elif check.reason is not None:
            self.reasons[check.reason.value] += 1

    def as_json(self) -> dict[str, Any]:
        """The closing summary object of ``omvant recipients check --json --file``."""
        return {
            "summary": {
                "checked": self.checked,
                "reachable": self.reachable,
                "unreachable": self.unreachable,
                "reasons": dict(sorted(self.reasons.items())),
            }
        }


BOM = "\ufeff"
"""The byte-order mark Windows tools (Excel's "CSV UTF-8", Notepad) put before the first line."""


def chunks(lines: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    """The lines without their line endings (and the first without a byte-order mark),
    ``size`` at a time."""
    chunk: list[str] = []
    for number, line in enumerate(lines):
        chunk.append((line.removeprefix(BOM) if number == 0 else line).rstrip("\r\n"))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_with_retries(
    numbers: list[str], directory: AccountDirectory, *, retries: int = len(RETRY_DELAYS)
) -> list[RecipientCheck]:
    """``check_recipients``, trying again up to ``retries`` times, after a growing pause, while
    the directory is unavailable.

    Raises
    ------
    DirectoryUnavailable
        Still unavailable after the last retry.
    """
    for attempt in range(retries):
        try:
            return check_recipients(numbers, directory)
        except DirectoryUnavailable:
            time.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
    return check_recipients(numbers, directory)


def render_text(check: RecipientCheck) -> str:
    """One verdict as a line for people: the input, then reachable by which channels, or why
    not."""
    if check.reachable:
        return f"{check.input}\treachable\t{','.join(check.channels)}"
    why = check.reason.value if check.reason else "unreachable"
    return f"{check.input}\t{why}\t{check.detail or ''}".rstrip("\t")


def run_check(
    lines: Iterable[str],
    directory: AccountDirectory,
    out: TextIO,
    *,
    as_json: bool,
    chunk_size: int = CHUNK,
    retries: int = len(RETRY_DELAYS),
) -> CheckSummary:
    """Check every line's number, write one verdict per line to ``out``, return the counts."""
    summary = CheckSummary()
    render = (lambda c: json.dumps(c.as_json())) if as_json else render_text
    for chunk in chunks(lines, chunk_size):
        checks = check_with_retries(chunk, directory, retries=retries)
        for check in checks:
            summary.add(check)
        out.write("\n".join(render(c) for c in checks) + "\n")
    return summary
