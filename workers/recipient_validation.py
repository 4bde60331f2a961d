"""Stage 1, recipient validation: can the resident be reached through the 1177 inbox?

Consumes ``SendCase`` (the intake queue); emits ``RecipientValidated`` or rejects the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts import send_case
from contracts.envelope import origin_message_id
from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import Parsed
from contracts.send_case import SendCaseV2
from workers import case_ownership
from workers.adapters.account_directory import (
    Account,
    AccountDirectory,
    AccountStatus,
    DirectoryRefused,
)
from workers.answer_seal import answer_seal
from workers.attachments import references
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.identity import IdentityKind, parse_identity
from workers.log import get_logger
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.stage import Advance, Decision, Reject, settle
from workers.store import cases
from workers.store.cases import Transition

STAGE = ROUTES[send_case.NAME].stage
SAMORDNINGSNUMMER_DETAIL = "a samordningsnummer cannot log in to 1177"

log = get_logger(__name__)

_STATUS_REASON = {
    AccountStatus.NO_ACCOUNT: Reason.NO_ACCOUNT,
    AccountStatus.BLOCKED: Reason.LOGIN_BLOCKED,
    AccountStatus.DEACTIVATED: Reason.ACCOUNT_DEACTIVATED,
}
UNREACHABLE_DETAIL = {
    Reason.NO_ACCOUNT: "the resident has no 1177 account",
    Reason.LOGIN_BLOCKED: "the resident's 1177 login is blocked",
    Reason.ACCOUNT_DEACTIVATED: "the resident's 1177 account is deactivated",
    Reason.NO_NOTIFICATION_CHANNEL: "the resident has neither SMS nor e-mail notifications on",
}
"""What each unreachable verdict tells the sender (no health information, no identity)."""


@dataclass(frozen=True)
class RecipientCheck:
    """Whether one resident can be reached through the 1177 inbox, and why not.

    The same verdict for the pipeline and for ``omvant recipients check``.
    """

    input: str
    valid: bool
    normalized: str | None
    kind: IdentityKind | None
    reachable: bool
    channels: tuple[str, ...] = ()
    reason: Reason | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The check command's JSON object for this resident."""
        return {
            "input": self.input,
            "valid": self.valid,
            "normalized": self.normalized,
            "kind": self.kind,
            "reachable": self.reachable,
            "channels": list(self.channels),
            "reason": None if self.reason is None else self.reason.value,
            "detail": self.detail,
        }


def reachability(account: Account) -> tuple[Reason | None, list[str]]:
    """Why ``account`` cannot be reached (None if it can), and the channels to notify."""
    reason = _STATUS_REASON.get(account.status)
    if reason is not None:
        return reason, []
    channels: list[str] = [c for c in ("sms", "email") if c in account.channels]
    if not channels:
        return Reason.NO_NOTIFICATION_CHANNEL, []
    return None, channels


def check_recipients(numbers: Sequence[str], directory: AccountDirectory) -> list[RecipientCheck]:
    """Check each number: a valid personnummer, then reachable by the directory's answer.

    Surrounding whitespace is ignored. The directory is asked once, about the distinct valid
    personnummer; a refusal (4xx) rejects those with ``directory-refused``.

    Raises
    ------
    DirectoryUnavailable
        The directory could not answer now (transient): the caller retries.
    """
    verdicts = [parse_identity(number.strip()) for number in numbers]
    to_look_up = sorted(
        {v.normalized for v in verdicts if v.normalized and v.kind == "personnummer"}
    )
    accounts: dict[str, Account] = {}
    refused: str | None = None
    if to_look_up:
        try:
            accounts = directory.lookup_many(to_look_up)
        except DirectoryRefused as exc:
            refused = str(exc)
    checks: list[RecipientCheck] = []
    for number, verdict in zip(numbers, verdicts, strict=True):
        base = (number, verdict.valid, verdict.normalized, verdict.kind)
        if not verdict.valid or verdict.normalized is None:
            reason, detail = Reason.INVALID_IDENTITY_NUMBER, verdict.detail
            checks.append(RecipientCheck(*base, False, (), reason, detail))
        elif verdict.kind == "samordningsnummer":
            reason = Reason.SAMORDNINGSNUMMER_NOT_REACHABLE
            checks.append(RecipientCheck(*base, False, (), reason, SAMORDNINGSNUMMER_DETAIL))
        elif refused is not None:
            checks.append(RecipientCheck(*base, False, (), Reason.DIRECTORY_REFUSED, refused))
        else:
            account = accounts.get(verdict.normalized)
            if account is None:
                account = Account(verdict.normalized, AccountStatus.NO_ACCOUNT)
            why, channels = reachability(account)
            detail = UNREACHABLE_DETAIL.get(why) if why is not None else None
            checks.append(RecipientCheck(*base, why is None, tuple(channels), why, detail))
    return checks


def handle(items: Sequence[SendCaseV2], directory: AccountDirectory) -> list[Decision]:
    """Decide each case: reject what cannot be reached, pass the rest on with its channels."""
    checks = check_recipients([item.personnummer for item in items], directory)
    decisions: list[Decision] = []
    for item, check in zip(items, checks, strict=True):
        case_id = item.resolved_case_id()
        number = check.normalized
        if check.reason is not None or number is None:
            values: dict[str, object] = {"personnummer": number} if number else {}
            reason = check.reason or Reason.INVALID_IDENTITY_NUMBER
            decisions.append(Reject(case_id, reason, check.detail, values=values))
            continue
        channels = list(check.channels)
        decisions.append(
            Advance(
                case_id,
                (
                    Transition(
                        case_id,
                        CaseState.VALIDATED,
                        {"personnummer": number, "channels": ",".join(channels)},
                    ),
                ),
                validated_record(item, case_id=case_id, personnummer=number, channels=channels),
            )
        )
    return decisions


def validated_record(
    request: SendCaseV2, *, case_id: str, personnummer: str, channels: list[str]
) -> RecipientValidatedV1:
    """What recipient validation passes on for a reachable case: its request with the
    normalised identity number and the resident's channels (the sweep rebuilds it the same way
    from the sealed request and the case row)."""
    return RecipientValidatedV1(
        case_id=case_id,
        clinic_hsa_id=request.clinic_hsa_id,
        priority=request.priority,
        batch_id=request.batch_id,
        sender_hsa_id=request.sender_hsa_id,
        template_id=request.template_id,
        fragments=list(request.fragments),
        free_text=request.free_text,
        fields=dict(request.fields),
        personnummer=personnummer,
        channels=channels,
        attachments=list(request.attachments),
    )


def intake_references(items: Sequence[SendCaseV2]) -> list[tuple[str, str]]:
    """Each case's blobs, recorded at intake so none is collected while the case is live."""
    return [(item.resolved_case_id(), ref.sha256) for item in items for ref in item.attachments]


def process(parsed: Parsed, ctx: Context) -> None:
    """Record the new cases as received, decide them, record the decisions, emit onward.

    The intake rules of ``workers.case_ownership`` apply first: a request never touches a case
    that is not its own (another clinic's, or another key's), a duplicate of its clinic and key
    is left alone, and one that names another clinic's dispatch or blob is a case of its own
    rejected at once.
    """
    items = [item for item in parsed.items if isinstance(item, SendCaseV2)]
    origin = origin_message_id(parsed.envelope.message_id)
    correlation_id = parsed.envelope.correlation_id
    seal = answer_seal(ctx.settings)
    with ctx.engine.begin() as conn:
        claimed = case_ownership.claim(
            conn,
            items,
            rows_for=lambda chosen: case_ownership.received_rows(
                chosen, correlation_id, origin, seal
            ),
            origin=origin,
            stored=lambda sha256: ctx.blobs.size(sha256) is not None,
        )
        references.record(conn, intake_references(claimed.ours))
        for item in claimed.unplaceable:
            cases.record_unreadable(
                conn,
                queue=STAGE,
                reason=Reason.CASE_ID_CONFLICT,
                detail=f"case id {item.resolved_case_id()} of {item.clinic_hsa_id} is taken",
                body=item.model_dump_json(),
            )
    if claimed.duplicates:
        log.info("duplicate requests left alone", cases=len(claimed.duplicates))
    if claimed.unplaceable:
        log.warning("requests with a taken case id recorded", cases=len(claimed.unplaceable))
    settle(
        ctx,
        stage=STAGE,
        decisions=[*claimed.rejects, *handle(claimed.ours, ctx.directory)],
        correlation_id=correlation_id,
    )
