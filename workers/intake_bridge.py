"""The intake bridge: plain JSON SendCase records from any language into the pipeline.

Integrations publish to the ``omvant.intake`` AMQP exchange (or add to the ``omvant.intake``
Redis stream) one JSON SendCase record, or a JSON array of up to 1,000 of them, per message,
signed with HMAC-SHA256 under their own key id (``docs/intake.md``). The bridge checks the
signature, validates the records against the version the message names, applies the
producer's idempotency keys within the configured window, and puts the new cases on the
recipient-validation lanes in chunks. Whatever it refuses goes to ``omvant.intake.rejects``
with a machine-readable error and the original body: never lost, never a crash.
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from contracts.registry import VERSIONS, upcast
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from workers.batch_control import cache_for
from workers.log import get_logger
from workers.reasons import Reason
from workers.settings import Settings
from workers.store import intake_keys
from workers.store.cases import utcnow

log = get_logger(__name__)

KEY_ID = "omvant-key-id"
SIGNATURE = "omvant-signature"
CONTRACT_VERSION = "omvant-contract-version"
MAX_RECORDS = 1000


@dataclass(frozen=True)
class IntakeError:
    """Why a message was refused: a reason code and the field and rule that failed."""

    reason: str
    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class Accepted:
    """A message that passed: who sent it and its records as the latest SendCase."""

    integration: str
    requests: list[SendCaseV2]


@dataclass
class Delivery:
    """One message as a source received it; ``token`` is what the source needs to ack it."""

    body: bytes
    headers: dict[str, str]
    token: Any = None


def sign(body: bytes, secret: str) -> str:
    """The signature an integration puts in ``omvant-signature``: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _validation_error(exc: ValidationError, index: int | None) -> IntakeError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    if index is not None:
        where = f"[{index}].{where}"
    return IntakeError(Reason.INVALID_PAYLOAD, where, str(first["type"]), str(first["msg"]))


def authenticate(
    body: bytes, headers: Mapping[str, str], keys: Mapping[str, str]
) -> str | IntakeError:
    """The integration (key id) that signed ``body``, or why the signature does not hold."""
    key_id = headers.get(KEY_ID)
    signature = headers.get(SIGNATURE)
    if not key_id or not signature:
        return IntakeError(
            Reason.SIGNATURE_MISSING,
            SIGNATURE if key_id else KEY_ID,
            "required",
            f"sign each message: headers {KEY_ID} and {SIGNATURE}",
        )
    secret = keys.get(key_id)
    if secret is None:
        return IntakeError(Reason.UNKNOWN_KEY_ID, KEY_ID, "known-key", "no integration has it")
    given = signature.removeprefix("sha256=").strip().lower()
    if not hmac.compare_digest(given, sign(body, secret)):
        return IntakeError(
            Reason.SIGNATURE_INVALID, SIGNATURE, "hmac-sha256", "does not match the body"
        )
    return key_id


def _version_of(headers: Mapping[str, str]) -> int | IntakeError:
    raw_version = headers.get(CONTRACT_VERSION)
    if not raw_version:
        return IntakeError(
            Reason.CONTRACT_VERSION_MISSING, CONTRACT_VERSION, "required", "name the version"
        )
    if not raw_version.isdigit() or int(raw_version) not in VERSIONS[SEND_CASE]:
        supported = sorted(VERSIONS[SEND_CASE])
        return IntakeError(
            Reason.UNKNOWN_CONTRACT_VERSION,
            CONTRACT_VERSION,
            "supported-version",
            f"SendCase has versions {supported}",
        )
    return int(raw_version)


def read_records(body: bytes, headers: Mapping[str, str]) -> list[SendCaseV2] | IntakeError:
    """The message's records, validated against the version it names, as the latest model."""
    version = _version_of(headers)
    if isinstance(version, IntakeError):
        return version
    model = VERSIONS[SEND_CASE][version]
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: json gives up on deep nesting; one hostile body must not stop the
        # bridge (it would be redelivered and stop it again on every restart).
        return IntakeError(Reason.MALFORMED_MESSAGE, "(body)", "json", f"not JSON: {exc}")
    records = data if isinstance(data, list) else [data]
    if not records or len(records) > MAX_RECORDS:
        return IntakeError(
            Reason.MALFORMED_MESSAGE, "(body)", "records", f"1 to {MAX_RECORDS} records"
        )
    requests: list[SendCaseV2] = []
    for index, record in enumerate(records):
        at = index if isinstance(data, list) else None
        if not isinstance(record, dict):
            where = f"[{index}]" if at is not None else "(body)"
            return IntakeError(Reason.MALFORMED_MESSAGE, where, "object", "a record is an object")
        try:
            model.model_validate(record)
            requests.append(SendCaseV2.model_validate(upcast(SEND_CASE, version, record)))
        except ValidationError as exc:
            return _validation_error(exc, at)
    return requests


def check(
    body: bytes,
    headers: Mapping[str, str],
    keys: Mapping[str, str],
    clinics: Mapping[str, Sequence[str]],
) -> Accepted | IntakeError:
    """Authenticate, then validate one message; the pure decision of the bridge."""
    who = authenticate(body, headers, keys)
    if isinstance(who, IntakeError):
        return who
    records = read_records(body, headers)
    if isinstance(records, IntakeError):
        return records
    refused = outside_allowed_clinics(who, records, clinics)
    if refused is not None:
        return refused
    return Accepted(who, records)


def outside_allowed_clinics(
    who: str, records: Sequence[SendCaseV2], clinics: Mapping[str, Sequence[str]]
) -> IntakeError | None:
    """A key restricted to some clinics is held to them wherever a unit appears in a record:
    the clinic, and a sender that is one of the configured units rather than a person. (Its
    batches and blobs are held to the record's own clinic by the intake stage:
    ``batch-not-owned``, ``attachment-not-owned``.)"""
    allowed = clinics.get(who)
    if not allowed:
        return None
    units = {unit for listed in clinics.values() for unit in listed}
    for index, request in enumerate(records):
        for name in ("clinic_hsa_id", "sender_hsa_id"):
            value = str(getattr(request, name))
            if value not in allowed and (name == "clinic_hsa_id" or value in units):
                return IntakeError(
                    Reason.CLINIC_NOT_ALLOWED,
                    f"[{index}].{name}",
                    "integration-clinics",
                    f"{who} may not send for {value}",
                )
    return None


def reject_record(delivery: Delivery, error: IntakeError) -> bytes:
    """What goes on the rejects queue: the error and the original body, byte for byte."""
    record: dict[str, Any] = {
        "reason": error.reason,
        "error": {"field": error.field, "rule": error.rule, "message": error.message},
        "headers": {k: v for k, v in delivery.headers.items() if k != SIGNATURE},
        "rejected_at": utcnow().isoformat(),
    }
    try:
        record["body"] = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(delivery.body).decode()
    return json.dumps(record, ensure_ascii=False).encode()


class IntakeSource(abc.ABC):
    """Where the bridge reads from: the AMQP intake queue or the Redis intake stream."""

    @abc.abstractmethod
    def receive(self, max_count: int, timeout: float) -> list[Delivery]:
        """Up to ``max_count`` messages, waiting at most ``timeout`` seconds for the first."""

    @abc.abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """The messages are handled: the source may forget them."""

    @abc.abstractmethod
    def reject(self, delivery: Delivery, record: bytes) -> None:
        """Put ``record`` on the rejects queue, then forget the message."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""


@dataclass
class BridgeCounts:
    """What the bridge has done since it started."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class IntakeBridge:
    """Moves messages from a source into the pipeline, a buffer of them at a time."""

    def __init__(
        self,
        source: IntakeSource,
        *,
        settings: Settings,
        broker: Any,
        engine: sa.Engine,
        buffer: int = 500,
    ) -> None:
        self.source = source
        self.settings = settings
        self.broker = broker
        self.engine = engine
        self.buffer = buffer
        self.counts = BridgeCounts()
        self.window = dt.timedelta(days=settings.intake_window_days)

    def run_once(self, timeout: float = 0.2) -> int:
        """Handle what arrives within ``timeout``; returns how many messages were handled."""
        from producers.intake import push_chunk

        deliveries = self.source.receive(self.buffer, timeout)
        if not deliveries:
            return 0
        accepted: list[tuple[Delivery, Accepted]] = []
        for delivery in deliveries:
            verdict = check(
                delivery.body,
                delivery.headers,
                self.settings.intake_keys,
                self.settings.intake_clinics,
            )
            if isinstance(verdict, IntakeError):
                self.source.reject(delivery, reject_record(delivery, verdict))
                self.counts.rejected += 1
                self.counts.reasons[verdict.reason] = self.counts.reasons.get(verdict.reason, 0) + 1
                log.warning("intake message refused", reason=verdict.reason, field=verdict.field)
            else:
                accepted.append((delivery, verdict))
        pairs = [
            (intake_keys.scoped_to(request, a.integration), a.integration)
            for _d, a in accepted
            for request in a.requests
        ]
        with self.engine.connect() as conn:
            claims = intake_keys.claim(conn, [p[0] for p in pairs], window=self.window)
        to_send = [c.request for c in claims if c.send]
        self.counts.duplicates += len(claims) - len(to_send)
        by_batch: dict[str | None, list[SendCaseV2]] = {}
        for request in to_send:
            by_batch.setdefault(request.batch_id, []).append(request)
        views = cache_for(self.engine).views(by_batch)
        size = max(1, self.settings.chunk_size)
        for batch_id, group in by_batch.items():
            view = views.get(batch_id) if batch_id else None
            for start in range(0, len(group), size):
                push_chunk(
                    self.broker,
                    group[start : start + size],
                    correlation_id=batch_id or f"intake-{utcnow():%Y%m%d}",
                    prefix=self.settings.queue_prefix,
                    batch_lane=view.lane if view else None,
                )
        with self.engine.begin() as conn:
            intake_keys.record(conn, [(c, who) for c, (_r, who) in zip(claims, pairs, strict=True)])
        self.source.ack([d for d, _a in accepted])
        self.counts.accepted += len(to_send)
        return len(deliveries)

    def run(self, stop: threading.Event) -> BridgeCounts:
        """Run until ``stop`` is set."""
        while not stop.is_set():
            self.run_once()
        return self.counts
