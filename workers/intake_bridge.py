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
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from pydantic import ValidationError

from contracts.registry import VERSIONS, read_record
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from workers import rejections
from workers.batch_control import BatchCache
from workers.enqueue import push_chunk
from workers.log import get_logger
from workers.queues import INTAKE_EXCHANGE, queue_name
from workers.reasons import Reason
from workers.settings import Settings
from workers.store import api_keys, intake_keys
from workers.store.cases import utcnow
from workers.store.deliveries import finished, started
from workers.transient import is_outage
from workers.wire import Refused, as_bytes, decompress, header_text, printable, text_encoding

log = get_logger(__name__)

KEY_ID = "omvant-key-id"
SIGNATURE = "omvant-signature"
CONTRACT_VERSION = "omvant-contract-version"
MESSAGE_ID = "message-id"
"""The producer's own id of its message: AMQP's ``message_id`` property, or a ``message-id``
field of a Redis stream entry. Kept with a reject so the sender can trace it."""
MAX_RECORDS = 1000
CREDENTIALS_SECONDS = 5.0
"""How long the bridge trusts its copy of the API keys (a revoked key stops within this)."""


@dataclass(frozen=True)
class IntakeError:
    """Why a message was refused: a reason code and the field and rule that failed.

    ``integration`` is the key id whose signature held, ``None`` when the sender did not
    authenticate: it decides what the reject keeps (``workers/rejections.py``)."""

    reason: str
    field: str
    rule: str
    message: str
    integration: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A message that passed: who sent it and its records as the latest SendCase."""

    integration: str
    requests: list[SendCaseV2]


@dataclass
class Delivery:
    """One message as a source received it, untouched: the body as bytes or text, the headers
    with raw values, the declared content encoding; ``token`` is what the source acks with."""

    body: bytes | str
    headers: Mapping[str, object]
    token: Any = None
    content_encoding: object = None
    redelivered: bool = False
    """The broker says it handed this message out before (AMQP's flag, or a Redis stream
    entry taken over from a consumer that did not acknowledge it)."""
    undecodable: tuple[str, ...] = ()
    """Headers the source could not read as text (AMQP properties that are not UTF-8)."""


@dataclass(frozen=True)
class IntakeRules:
    """What the bridge checks a message against."""

    keys: Mapping[str, str]
    clinics: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_body_bytes: int = 16 * 1024 * 1024


def sign(body: bytes, secret: str) -> str:
    """The signature an integration puts in ``omvant-signature``: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _validation_error(exc: ValidationError, index: int | None, who: str) -> IntakeError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    if index is not None:
        where = f"[{index}].{where}"
    return IntakeError(Reason.INVALID_PAYLOAD, where, str(first["type"]), str(first["msg"]), who)


_SIGNATURE_FORM = re.compile(r"[0-9a-f]{64}")
_VERSION_FORM = re.compile(r"[0-9]{1,4}")


def authenticate(
    body: bytes, headers: Mapping[str, object], keys: Mapping[str, str]
) -> str | IntakeError:
    """The integration (key id) that signed ``body``, or why the signature does not hold."""
    key_id = header_text(headers.get(KEY_ID))
    signature = header_text(headers.get(SIGNATURE))
    if not key_id or not signature:
        return IntakeError(
            Reason.SIGNATURE_MISSING,
            SIGNATURE if key_id else KEY_ID,
            "required",
            f"sign each message: headers {KEY_ID} and {SIGNATURE}",
        )
    secret = keys.get(key_id) if len(key_id) <= 128 else None
    if secret is None:
        return IntakeError(Reason.UNKNOWN_KEY_ID, KEY_ID, "known-key", "no integration has it")
    given = signature.removeprefix("sha256=").strip().lower()
    if not _SIGNATURE_FORM.fullmatch(given):
        return IntakeError(
            Reason.SIGNATURE_INVALID, SIGNATURE, "hex-sha256", "64 hex digits of HMAC-SHA256"
        )
    if not hmac.compare_digest(given, sign(body, secret)):
        return IntakeError(
            Reason.SIGNATURE_INVALID, SIGNATURE, "hmac-sha256", "does not match the body"
        )
    return key_id


def _version_of(headers: Mapping[str, object], who: str) -> int | IntakeError:
    if headers.get(CONTRACT_VERSION) in (None, "", b""):
        return IntakeError(
            Reason.CONTRACT_VERSION_MISSING, CONTRACT_VERSION, "required", "name the version", who
        )
    raw_version = header_text(headers.get(CONTRACT_VERSION)) or ""
    supported = sorted(VERSIONS[SEND_CASE])
    if not _VERSION_FORM.fullmatch(raw_version):
        too_long = raw_version.isascii() and raw_version.isdigit()
        return IntakeError(
            Reason.UNKNOWN_CONTRACT_VERSION,
            CONTRACT_VERSION,
            "max-digits" if too_long else "ascii-digits",
            f"a version is 1 to 4 ASCII digits; SendCase has versions {supported}",
            who,
        )
    if int(raw_version) not in VERSIONS[SEND_CASE]:
        return IntakeError(
            Reason.UNKNOWN_CONTRACT_VERSION,
            CONTRACT_VERSION,
            "supported-version",
            f"SendCase has versions {supported}",
            who,
        )
    return int(raw_version)


def _json(body: bytes, encoding: str | None) -> Any:
    if encoding is not None and not encoding.startswith("utf-"):
        try:
            return json.loads(body.decode(encoding))
        except UnicodeDecodeError as exc:
            raise Refused(
                Reason.BODY_UNDECODABLE, "(body)", encoding, f"not {encoding}: {exc.reason}"
            ) from None
    return json.loads(body)


def read_records(
    body: bytes, headers: Mapping[str, object], *, who: str = "", encoding: str | None = None
) -> list[SendCaseV2] | IntakeError:
    """The message's records, validated against the version it names, as the latest model."""
    version = _version_of(headers, who)
    if isinstance(version, IntakeError):
        return version
    try:
        data = _json(body, encoding)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: json gives up on deep nesting; one hostile body must not stop the
        # bridge (it would be redelivered and stop it again on every restart).
        message = f"not JSON: {exc}" if not isinstance(exc, RecursionError) else "nested too deep"
        return IntakeError(Reason.MALFORMED_MESSAGE, "(body)", "json", message[:300], who)
    records = data if isinstance(data, list) else [data]
    if not records or len(records) > MAX_RECORDS:
        return IntakeError(
            Reason.MALFORMED_MESSAGE, "(body)", "records", f"1 to {MAX_RECORDS} records", who
        )
    requests: list[SendCaseV2] = []
    for index, record in enumerate(records):
        at = index if isinstance(data, list) else None
        if not isinstance(record, dict):
            where = f"[{index}]" if at is not None else "(body)"
            return IntakeError(
                Reason.MALFORMED_MESSAGE, where, "object", "a record is an object", who
            )
        try:
            requests.append(cast(SendCaseV2, read_record(SEND_CASE, version, record)))
        except ValidationError as exc:
            return _validation_error(exc, at, who)
    return requests


def _undecodable(delivery: Delivery, rules: IntakeRules) -> IntakeError:
    """A message with a header its source could not read as text: refused, naming it (with
    the sender's key id when the signature holds, so the reject keeps what it may)."""
    signed = authenticate(as_bytes(delivery.body, None), delivery.headers, rules.keys)
    return IntakeError(
        Reason.HEADER_UNDECODABLE,
        delivery.undecodable[0],
        "utf-8",
        "a header or property must be UTF-8 text",
        signed if isinstance(signed, str) else None,
    )


def _evaluate(delivery: Delivery, rules: IntakeRules) -> Accepted | IntakeError:
    headers = delivery.headers
    encoding = text_encoding(delivery.content_encoding)
    body = as_bytes(delivery.body, encoding)
    if len(body) > rules.max_body_bytes:
        return IntakeError(
            Reason.MESSAGE_TOO_LARGE,
            "(body)",
            "max-bytes",
            f"a message is at most {rules.max_body_bytes} bytes",
        )
    who = authenticate(body, headers, rules.keys)
    if isinstance(who, IntakeError):
        return who
    try:
        body = decompress(body, headers.get("compression"), rules.max_body_bytes)
    except Refused as refused:
        return IntakeError(refused.reason, refused.field, refused.rule, refused.message, who)
    records = read_records(body, headers, who=who, encoding=encoding)
    if isinstance(records, IntakeError):
        return records
    outside = outside_allowed_clinics(who, records, rules.clinics)
    if outside is not None:
        return outside
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
                    who,
                )
    return None


def evaluate(delivery: Delivery, rules: IntakeRules) -> Accepted | IntakeError:
    """Decode, authenticate and validate one message as its source gave it: the pure decision
    of the bridge. It never raises: whatever the message holds ends in a verdict."""
    try:
        if delivery.undecodable:
            return _undecodable(delivery, rules)
        return _evaluate(delivery, rules)
    except Refused as refused:
        return IntakeError(refused.reason, refused.field, refused.rule, refused.message)
    except Exception as exc:  # noqa: BLE001 - a message must never stop the bridge
        return IntakeError(
            Reason.MALFORMED_MESSAGE, "(message)", "readable", f"unreadable: {type(exc).__name__}"
        )


def check(
    body: bytes,
    headers: Mapping[str, object],
    keys: Mapping[str, str],
    clinics: Mapping[str, Sequence[str]],
) -> Accepted | IntakeError:
    """Authenticate, then validate one message given as bytes and headers."""
    return evaluate(Delivery(body, dict(headers)), IntakeRules(keys, clinics))


def reject_record(
    delivery: Delivery, error: IntakeError, *, max_body: int = rejections.DEFAULT_MAX_BODY
) -> bytes:
    """What goes on the rejects queue: the error and what ``workers/rejections.py`` keeps."""
    kept = kept_of(delivery, error, max_body=max_body)
    record: dict[str, Any] = {
        "reason": error.reason,
        "error": {
            "field": printable(error.field, 200),
            "rule": printable(error.rule, 100),
            "message": printable(error.message, 500),
        },
        "authenticated": error.integration is not None,
        "reference": reference_of(delivery, error),
        **kept.as_json(),
        "rejected_at": utcnow().isoformat(),
    }
    return json.dumps(record, ensure_ascii=False).encode()


def admit(
    pairs: Sequence[tuple[SendCaseV2, str]],
    *,
    settings: Settings,
    broker: Any,
    engine: sa.Engine,
    window: dt.timedelta,
    batches: BatchCache | None = None,
) -> list[intake_keys.Claim]:
    """Take accepted requests, each with the integration that sent it, into the pipeline:
    scope each idempotency key to its integration, decide each by that key, put the new ones
    on the recipient-validation lanes in chunks (a dispatch's cases on its bulk lane) and only
    then record their keys. Returns one
    claim per request, in order (``claim.request.resolved_case_id()`` is the case it stands
    for). The intake bridge and the HTTP API both take cases in through this; ``batches`` is
    the caller's batch cache (the bridge keeps one; without it the batches are read now)."""

    pairs = [(intake_keys.scoped_to(request, who), who) for request, who in pairs]
    with engine.connect() as conn:
        claims = intake_keys.claim(conn, [p[0] for p in pairs], window=window)
    to_send = [c.request for c in claims if c.send]
    by_batch: dict[str | None, list[SendCaseV2]] = {}
    for request in to_send:
        by_batch.setdefault(request.batch_id, []).append(request)
    views = (batches or BatchCache(engine)).views(by_batch)  # a fresh one reads them now
    size = max(1, settings.chunk_size)
    for batch_id, group in by_batch.items():
        view = views.get(batch_id) if batch_id else None
        for start in range(0, len(group), size):
            push_chunk(
                broker,
                group[start : start + size],
                correlation_id=batch_id or f"intake-{utcnow():%Y%m%d}",
                prefix=settings.queue_prefix,
                batch_lane=view.lane if view else None,
            )
    with engine.begin() as conn:
        intake_keys.record(conn, [(c, who) for c, (_r, who) in zip(claims, pairs, strict=True)])
    return claims


def reference_of(delivery: Delivery, error: IntakeError) -> str | None:
    """The producer's own id of a refused message (``message-id``), as the reject keeps it."""
    return rejections.reference(
        delivery.headers.get(MESSAGE_ID), authenticated=error.integration is not None
    )


def kept_of(
    delivery: Delivery, error: IntakeError, *, max_body: int = rejections.DEFAULT_MAX_BODY
) -> rejections.Kept:
    """What of a refused delivery is kept, by whether its sender authenticated."""
    try:
        encoding = text_encoding(delivery.content_encoding)
    except Refused:
        encoding = None
    try:
        body = as_bytes(delivery.body, encoding)
    except Refused:
        body = repr(type(delivery.body)).encode()
    return rejections.keep(
        body, delivery.headers, authenticated=error.integration is not None, max_body=max_body
    )


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
    def purge_rejects(self, older_than: dt.datetime) -> int:
        """Remove rejects recorded before ``older_than``; returns how many."""

    @abc.abstractmethod
    def recover(self) -> None:
        """After a failure (broker, database): reconnect as needed; what was not acknowledged
        comes again."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""


@dataclass
class BridgeCounts:
    """What the bridge has done since it started."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    outages: int = 0
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
        self.batches = BatchCache(engine)
        self.buffer = buffer
        self.counts = BridgeCounts()
        self.window = dt.timedelta(days=settings.intake_window_days)
        self._credentials: tuple[float, dict[str, str], dict[str, list[str]]] | None = None
        self.queue = queue_name(INTAKE_EXCHANGE, settings.queue_prefix)

    def credentials(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Signing keys and clinics by key id: ``OMVANT_INTAKE_KEYS`` and every active API key
        (``omvant api-keys``), read again every few seconds so a new or revoked key counts
        without a restart."""
        now = time.monotonic()
        if self._credentials is None or now - self._credentials[0] > CREDENTIALS_SECONDS:
            with self.engine.connect() as conn:
                keys, clinics = api_keys.intake_credentials(conn)
            keys = {**keys, **self.settings.intake_keys}
            clinics = {**clinics, **self.settings.intake_clinics}
            self._credentials = (now, keys, clinics)
        return self._credentials[1], self._credentials[2]

    def rules(self) -> IntakeRules:
        """The intake's rules with the current credentials."""
        keys, clinics = self.credentials()
        return IntakeRules(keys, clinics, self.settings.intake_max_body_bytes)

    def run_once(self, timeout: float = 0.2) -> int:
        """Handle what arrives within ``timeout``; returns how many messages were handled.

        Messages the broker hands out again (a bridge died holding them) are suspects: each is
        handled on its own, its start counted in ``message_deliveries`` first, so that the one
        that kills the bridge is the only one counted; one started more than
        ``OMVANT_POISON_DELIVERIES`` times is refused as ``poison-message``."""
        deliveries = self.source.receive(self.buffer, timeout)
        if not deliveries:
            return 0
        fresh = [d for d in deliveries if not d.redelivered]
        for suspect in (d for d in deliveries if d.redelivered):
            self._handle_suspect(suspect)
        if fresh:
            self._handle(fresh)
        return len(deliveries)

    def _handle_suspect(self, delivery: Delivery) -> None:
        key = _fingerprint(delivery)
        with self.engine.begin() as conn:
            starts = started(conn, self.queue, key)
        if starts > self.settings.poison_deliveries:
            error = IntakeError(
                Reason.POISON_MESSAGE,
                "(message)",
                "survives-its-bridge",
                f"started {starts - 1} times and each time the bridge died",
            )
            self._refuse([(delivery, error)])
        else:
            self._handle([delivery])
        with self.engine.begin() as conn:
            finished(conn, self.queue, key)

    def _handle(self, deliveries: Sequence[Delivery]) -> None:
        accepted: list[tuple[Delivery, Accepted]] = []
        refused: list[tuple[Delivery, IntakeError]] = []
        rules = self.rules()
        for delivery in deliveries:
            verdict = evaluate(delivery, rules)
            if isinstance(verdict, IntakeError):
                refused.append((delivery, verdict))
            else:
                accepted.append((delivery, verdict))
        self._refuse(refused)
        try:
            self._admit(accepted)
        except Exception as exc:
            if is_outage(exc) or len(accepted) <= 1:
                if len(accepted) == 1 and not is_outage(exc):
                    self._refuse([(accepted[0][0], _unprocessable(accepted[0][1], exc))])
                    return
                raise
            # one message's content may be what fails: take them in one by one
            log.warning(
                "intake round failed; taking its messages one by one", error=type(exc).__name__
            )
            for pair in accepted:
                try:
                    self._admit([pair])
                except Exception as single:
                    if is_outage(single):
                        raise
                    self._refuse([(pair[0], _unprocessable(pair[1], single))])

    def _refuse(self, refused: Sequence[tuple[Delivery, IntakeError]]) -> None:
        """Record refusals in ``rejected_messages``, put them on the rejects queue, ack them."""
        if not refused:
            return
        limit = self.settings.reject_max_body_bytes
        with self.engine.begin() as conn:
            for delivery, error in refused:
                rejections.record(
                    conn,
                    queue=self.queue,
                    reason=error.reason,
                    detail=f"{error.field}: {error.rule}: {error.message}",
                    kept=kept_of(delivery, error, max_body=limit),
                    sender=error.integration,
                    reference=reference_of(delivery, error),
                )
        for delivery, error in refused:
            self.source.reject(delivery, reject_record(delivery, error, max_body=limit))
            self.counts.rejected += 1
            self.counts.reasons[error.reason] = self.counts.reasons.get(error.reason, 0) + 1
            log.warning(
                "intake message refused",
                reason=error.reason,
                field=error.field,
                reference=reference_of(delivery, error),
            )

    def _admit(self, accepted: Sequence[tuple[Delivery, Accepted]]) -> None:
        """Take the accepted messages' cases in (``admit``), then ack."""
        if not accepted:
            return
        pairs = [(request, a.integration) for _d, a in accepted for request in a.requests]
        claims = admit(
            pairs,
            settings=self.settings,
            broker=self.broker,
            engine=self.engine,
            window=self.window,
            batches=self.batches,
        )
        self.source.ack([d for d, _a in accepted])
        sent = sum(1 for c in claims if c.send)
        self.counts.duplicates += len(claims) - sent
        self.counts.accepted += sent

    def run(self, stop: threading.Event) -> BridgeCounts:
        """Run until ``stop`` is set. A failure (an outage of the database or the broker) never
        ends the run: the bridge waits, longer each time up to ``MAX_BACKOFF`` seconds,
        reconnects and goes on; what it had not acknowledged comes again."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.run_once()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - the bridge must outlive any outage
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                self.counts.outages += 1
                log.warning(
                    "intake bridge waits after a failure",
                    error=type(exc).__name__,
                    detail=printable(str(exc), 200),
                    seconds=backoff,
                )
                stop.wait(backoff)
                with contextlib.suppress(Exception):
                    self.source.recover()
        return self.counts


MAX_BACKOFF = 30.0


def _fingerprint(delivery: Delivery) -> str:
    """A message's identity across deliveries: the hash of its body and headers."""
    try:
        digest = hashlib.sha256(as_bytes(delivery.body, None))
    except Refused:
        digest = hashlib.sha256(repr(delivery.body).encode("utf-8", "surrogatepass"))
    digest.update(repr(sorted((k, repr(v)) for k, v in delivery.headers.items())).encode())
    return digest.hexdigest()


def _unprocessable(accepted: Accepted, exc: BaseException) -> IntakeError:
    return IntakeError(
        Reason.UNPROCESSABLE_MESSAGE,
        "(message)",
        "storable",
        f"passed its checks but could not be taken in: {type(exc).__name__}",
        accepted.integration,
    )
