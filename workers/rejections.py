"""What a refused message leaves behind, for on-call: kept in ``rejected_messages``.

The rule (docs/intake.md, "What a reject keeps"):

- from a sender who **authenticated** (the intake's HMAC signature held, or a publisher on a
  stage queue, which the broker authenticated) the body is kept up to
  ``OMVANT_REJECT_MAX_BODY_BYTES`` (1 MiB) so it can be fixed and replayed, with every header
  except the signature;
- from a sender who **did not** (no, a forged or an unknown signature, or a message refused
  before its signature could be checked) only the size, the sha256, the headers Omvänt reads
  (others by name and length) and a redacted excerpt: letters become ``x``/``X``, digits
  ``9``, so the shape of the body shows but never a personnummer or a word of free text.

A message that can carry a resident's answer (an inbox event, a read receipt) is kept whole but
**sealed** (``keep_sealed``: ``g1.`` as answers are at rest, ``workers/answer_seal.py``), with a
redacted excerpt for its shape, whether it was refused as unreadable, malformed or invalid: no
answer is kept readable, not even to on-call.

Every text written is bounded and has NUL, control characters and lone surrogates escaped, so
recording a refusal cannot itself fail on the message's content. Rows are purged after
``OMVANT_REJECT_RETENTION_DAYS`` (``omvant rejects purge``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from workers.log import mask_identity_numbers
from workers.queues import Queues, unprefixed
from workers.settings import Settings
from workers.store.schema import rejected_messages
from workers.wire import header_text, printable

SIGNATURE_HEADER = "omvant-signature"
READ_HEADERS = frozenset(
    {
        "omvant-key-id",
        "omvant-contract-version",
        "content-type",
        "content-encoding",
        "compression",
        "amqp-user-id",
        "routing-key",
    }
)
"""The headers Omvänt reads itself: kept in clear (bounded) whoever sent the message."""
EXCERPT_CHARS = 200
MAX_HEADERS = 32
DEFAULT_MAX_BODY = 1024 * 1024
SEALED = "sealed"
"""``body_encoding`` of a body kept sealed (``keep_sealed``)."""
ANSWER_QUEUES = frozenset({Queues.READ_RECEIPTS.value, "inbox-events"})
"""Queues whose messages can carry a resident's answer: what is refused on them is sealed."""
_KEPT_PUNCTUATION = frozenset(string.punctuation) | {" "}


def redact(data: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters with their content removed: letters ``x``/``X``, digits
    ``9``, ASCII punctuation and spaces kept, anything else ``?``."""
    text = data[: limit * 4].decode("utf-8", "replace")[:limit]
    out = []
    for char in text:
        if char.isdigit():
            out.append("9")
        elif char.isalpha():
            out.append("X" if char.isupper() else "x")
        elif char in _KEPT_PUNCTUATION:
            out.append(char)
        elif char in "\t\n\r":
            out.append(" ")
        else:
            out.append("?")
    return "".join(out)


def _masked_name(name: str) -> str:
    return printable("".join("9" if c.isdigit() else c for c in name), 64)


@dataclass(frozen=True)
class Kept:
    """What is kept of one refused message."""

    size: int
    sha256: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """The body, when kept and it is clean UTF-8 text (no NUL)."""
    body_base64: str | None = None
    """The body, when kept and it is not clean UTF-8 text."""
    excerpt: str | None = None
    """A redacted excerpt, when the body is not kept (or kept sealed)."""
    sealed: str | None = None
    """The body sealed (``keep_sealed``): the JSON of ``{"body": ...}`` or
    ``{"body_base64": ...}``, opened only with the deployment's answer key."""

    def as_json(self) -> dict[str, object]:
        """The fields of a reject record (the rejects queue's JSON)."""
        record: dict[str, object] = {"size": self.size, "sha256": self.sha256}
        record["headers"] = self.headers
        if self.sealed is not None:
            record["body_sealed"] = self.sealed
            record["excerpt"] = self.excerpt
        elif self.body is not None:
            record["body"] = self.body
        elif self.body_base64 is not None:
            record["body_base64"] = self.body_base64
        else:
            record["excerpt"] = self.excerpt
            record["body_kept"] = False
        return record


def keep(
    body: bytes,
    headers: Mapping[str, object] | None = None,
    *,
    authenticated: bool,
    max_body: int = DEFAULT_MAX_BODY,
) -> Kept:
    """Decide what of a refused message to keep (see the module's rule)."""
    kept_headers: dict[str, str] = {}
    for name, value in list((headers or {}).items())[:MAX_HEADERS]:
        if name == SIGNATURE_HEADER:
            continue
        if authenticated or name in READ_HEADERS:
            # identity numbers masked: a header is never needed in clear to replay a message
            kept_headers[printable(name, 64)] = mask_identity_numbers(printable(value))
        else:
            text = header_text(value)
            length = len(text) if text is not None else len(repr(value))
            kept_headers[_masked_name(name)] = f"<{length} chars>"
    size, digest = len(body), hashlib.sha256(body).hexdigest()
    if not authenticated or len(body) > max_body:
        return Kept(size, digest, kept_headers, excerpt=redact(body))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return Kept(size, digest, kept_headers, body_base64=base64.b64encode(body).decode())
    return Kept(size, digest, kept_headers, body=text)


def keep_sealed(
    body: bytes,
    headers: Mapping[str, object] | None = None,
    *,
    seal: Callable[[str], str],
    max_body: int = DEFAULT_MAX_BODY,
) -> Kept:
    """What ``keep`` keeps of an authenticated sender's message, with the body sealed by
    ``seal`` (``AnswerSeal.seal``): for messages that can carry a resident's answer, which no
    one but the clinic reads (the same bytes come back with the key: nothing is lost). No
    redacted excerpt beside it: its runs of ``x`` would give the length of every word of an
    answer ("Ja" from "Nej"); the size, hash, headers and reason are what on-call reads."""
    kept = keep(body, headers, authenticated=True, max_body=max_body)
    if kept.body is None and kept.body_base64 is None:
        return Kept(kept.size, kept.sha256, kept.headers)  # too large to keep: no excerpt
    whole = {"body": kept.body} if kept.body is not None else {"body_base64": kept.body_base64}
    return Kept(
        kept.size,
        kept.sha256,
        kept.headers,
        sealed=seal(json.dumps(whole, ensure_ascii=False)),
    )


def carries_answers(queue: str, prefix: str) -> bool:
    """Whether messages on ``queue`` (a lane or a delay queue too) can carry an answer."""
    name = unprefixed(queue, prefix).removesuffix(".DQ").split(".", 1)[0]
    return name in ANSWER_QUEUES


def keep_from_stage(body: bytes, queue: str, settings: Settings) -> Kept:
    """What to keep of a message refused on a stage queue (its publisher authenticated by the
    broker): sealed on a queue whose messages can carry an answer, else whole."""
    if carries_answers(queue, settings.queue_prefix):
        from workers.answer_seal import answer_seal

        return keep_sealed(body, seal=answer_seal(settings).seal)
    return keep(body, authenticated=True)


_REFERENCE_FORM = re.compile(r"[A-Za-z0-9_.:@/+=#-]{1,200}")


def reference(value: object, *, authenticated: bool) -> str | None:
    """The producer's own id of a message as a reject keeps it: bounded, escaped, identity
    numbers masked; from a sender who did not authenticate only if it has the form of an id
    (else redacted like the excerpt), so no free text is kept in clear."""
    if value is None or value in ("", b""):
        return None
    text = mask_identity_numbers(printable(value, 200))[:200]
    if authenticated or _REFERENCE_FORM.fullmatch(text):
        return text
    return redact(text.encode("utf-8", "replace"))


def record(
    conn: sa.Connection,
    *,
    queue: str,
    reason: str,
    detail: str,
    kept: Kept | None,
    sender: str | None = None,
    at: dt.datetime | None = None,
    reference: str | None = None,
) -> None:
    """Insert one row in ``rejected_messages``; never fails on what the message held.
    ``reference`` is the producer's id of the message (see :func:`reference`)."""
    values: dict[str, object] = {
        "reference": None if reference is None else printable(reference, 200)[:200],
        "queue": printable(queue, 128)[:128],
        "reason": printable(reason, 64)[:64],
        "detail": printable(detail, 900)[:1000],
        "sender": None if sender is None else printable(sender, 100)[:128],
        "at": at or dt.datetime.now(dt.UTC),
    }
    if kept is not None:
        values.update(
            size=kept.size,
            sha256=kept.sha256,
            headers=json.dumps(kept.headers, ensure_ascii=True),
            excerpt=kept.excerpt,
            body=kept.sealed or (kept.body if kept.body is not None else kept.body_base64),
            body_encoding=SEALED
            if kept.sealed is not None
            else (
                "utf-8"
                if kept.body is not None
                else ("base64" if kept.body_base64 is not None else None)
            ),
        )
    conn.execute(rejected_messages.insert().values(**values))


def purge(conn: sa.Connection, *, older_than: dt.datetime) -> int:
    """Delete the rows recorded before ``older_than``; returns how many."""
    result = conn.execute(rejected_messages.delete().where(rejected_messages.c.at < older_than))
    return int(result.rowcount or 0)


def newest(
    conn: sa.Connection, *, reference: str | None = None, reason: str | None = None, limit: int
) -> list[dict[str, object]]:
    """The newest rows (no body, no excerpt): what the list of rejects shows."""
    columns = rejected_messages.c
    query = sa.select(
        columns.id,
        columns.at,
        columns.queue,
        columns.reason,
        columns.sender,
        columns.reference,
        columns.sha256,
        columns.size,
        columns.detail,
    ).order_by(columns.at.desc(), columns.id.desc())
    if reference is not None:
        query = query.where(columns.reference == reference)
    if reason is not None:
        query = query.where(columns.reason == reason)
    rows = conn.execute(query.limit(limit)).mappings()
    return [
        {**row, "at": row["at"].isoformat(timespec="seconds") if row["at"] else None}
        for row in rows
    ]
