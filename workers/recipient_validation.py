"""Stage 1, recipient validation: can the resident be reached through the 1177 inbox?

Consumes ``SendCase`` (the intake queue); emits ``RecipientValidated`` or rejects the case.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.envelope import origin_message_id
from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import Parsed
from contracts.send_case import SendCaseV2
from workers.adapters.account_directory import Account, AccountDirectory, AccountStatus
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.identity import parse_identity
from workers.log import get_logger
from workers.reasons import Reason
from workers.stage import Advance, Decision, Reject, settle
from workers.store import cases
from workers.store.cases import Transition

STAGE = "recipient-validation"

log = get_logger(__name__)

_STATUS_REASON = {
    AccountStatus.NO_ACCOUNT: Reason.NO_ACCOUNT,
    AccountStatus.BLOCKED: Reason.LOGIN_BLOCKED,
    AccountStatus.DEACTIVATED: Reason.ACCOUNT_DEACTIVATED,
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


def handle(items: Sequence[SendCaseV2], directory: AccountDirectory) -> list[Decision]:
    """Decide each case: reject what cannot be reached, pass the rest on with its channels."""
    decisions: dict[int, Decision] = {}
    to_look_up: dict[int, str] = {}
    for index, item in enumerate(items):
        case_id = item.resolved_case_id()
        verdict = parse_identity(item.personnummer.strip())
        if not verdict.valid or verdict.normalized is None:
            decisions[index] = Reject(case_id, Reason.INVALID_IDENTITY_NUMBER, verdict.detail)
        elif verdict.kind == "samordningsnummer":
            decisions[index] = Reject(
                case_id,
                Reason.SAMORDNINGSNUMMER_NOT_REACHABLE,
                "a samordningsnummer cannot log in to 1177",
                values={"personnummer": verdict.normalized},
            )
        else:
            to_look_up[index] = verdict.normalized
    accounts = directory.lookup_many(sorted(set(to_look_up.values()))) if to_look_up else {}
    for index, number in to_look_up.items():
        item = items[index]
        case_id = item.resolved_case_id()
        account = accounts.get(number, Account(number, AccountStatus.NO_ACCOUNT))
        reason, channels = reachability(account)
        if reason is not None:
            decisions[index] = Reject(case_id, reason, values={"personnummer": number})
            continue
        decisions[index] = Advance(
            case_id,
            (
                Transition(
                    case_id,
                    CaseState.VALIDATED,
                    {"personnummer": number, "channels": ",".join(channels)},
                ),
            ),
            RecipientValidatedV1(
                case_id=case_id,
                clinic_hsa_id=item.clinic_hsa_id,
                priority=item.priority,
                batch_id=item.batch_id,
                sender_hsa_id=item.sender_hsa_id,
                template_id=item.template_id,
                fragments=list(item.fragments),
                free_text=item.free_text,
                fields=dict(item.fields),
                personnummer=number,
                channels=channels,
                attachments=list(item.attachments),
            ),
        )
    return [decisions[i] for i in range(len(items))]


def received_rows(
    items: Sequence[SendCaseV2], correlation_id: str, message_id: str
) -> list[dict[str, object]]:
    """The rows that record the cases as received, and which intake message created them."""
    return [
        {
            "id": item.resolved_case_id(),
            "clinic_hsa_id": item.clinic_hsa_id,
            "sender_hsa_id": item.sender_hsa_id,
            "template_id": item.template_id,
            "personnummer": item.personnummer,
            "idempotency_key": item.idempotency_key,
            "batch_id": item.batch_id,
            "priority": item.priority,
            "correlation_id": correlation_id,
            "intake_message_id": message_id,
        }
        for item in items
    ]


def process(parsed: Parsed, ctx: Context) -> None:
    """Record the cases as received, decide them, record the decisions, emit onward.

    A request whose idempotency key an earlier intake message used is a duplicate and is left
    alone: the same key gives the same case and no second send.
    """
    items = [item for item in parsed.items if isinstance(item, SendCaseV2)]
    origin = origin_message_id(parsed.envelope.message_id)
    with ctx.engine.begin() as conn:
        cases.insert_received(conn, received_rows(items, parsed.envelope.correlation_id, origin))
        ours = cases.first_requested_by(conn, (i.resolved_case_id() for i in items), origin)
    duplicates = [item for item in items if item.resolved_case_id() not in ours]
    if duplicates:
        log.info("duplicate requests left alone", cases=len(duplicates))
    items = [item for item in items if item.resolved_case_id() in ours]
    settle(
        ctx,
        stage=STAGE,
        decisions=handle(items, ctx.directory),
        correlation_id=parsed.envelope.correlation_id,
    )
