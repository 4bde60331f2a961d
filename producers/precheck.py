"""The dry run of a dispatch: what the pipeline would decide for every line, without sending.

Each line goes through the pipeline's own decisions, in the pipeline's order: the recipient
check (``recipient_validation.handle`` against the configured account directory), then the
composition (``composition.handle`` with the template library, the HSA catalogue and the
same limits: template known, active and usable by the clinic, every fragment known, every
field the text uses present and non-empty, sender and clinic known), then the attachment
verdicts (checked once for the whole dispatch, as the attachment check keeps them by content).
So its counts, and each line's reason, are what the dispatch would get.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import describe
from contracts.send_case import SendCaseV2
from producers.client import Recipient, chunked
from producers.dispatch_file import RowError
from workers import composition, recipient_validation
from workers.adapters.account_directory import AccountDirectory
from workers.adapters.staff_catalogue import StaffCatalogue
from workers.reasons import Reason
from workers.stage import Advance, Reject
from workers.templates.library import TemplateLibrary

LOOKUP_CHUNK = 1000
KEPT_LINES = 1000
"""Lines whose reasons a prediction keeps (the counts cover every line)."""


@dataclass(frozen=True)
class LineVerdict:
    """Why one line of the list would not be sent."""

    line: int
    reason: str
    detail: str


@dataclass(frozen=True)
class DispatchTerms:
    """What every case of the dispatch shares."""

    template_id: str
    clinic_hsa_id: str
    sender_hsa_id: str
    fragments: Sequence[str] = ()
    attachment_problems: Sequence[tuple[str, str]] = ()
    """``(reason, detail)`` of each attached file the attachment check would refuse."""


@dataclass
class Prediction:
    """What the dispatch would come to."""

    lines: int = 0
    would_send: int = 0
    reachable: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    refusals: list[LineVerdict] = field(default_factory=list)
    """The first ``KEPT_LINES`` lines that would not be sent, with their reasons."""

    def reject(self, line: int, reason: str, detail: str | None) -> None:
        """Count one line that would be rejected."""
        self.rejected[reason] += 1
        if len(self.refusals) < KEPT_LINES:
            self.refusals.append(LineVerdict(line, reason, detail or ""))

    @property
    def all_rejected(self) -> bool:
        """Whether not one case would be sent."""
        return self.would_send == 0

    def as_dict(self) -> dict[str, object]:
        """The figures ``omvant dispatch --dry-run --json`` prints."""
        return {
            "recipients": self.lines,
            "would_send": self.would_send,
            "would_reject": sum(self.rejected.values()),
            "reachable": self.reachable,
            "rejected": dict(sorted(self.rejected.items())),
            "not_reachable": {
                reason: count
                for reason, count in sorted(self.rejected.items())
                if reason in RECIPIENT_REASONS
            },
            "lines": [
                {"line": v.line, "reason": v.reason, "detail": v.detail} for v in self.refusals
            ],
            "lines_left_out": max(0, sum(self.rejected.values()) - len(self.refusals)),
        }


RECIPIENT_REASONS = frozenset(
    {
        Reason.INVALID_IDENTITY_NUMBER,
        Reason.MISSING_IDENTITY_NUMBER,
        Reason.NO_ACCOUNT,
        Reason.LOGIN_BLOCKED,
        Reason.NO_NOTIFICATION_CHANNEL,
        Reason.ACCOUNT_DEACTIVATED,
        Reason.SAMORDNINGSNUMMER_NOT_REACHABLE,
        Reason.DIRECTORY_REFUSED,
    }
)
"""Reasons the recipient check gives: the residents who cannot be reached."""


def predict(
    rows: Iterable[Recipient | RowError],
    terms: DispatchTerms,
    *,
    directory: AccountDirectory,
    templates: TemplateLibrary,
    catalogue: StaffCatalogue,
    today: dt.date,
    max_body_chars: int,
    progress: Callable[[int], None] | None = None,
) -> Prediction:
    """Run every line through the pipeline's decisions; nothing is sent or stored."""
    prediction = Prediction()
    for chunk in chunked(rows, LOOKUP_CHUNK):
        requests: list[SendCaseV2] = []
        line_of: dict[str, int] = {}
        for row in chunk:
            prediction.lines += 1
            if isinstance(row, RowError):
                prediction.reject(row.line, row.reason, row.detail)
                continue
            line = row.line or prediction.lines
            try:
                request = SendCaseV2(
                    clinic_hsa_id=terms.clinic_hsa_id,
                    sender_hsa_id=terms.sender_hsa_id,
                    template_id=terms.template_id,
                    fragments=list(terms.fragments),
                    personnummer=row.personnummer,
                    fields=row.fields,
                    idempotency_key=f"precheck:{line}",
                )
            except ValidationError as exc:
                prediction.reject(line, Reason.INVALID_PAYLOAD, describe(exc))
                continue
            requests.append(request)
            line_of[request.resolved_case_id()] = line
        validated: list[RecipientValidatedV1] = []
        for decision in recipient_validation.handle(requests, directory):
            if isinstance(decision, Reject):
                prediction.reject(line_of[decision.case_id], decision.reason, decision.detail)
            elif isinstance(decision, Advance) and isinstance(
                decision.next_item, RecipientValidatedV1
            ):
                validated.append(decision.next_item)
        prediction.reachable += len(validated)
        composed = composition.handle(validated, templates, catalogue, today, max_body_chars)
        for decision in composed:
            line = line_of[decision.case_id]
            if isinstance(decision, Reject):
                prediction.reject(line, decision.reason, decision.detail)
            elif terms.attachment_problems:
                reason, detail = terms.attachment_problems[0]
                prediction.reject(line, reason, detail)
            else:
                prediction.would_send += 1
        if progress:
            progress(len(chunk))
    # stage by stage the refusals come out of line order: a reader (and a script) wants it
    prediction.refusals.sort(key=lambda verdict: verdict.line)
    return prediction
