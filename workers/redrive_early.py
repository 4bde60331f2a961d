"""Re-drive cases stalled at ``received``, ``validated`` or ``composed``: the stage message
each waits for, built again from the record.

Since migration 0017 a case row keeps the request it was made from, sealed with the answer key
(``case_bodies``, part ``request``, written by recipient validation with the case row). From it
and the row the sweep rebuilds what the case waits for:

- ``received`` (recipient validation has not decided it): the request itself, sent to
  recipient validation again under the intake message id that created the case, so the stage
  takes the case as its own (``case_ownership``: a request of another message is a duplicate);
- ``validated`` (composition has not run): its ``RecipientValidated``, from the request and
  the resident's number and channels recipient validation recorded;
- ``composed`` (the attachment check has not run): its ``MessageComposed``, from the sealed
  content composition wrote, the pinned template (``answerable``, the channels narrowed as
  composition did) and the request's attachments. A composed case without attachments needs no
  request: the content and the row are all its message carries.

Sending again is idempotent: each stage treats a case already past its transition as the
duplicate it is (``cases.apply`` holds an applied transition and emits again, composition
re-composes the same pinned version, inbox delivery takes a message once per delivery key,
notifications once per ledger key). A case the record cannot rebuild is counted, never sent:
``no-request-<state>`` (made before its request was kept) and ``not-rebuilt-<state>`` (its
template gone, its sealed record unreadable).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ValidationError

from contracts.message_composed import MessageComposedV1
from contracts.send_case import SendCaseV2
from workers.answer_seal import AnswerSeal, AnswerUnreadable, answer_seal
from workers.bootstrap import Context
from workers.case_states import CaseState
from workers.composition import CompositionError
from workers.log import get_logger
from workers.recipient_validation import validated_record
from workers.redrive import Row, composed_fields, rows_at
from workers.stage import emit

log = get_logger(__name__)

EARLY = (CaseState.RECEIVED, CaseState.VALIDATED, CaseState.COMPOSED)


class NoRequest(Exception):
    """The case was made before its request was kept."""


def _request_of(row: Row, seal: AnswerSeal) -> SendCaseV2 | None:
    if not row.request:
        return None
    return SendCaseV2.model_validate_json(seal.open(str(row.request)))


def _received(row: Row, seal: AnswerSeal) -> BaseModel:
    request = _request_of(row, seal)
    if request is None:
        raise NoRequest
    return request


def _validated(row: Row, seal: AnswerSeal) -> BaseModel:
    request = _request_of(row, seal)
    if request is None:
        raise NoRequest
    return validated_record(
        request,
        case_id=row.id,
        personnummer=str(row.personnummer),
        channels=[c for c in str(row.channels or "").split(",") if c],
    )


def _composed(ctx: Context, row: Row, seal: AnswerSeal, *, has_files: bool) -> BaseModel:
    request = _request_of(row, seal)
    if request is None and has_files:
        raise NoRequest  # the attachments as sent are only in the request
    template = ctx.templates.get(str(row.template_id), row.template_version)
    if template is None or not row.content:
        raise ValueError("no template or no content")
    content = json.loads(seal.open(str(row.content)))
    return MessageComposedV1(
        **composed_fields(row, template, content),
        attachments=list(request.attachments) if request is not None else [],
    )


def _rebuild(
    ctx: Context, state: CaseState, row: Row, seal: AnswerSeal, has_files: bool
) -> BaseModel:
    if state == CaseState.RECEIVED:
        return _received(row, seal)
    if state == CaseState.VALIDATED:
        return _validated(row, seal)
    return _composed(ctx, row, seal, has_files=has_files)


def redrive_early(ctx: Context, stalled: Mapping[str, Sequence[str]]) -> Counter[str]:
    """Send the stalled received, validated and composed cases' stage messages again, on the
    process's broker; count ``redriven-<state>``, ``no-request-<state>``,
    ``not-rebuilt-<state>`` and (the broker away) ``not-sent-<state>``."""
    counts: Counter[str] = Counter()
    seal = answer_seal(ctx.settings)
    for state in EARLY:
        ids = stalled.get(state.value, [])
        if not ids:
            continue
        rows, with_files = rows_at(ctx, state, ids)
        for row in rows:
            try:
                record = _rebuild(ctx, state, row, seal, row.id in with_files)
            except NoRequest:
                counts[f"no-request-{state.value}"] += 1
                continue
            except (AnswerUnreadable, CompositionError, ValueError, KeyError, ValidationError):
                counts[f"not-rebuilt-{state.value}"] += 1
                continue
            # received: under the message that made the case, so recipient validation owns it
            message_id = str(row.intake_message_id) if state == CaseState.RECEIVED else None
            try:
                emit(
                    ctx,
                    [record],
                    correlation_id=str(row.correlation_id or "sweep"),
                    message_id=message_id,
                )
            except Exception as exc:  # noqa: BLE001 - the broker away: the next run tries again
                counts[f"not-sent-{state.value}"] += 1
                log.warning("stalled case not sent: the broker", error=type(exc).__name__)
                continue
            counts[f"redriven-{state.value}"] += 1
    not_rebuilt = {k: v for k, v in counts.items() if not k.startswith("redriven-")}
    if not_rebuilt:
        log.warning(
            "stalled cases whose record cannot rebuild their message; not re-driven",
            **{k.replace("-", "_"): v for k, v in sorted(not_rebuilt.items())},
        )
    redriven = {k: v for k, v in counts.items() if k.startswith("redriven-")}
    if redriven:
        log.warning(
            "stalled cases sent to their stage again",
            **{k.replace("-", "_"): v for k, v in sorted(redriven.items())},
        )
    return counts
