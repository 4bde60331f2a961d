"""The dry run of a dispatch: the recipient pre-check for a whole list, without sending.

It runs the pipeline's own recipient-validation decision (``recipient_validation.handle``)
against the configured account directory, so its counts are what the dispatch would get.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from contracts.send_case import SendCaseV2
from producers.client import Recipient, chunked
from producers.dispatch_file import RowError
from workers import recipient_validation
from workers.adapters.account_directory import AccountDirectory
from workers.reasons import Reason
from workers.stage import Reject

REACHABLE = "reachable"
LOOKUP_CHUNK = 1000


def precheck(
    rows: Iterable[Recipient | RowError],
    directory: AccountDirectory,
    *,
    template_id: str,
    clinic_hsa_id: str,
    sender_hsa_id: str,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """How many recipients are reachable, and how many are not, per reason code."""
    counts: Counter[str] = Counter()
    for chunk in chunked(rows, LOOKUP_CHUNK):
        requests = []
        for index, row in enumerate(chunk):
            if isinstance(row, RowError):
                counts[row.reason] += 1
                continue
            try:
                requests.append(
                    SendCaseV2(
                        clinic_hsa_id=clinic_hsa_id,
                        sender_hsa_id=sender_hsa_id,
                        template_id=template_id,
                        personnummer=row.personnummer,
                        fields=row.fields,
                        idempotency_key=f"precheck:{index}",
                    )
                )
            except ValidationError:
                counts[Reason.INVALID_PAYLOAD] += 1
        for decision in recipient_validation.handle(requests, directory):
            counts[decision.reason if isinstance(decision, Reject) else REACHABLE] += 1
        if progress:
            progress(len(chunk))
    return counts
