"""Parse any supported contract version into the latest model; refuse the rest clearly."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import (
    attachments_cleared,
    message_composed,
    notification_queued,
    read_receipt,
    recipient_validated,
    send_case,
)
from contracts.envelope import Envelope, new_message_id
from contracts.upcasters import UPCASTERS

VERSIONS: dict[str, dict[int, type[BaseModel]]] = {
    send_case.NAME: {1: send_case.SendCaseV1, 2: send_case.SendCaseV2},
    recipient_validated.NAME: {1: recipient_validated.RecipientValidatedV1},
    message_composed.NAME: {1: message_composed.MessageComposedV1},
    attachments_cleared.NAME: {1: attachments_cleared.AttachmentsClearedV1},
    notification_queued.NAME: {1: notification_queued.NotificationQueuedV1},
    read_receipt.NAME: {1: read_receipt.ReadReceiptV1, 2: read_receipt.ReadReceiptV2},
}
"""Every published contract version. A published version is frozen: add, never edit."""


class ContractError(ValueError):
    """A message that cannot be read as any supported contract.

    Attributes
    ----------
    reason:
        A stable reason code: ``malformed-message``, ``unknown-contract``,
        ``unknown-contract-version`` or ``invalid-payload``.
    detail:
        What exactly was wrong, for people; never contains message content.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Parsed:
    """An envelope and its payload as models of the contract's latest version."""

    envelope: Envelope
    items: list[BaseModel]


def latest_version(contract: str) -> int:
    """The newest published version of ``contract``.

    Raises
    ------
    ContractError
        ``unknown-contract`` if no such contract exists.
    """
    versions = VERSIONS.get(contract)
    if versions is None:
        raise ContractError("unknown-contract", f"no contract named {contract[:64]!r}")
    return max(versions)


def describe(error: ValidationError) -> str:
    """The first few validation errors as ``field: message``, never the values."""
    return _describe(error)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def upcast(contract: str, version: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """Step one record of ``contract`` at ``version`` forward to the latest version."""
    data = dict(record)
    latest = latest_version(contract)
    while version < latest:
        data = UPCASTERS[(contract, version)](data)
        version += 1
    return data


def read_record(contract: str, version: int, record: Mapping[str, Any]) -> BaseModel:
    """One record of ``contract`` at ``version`` as the latest version's model: validated as
    the version it claims to be, upcast, and validated as the latest (once, when it is the
    latest already). Every reader of records (stages, the intake bridge, ``omvant push``)
    reads them here.

    Raises
    ------
    pydantic.ValidationError
        The record is not valid at its version (or, upcast, at the latest).
    KeyError
        No such contract or version.
    """
    versions = VERSIONS[contract]
    model, latest_model = versions[version], versions[max(versions)]
    if model is not latest_model or not isinstance(record, Mapping):
        model.model_validate(record)  # a record that is no object fails here, as itself
    return latest_model.model_validate(upcast(contract, version, record))


def parse(raw: str | bytes | Mapping[str, Any]) -> Parsed:
    """Read a message: JSON text or an already decoded mapping.

    Returns
    -------
    Parsed
        The envelope and its records as the latest version's models.

    Raises
    ------
    ContractError
        When the message is not JSON, not an envelope, names an unknown contract or version,
        or a record does not validate against its version.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError("malformed-message", f"not JSON: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ContractError("malformed-message", "a message must be a JSON object")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise ContractError("malformed-message", _describe(exc)) from None
    versions = VERSIONS.get(envelope.contract)
    if versions is None:
        raise ContractError("unknown-contract", f"no contract named {envelope.contract!r}")
    model = versions.get(envelope.version)
    if model is None:
        raise ContractError(
            "unknown-contract-version",
            f"{envelope.contract} has versions {sorted(versions)}, not {envelope.version}",
        )
    if model is versions[max(versions)]:
        try:  # the latest version: the whole chunk in one call (what a stage's hop costs)
            return Parsed(
                envelope=envelope, items=_chunk_of(model).validate_python(envelope.payload)
            )
        except ValidationError:
            pass  # the record-by-record reading below names the record that is wrong
    items: list[BaseModel] = []
    for index, record in enumerate(envelope.payload):
        try:
            items.append(read_record(envelope.contract, envelope.version, record))
        except ValidationError as exc:
            raise ContractError("invalid-payload", f"record {index}: {_describe(exc)}") from None
    return Parsed(envelope=envelope, items=items)


@functools.cache
def _chunk_of(model: type[BaseModel]) -> TypeAdapter[list[BaseModel]]:
    """Validates and dumps a chunk of ``model`` records in one call each."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def envelope_for(
    items: Sequence[BaseModel],
    *,
    correlation_id: str | None = None,
    case_ids: Sequence[str] | None = None,
    message_id: str | None = None,
) -> Envelope:
    """Wrap records of one latest-version contract in a new envelope."""
    if not items:
        raise ValueError("an envelope carries at least one record")
    kind = type(items[0])
    name, version = contract_of(kind)
    if case_ids is None:
        case_ids = [_case_id_of(item) for item in items]
        case_ids = [c for c in case_ids if c]
    extra: dict[str, Any] = {"correlation_id": correlation_id} if correlation_id else {}
    if message_id:
        extra["message_id"] = message_id
    return Envelope(
        contract=name,
        version=version,
        case_ids=list(case_ids),
        payload=[item.model_dump(mode="json") for item in items],
        **extra,
    )


def envelope_data(
    items: Sequence[BaseModel],
    *,
    correlation_id: str,
    message_id: str | None = None,
) -> dict[str, Any]:
    """``envelope_for(items, ...).model_dump(mode="json")``, the same JSON, at a fraction of
    the cost: the records are dumped in one call and not validated again as the envelope's
    payload (they are validated models; the receiver validates the whole message once, in
    ``parse``). The envelope's own fields are still validated here."""
    if not items:
        raise ValueError("an envelope carries at least one record")
    name, version = contract_of(type(items[0]))
    case_ids = [c for c in map(_case_id_of, items) if c]
    header = {
        "message_id": message_id or new_message_id(),
        "contract": name,
        "version": version,
        "correlation_id": correlation_id,
        "case_ids": case_ids,
        "occurred_at": dt.datetime.now(dt.UTC),
    }
    checked = Envelope.model_validate({**header, "payload": [{}] * len(items)})
    return {
        **checked.model_dump(mode="json", exclude={"payload"}),
        "payload": _chunk_of(type(items[0])).dump_python(list(items), mode="json"),
    }


def _case_id_of(item: BaseModel) -> str:
    # asked of the class: a pydantic model's missing attribute is slow to be told about
    if callable(getattr(type(item), "resolved_case_id", None)):
        return str(item.resolved_case_id())  # type: ignore[attr-defined]
    return str(getattr(item, "case_id", "") or "")


def contract_of(model: type[BaseModel]) -> tuple[str, int]:
    """The contract name and version a model class was published as."""
    found = _PUBLISHED.get(model)
    if found is None:
        raise KeyError(f"{model.__name__} is not a published contract version")
    return found


_PUBLISHED = {cls: (name, version) for name, vs in VERSIONS.items() for version, cls in vs.items()}
