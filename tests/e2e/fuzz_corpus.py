"""A bounded hostile corpus for the entrances, generated from a seed (no files, no network).

Each item says where it goes, what it is, and what must come of it: a reason code recorded in
``rejected_messages`` for a hostile one, ``None`` for a valid one (a case that must settle).
The categories are issue 10's and more; every one is listed in ``CATEGORIES`` so the report of
a run can count them.
"""

from __future__ import annotations

import bz2
import hashlib
import hmac
import json
import random
import time
import uuid
import zlib
from dataclasses import dataclass, field

SECRET = "fuzz-secret"
KEYS = {"journal-a": SECRET, "booking-b": "booking-secret"}
CLINICS = {"booking-b": ["SE2321000016-VC02"]}
GOOD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "fragments": ["halsning"],
    "personnummer": "19121212-1212",
}


@dataclass
class Item:
    """One message of the corpus."""

    door: str
    """``intake`` (the AMQP exchange or Redis stream), ``stage`` (a stage queue) or ``inbox``."""
    category: str
    body: bytes
    headers: dict[str, object] = field(default_factory=dict)
    reason: str | None = None
    content_encoding: str | None = None
    queue: str = ""
    """For ``stage``: the stage queue (without prefix)."""
    case_keys: list[str] = field(default_factory=list)
    """For a valid item: the idempotency keys of the cases it must settle."""
    case_reason: str | None = None
    """For a message the intake takes whose case must end rejected: the case's reason code
    (another clinic's batch or blob is refused on the case, not on the message)."""


OTHER_CLINIC = "SE2321000016-VC09"
"""A clinic whose case, dispatch and blob the corpus tries to reach from clinic VC01."""


@dataclass(frozen=True)
class Foreign:
    """Another clinic's things, made before the corpus runs: its case (Omvänt's id), its
    dispatch (batch id) and a blob it uploaded."""

    case_id: str
    batch_id: str
    blob_sha256: str
    blob_size: int


def _sign(body: bytes, secret: str = SECRET, key_id: str = "journal-a") -> dict[str, object]:
    return {
        "omvant-key-id": key_id,
        "omvant-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


class Corpus:
    """Builds the items; ``run`` keeps idempotency keys apart between runs."""

    def __init__(self, run: str, seed: int = 10, foreign: Foreign | None = None) -> None:
        self.run = run
        self.random = random.Random(seed)
        self.serial = 0
        self.foreign = foreign
        self.reached_case = False

    def key(self) -> str:
        self.serial += 1
        return f"{self.run}k{self.serial}"

    def record(self, **changes: object) -> dict[str, object]:
        return {**GOOD, "idempotency_key": self.key(), **changes}

    # -- the intake door ------------------------------------------------------------------
    def signed(
        self,
        data: object,
        *,
        version: object = "1",
        category: str,
        reason: str | None,
        **more: object,
    ) -> Item:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = {**_sign(body), "omvant-contract-version": version, **more}
        keys = []
        if reason is None:
            records = data if isinstance(data, list) else [data]
            # the intake scopes a key to the integration that signed it (``<key-id>/<key>``)
            keys = [f"journal-a/{r['idempotency_key']}" for r in records if isinstance(r, dict)]
        return Item("intake", category, body, headers, reason, case_keys=keys)

    def intake_valid(self) -> Item:
        choice = self.random.randrange(6)
        if choice == 0:
            return self.signed(self.record(), category="valid v1", reason=None)
        if choice == 1:
            data = [self.record(fields={"namn": "Tolvan"}) for _ in range(3)]
            return self.signed(data, version="2", category="valid v2 list", reason=None)
        if choice == 2:
            item = self.signed(
                self.record(free_text="Hej Åsa!\nRad två\tmed tab"),
                category="valid utf-8 content_encoding",
                reason=None,
            )
            item.content_encoding = "utf-8"
            return item
        if choice == 3:
            data = self.record()
            wire = zlib.compress(json.dumps(data).encode())
            item = self.signed(
                wire, category="valid gzip", reason=None, compression="application/x-gzip"
            )
            item.case_keys = [f"journal-a/{data['idempotency_key']}"]
            return item
        if choice == 4:
            return self.signed(
                self.record(template_id="finns-inte"),
                category="valid, unknown template (rejected case)",
                reason=None,
            )
        return self.signed(self.record(priority="urgent"), category="valid urgent", reason=None)

    def cross_clinic(self) -> Item:
        """A request of clinic VC01, signed by an integration that may send for it, reaching
        for the other clinic's case, dispatch or blob."""
        foreign = self.foreign
        assert foreign is not None
        kind = self.random.randrange(3)
        if kind == 0 and not self.reached_case:
            self.reached_case = True  # once: a second request with the same id would conflict
            # the other clinic's case id is only A's own reference: A gets a case of its own
            # and the other case is left exactly as it was (asserted by the suite)
            return self.signed(
                self.record(case_id=foreign.case_id),
                category="another clinic's case id",
                reason=None,
            )
        if kind in (0, 1):
            item = self.signed(
                self.record(batch_id=foreign.batch_id),
                category="another clinic's batch id",
                reason=None,
            )
            item.case_reason = "batch-not-owned"
            return item
        ref = {"sha256": foreign.blob_sha256, "filename": "b.pdf", "size": foreign.blob_size}
        item = self.signed(
            self.record(attachments=[{**ref, "declared_type": "application/pdf"}]),
            category="another clinic's blob",
            reason=None,
        )
        item.case_reason = "attachment-not-owned"
        return item

    def intake_hostile(self) -> Item:
        kind = self.random.randrange(37 if self.foreign else 34)
        if kind >= 34:
            return self.cross_clinic()
        if kind == 0:
            return self.signed(b"", category="empty body", reason="malformed-message")
        if kind == 1:
            return self.signed(
                b'{"clinic_hsa_id": ', category="not JSON", reason="malformed-message"
            )
        if kind == 2:
            return self.signed(
                [1, "two"], category="JSON list of non-objects", reason="malformed-message"
            )
        if kind == 3:
            return self.signed(
                [self.record()] * 1001, category="over 1,000 records", reason="malformed-message"
            )
        if kind == 4:
            return self.signed(
                self.record(free_text="x" * 100_001),
                category="oversized string",
                reason="invalid-payload",
            )
        if kind == 5:
            return self.signed(
                self.record(fragments=["a"] * 5000),
                category="oversized array",
                reason="invalid-payload",
            )
        if kind == 6:
            depth = self.random.choice([5_000, 100_000])
            return self.signed(
                b"[" * depth + b"]" * depth, category="deep nesting", reason="malformed-message"
            )
        if kind == 7:
            return self.signed(
                b'\xff\xfe{"a": 1}', category="invalid UTF-8", reason="malformed-message"
            )
        if kind == 8:
            body = json.dumps(self.record(free_text="SURR")).replace("SURR", "\\ud800").encode()
            return self.signed(body, category="lone surrogate", reason="invalid-payload")
        if kind == 9:
            body = json.dumps(self.record(free_text="SURR")).encode()
            body = body.replace(b"SURR", b"\xed\xa0\x80")
            # json reads bytes with surrogatepass: the contract refuses the lone surrogate
            return self.signed(body, category="surrogate as UTF-8 bytes", reason="invalid-payload")
        if kind == 10:
            return self.signed(
                self.record(personnummer=191212121212),
                category="wrong type",
                reason="invalid-payload",
            )
        if kind == 11:
            return self.signed(
                self.record(fields=["a"]),
                version="2",
                category="wrong type",
                reason="invalid-payload",
            )
        if kind == 12:
            version = self.random.choice(["3", "0", "99", "-1", " 1", "1.0"])
            return self.signed(
                self.record(),
                version=version,
                category="unknown version",
                reason="unknown-contract-version",
            )
        if kind == 13:
            version = self.random.choice(["²", "١", "1" * 5000, "0x1"])
            return self.signed(
                self.record(),
                version=version,
                category="odd version",
                reason="unknown-contract-version",
            )
        if kind == 14:
            item = self.signed(self.record(), category="missing version", reason=None)
            item.headers.pop("omvant-contract-version")
            item.reason, item.case_keys = "contract-version-missing", []
            return item
        if kind == 15:
            item = self.signed(self.record(), category="forged signature", reason=None)
            item.headers["omvant-signature"] = hashlib.sha256(b"guess").hexdigest()
            item.reason, item.case_keys = "signature-invalid", []
            return item
        if kind == 16:
            item = self.signed(self.record(), category="missing signature", reason=None)
            item.headers.pop("omvant-signature")
            item.reason, item.case_keys = "signature-missing", []
            return item
        if kind == 17:
            signed_for = json.dumps(self.record()).encode()
            body = json.dumps(self.record()).encode()  # the signature of another body
            return Item(
                "intake",
                "replayed signature",
                body,
                {**_sign(signed_for), "omvant-contract-version": "1"},
                "signature-invalid",
            )
        if kind == 18:
            body = json.dumps(self.record()).encode()
            return Item(
                "intake",
                "unknown key id",
                body,
                {**_sign(body, key_id="mallory"), "omvant-contract-version": "1"},
                "unknown-key-id",
            )
        if kind == 19:
            body = json.dumps(self.record()).encode()
            return Item(
                "intake",
                "another clinic's id (key restricted)",
                body,
                {**_sign(body, "booking-secret", "booking-b"), "omvant-contract-version": "1"},
                "clinic-not-allowed",
            )
        if kind == 20:
            tid = self.random.choice(["../../etc/passwd", "..%2f..%2fetc", "/abs/path"])
            return self.signed(
                self.record(template_id=tid),
                category="path traversal template id",
                reason="invalid-payload",
            )
        if kind == 21:
            tid = self.random.choice(["x'; DROP TABLE cases;--", 'a" OR 1=1', "t%' --"])
            return self.signed(
                self.record(template_id=tid),
                category="SQL metacharacters",
                reason="invalid-payload",
            )
        if kind == 22:
            return self.signed(
                self.record(idempotency_key=f"{self.key()}\x00"),
                category="NUL in idempotency key",
                reason="invalid-payload",
            )
        if kind == 23:
            return self.signed(
                self.record(personnummer="19121212\x00-1212"),
                category="NUL in personnummer",
                reason="invalid-payload",
            )
        if kind == 24:
            return self.signed(
                self.record(fragments=["hal\x1bsning"]),
                category="control character in fragment",
                reason="invalid-payload",
            )
        if kind == 25:
            return self.signed(
                self.record(idempotency_key=f"{self.key()}\u202e"),
                category="bidi override in key",
                reason="invalid-payload",
            )
        if kind == 26:
            item = self.signed(self.record(), category="unknown content encoding", reason=None)
            item.content_encoding = self.random.choice(["x-klingon", "rot13", "base64"])
            item.reason, item.case_keys = "unsupported-content-encoding", []
            return item
        if kind == 27:
            wire = zlib.compress(json.dumps(self.record()).encode())
            return self.signed(
                wire,
                category="unknown compression",
                reason="unsupported-compression",
                compression="application/x-snappy-bogus",
            )
        if kind == 28:
            bomb = zlib.compress(b" " * (20 * 1024 * 1024))
            return self.signed(
                bomb, category="compression bomb", reason="message-too-large", compression="gzip"
            )
        if kind == 29:
            return self.signed(
                bz2.compress(b"x")[:-5],
                category="corrupt compression",
                reason="body-undecodable",
                compression="bzip2",
            )
        if kind == 30:
            return self.signed(
                self.record(),
                version={"v": 1},
                category="version header of a table",
                reason="unknown-contract-version",
            )
        if kind == 31:
            return self.signed(
                self.record(extra_field=1), category="unknown field", reason="invalid-payload"
            )
        if kind == 32:
            return self.signed(
                self.record(clinic_hsa_id="SE2321000016-VC01\n"),
                category="trailing newline in HSA id",
                reason="invalid-payload",
            )
        return self.signed(
            self.record(attachments=[{"sha256": "0" * 64, "filename": "a\x00.pdf", "size": 1}]),
            category="NUL in file name",
            reason="invalid-payload",
        )

    # -- the stage queues -----------------------------------------------------------------
    def stage(self, prefix: str, *, valid: bool) -> Item:
        queues = [
            "recipient-validation",
            "message-composition",
            "attachment-check",
            "notification-dispatch",
            "read-receipts",
            "recipient-validation.urgent",
        ]
        actors = {
            "recipient-validation": "validate_recipients",
            "message-composition": "compose_messages",
            "attachment-check": "check_attachments",
            "notification-dispatch": "dispatch_notifications",
            "read-receipts": "collect_read_receipts",
            "recipient-validation.urgent": "validate_recipients_urgent",
        }
        if valid:
            record = self.record()
            envelope = {
                "contract": "SendCase",
                "version": 1,
                "payload": [record],
                "message_id": uuid.uuid4().hex,
            }
            body = _dramatiq(prefix + "recipient-validation", "validate_recipients", [envelope])
            return Item(
                "stage",
                "valid SendCase on the intake queue",
                body,
                queue=queue_at(0),
                case_keys=[str(record["idempotency_key"])],
            )
        queue = self.random.choice(queues)
        actor = actors[queue]
        envelope = {"contract": "SendCase", "version": 1, "payload": [self.record()]}
        kind = self.random.randrange(13 if self.foreign else 12)
        full = _dramatiq(prefix + queue, actor, [envelope])
        if kind == 12:
            return self.forged_stage(prefix)
        options: list[tuple[str, bytes, str]] = [
            ("stage: not JSON", b"<xml/>", "malformed-message"),
            ("stage: JSON list", b"[1, 2, 3]", "malformed-message"),
            ("stage: invalid UTF-8", b"\xc3\x28\xff", "malformed-message"),
            ("stage: deep nesting", b'{"a":' * 50_000, "malformed-message"),
            (
                "stage: missing fields",
                json.dumps({"actor_name": actor}).encode(),
                "malformed-message",
            ),
            ("stage: extra field", full[:-1] + b', "x": 1}', "malformed-message"),
            (
                "stage: unknown actor",
                _dramatiq(prefix + queue, "rm_rf", [envelope]),
                "unknown-actor",
            ),
            (
                "stage: another stage's actor",
                _dramatiq(prefix + queue, _other(actors, queue), [envelope]),
                "wrong-queue",
            ),
            (
                "stage: another queue named",
                _dramatiq(prefix + _other_queue(queues, queue), actor, [envelope]),
                "wrong-queue",
            ),
            (
                "stage: forged quarantine",
                _dramatiq(prefix + queue, "omvant_record_unreadable_message", ["x", 2]),
                "malformed-message",
            ),
            (
                "stage: not an envelope",
                _dramatiq(prefix + queue, actor, [[1]]),
                "malformed-message",
            ),
            (
                "stage: unknown contract",
                _dramatiq(
                    prefix + queue,
                    actor,
                    [{"contract": "DropTables", "version": 1, "payload": [{}]}],
                ),
                "unknown-contract",
            ),
        ]
        category, body, reason = options[kind]
        return Item("stage", category, body, reason=reason, queue=queue)

    def forged_stage(self, prefix: str) -> Item:
        """A stage message as clinic VC01's that names the other clinic's case."""
        assert self.foreign is not None
        record = {
            "case_id": self.foreign.case_id,
            "clinic_hsa_id": GOOD["clinic_hsa_id"],
            "sender_hsa_id": GOOD["sender_hsa_id"],
            "template_id": GOOD["template_id"],
            "personnummer": "191212121212",
            "channels": ["sms"],
        }
        envelope = {"contract": "RecipientValidated", "version": 1, "payload": [record]}
        body = _dramatiq(prefix + "message-composition", "compose_messages", [envelope])
        return Item(
            "stage",
            "stage: another clinic's case id",
            body,
            reason="case-not-owned",
            queue="message-composition",
        )

    # -- the inbox's events ---------------------------------------------------------------
    def inbox(self) -> Item:
        event = {
            "version": 1,
            "event": "opened",
            "case_id": f"{self.run}no-case",
            "occurred_at": "2026-11-25T08:00:00Z",
        }
        options = [
            ("inbox: empty", b"", "malformed-message", {}),
            ("inbox: not JSON", b"opened!", "malformed-message", {}),
            (
                "inbox: unknown version",
                json.dumps({**event, "version": 7}).encode(),
                "unknown-contract-version",
                {},
            ),
            (
                "inbox: NUL in case id",
                json.dumps({**event, "case_id": "a\x00b"}).encode(),
                "invalid-payload",
                {},
            ),
            (
                "inbox: unknown compression",
                json.dumps(event).encode(),
                "unsupported-compression",
                {"compression": "zip"},
            ),
            ("inbox: deep nesting", b"[" * 100_000, "malformed-message", {}),
        ]
        category, body, reason, headers = self.random.choice(options)
        return Item("inbox", category, body, dict(headers), reason)


def queue_at(index: int) -> str:
    return ["recipient-validation"][index]


def _other(actors: dict[str, str], queue: str) -> str:
    stage = queue.split(".", maxsplit=1)[0]
    return next(a for q, a in actors.items() if q.split(".")[0] != stage)


def _other_queue(queues: list[str], queue: str) -> str:
    stage = queue.split(".", maxsplit=1)[0]
    return next(q for q in queues if q.split(".")[0] != stage)


def _dramatiq(queue: str, actor: str, args: list[object]) -> bytes:
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": actor,
            "args": args,
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }
    ).encode()


def build(
    run: str,
    prefix: str,
    total: int,
    *,
    inbox: bool,
    seed: int = 10,
    foreign: Foreign | None = None,
) -> list[Item]:
    """``total`` items: about 20% valid, the rest hostile, over the doors in use; with
    ``foreign``, hostile ones reach for another clinic's case, dispatch and blob too."""
    corpus = Corpus(run, seed, foreign)
    items: list[Item] = []
    for n in range(total):
        roll = corpus.random.random()
        if n % 5 == 0:
            items.append(corpus.intake_valid() if roll < 0.7 else corpus.stage(prefix, valid=True))
        elif roll < 0.6:
            items.append(corpus.intake_hostile())
        elif roll < 0.9 or not inbox:
            items.append(corpus.stage(prefix, valid=False))
        else:
            items.append(corpus.inbox())
    # the same valid message twice: a replay, which must make no second case
    if items and items[0].door == "intake":
        first = items[0]
        items.append(
            Item(
                "intake",
                "replayed valid message",
                first.body,
                dict(first.headers),
                None,
                first.content_encoding,
            )
        )
    return items
