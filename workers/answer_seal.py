"""Answers at rest: sealed with the deployment's key before they reach the database.

A resident's answer is health information. It is stored sealed (AES-256-GCM from
``cryptography``, a random 96-bit nonce per seal) and opened only to show it to its clinic. The
key is ``OMVANT_ANSWER_KEY``: one or more Fernet keys, comma-separated; the first seals, all
open, so a key can be rotated. Each key's AES key is derived from it with HKDF-SHA256 under a
label of its own, so no key material serves two algorithms. A sealed value is ``g1.`` and the
url-safe base64 of nonce and ciphertext (``.`` is outside base64: never a Fernet token).
Values sealed before (Fernet tokens: AES-CBC with HMAC-SHA256, about 9 µs of CPU per seal on
the hot path against 2.5) still open. The embedded default (SQLite) makes a key of its own in
its data folder when none is set; any other deployment refuses to start without one.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workers.settings import Settings

KEY_FILE = "answer.key"
FORMAT = "g1."  # AES-256-GCM, key from HKDF_INFO; a new format is a new prefix and label
HKDF_INFO = b"omvant answer seal g1: AES-256-GCM"
NONCE_BYTES = 12
TAG_BYTES = 16


class AnswerKeyMissing(RuntimeError):
    """No key to seal answers with, outside the embedded default."""


class AnswerUnreadable(RuntimeError):
    """A sealed answer no configured key opens (the key was changed, not rotated)."""


def _embedded_key(home: Path) -> str:
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def _aes_key(fernet_key: str) -> AESGCM:
    """The AES-256 key of a (valid) Fernet key: HKDF-SHA256 of its 32 bytes under our label."""
    material = base64.urlsafe_b64decode(fernet_key)
    return AESGCM(HKDF(hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material))


class AnswerSeal:
    """Seals and opens answers with the configured keys (built once per key set, see
    ``answer_seal``: seal and open then do no key work)."""

    def __init__(self, keys: list[str]) -> None:
        keys = [key.strip() for key in keys]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])  # validates every key
        except (ValueError, TypeError) as exc:
            raise AnswerKeyMissing(
                "OMVANT_ANSWER_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated"
            ) from exc
        self._aes = [_aes_key(key) for key in keys]

    def seal(self, text: str) -> str:
        """``text`` sealed (url-safe text, safe for any column)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aes[0].encrypt(nonce, text.encode(), None)
        return FORMAT + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        """The text of a sealed answer (either format).

        Raises
        ------
        AnswerUnreadable
            No configured key opens it.
        """
        text = self._open_gcm(sealed) if sealed.startswith(FORMAT) else self._open_fernet(sealed)
        if text is None:
            raise AnswerUnreadable("no configured OMVANT_ANSWER_KEY opens this answer")
        return text

    def _open_fernet(self, sealed: str) -> str | None:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None

    def _open_gcm(self, sealed: str) -> str | None:
        try:
            raw = base64.b64decode(sealed[len(FORMAT) :], altchars=b"-_", validate=True)
        except ValueError:  # not url-safe base64 (binascii.Error) or not ASCII
            return None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            return None
        nonce, ciphertext = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for key in self._aes:
            try:
                return key.decrypt(nonce, ciphertext, None).decode()
            except InvalidTag:
                continue
        return None


@functools.lru_cache(maxsize=8)
def _seal(keys: tuple[str, ...]) -> AnswerSeal:
    return AnswerSeal(list(keys))


def answer_seal(settings: Settings) -> AnswerSeal:
    """The deployment's seal.

    Raises
    ------
    AnswerKeyMissing
        ``OMVANT_ANSWER_KEY`` is not set and this is not the embedded default.
    """
    if settings.answer_key is not None:
        keys = [k for k in settings.answer_key.get_secret_value().split(",") if k.strip()]
        return _seal(tuple(keys))
    if settings.embedded:
        return _seal((_embedded_key(settings.home),))
    raise AnswerKeyMissing(
        "OMVANT_ANSWER_KEY is not set: answers are stored sealed and a server deployment needs "
        "its own key (make one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())')"
    )


def seal_answers(envelope: dict[str, Any], seal: AnswerSeal) -> dict[str, Any]:
    """A copy of a ``ReadReceipt`` envelope (as JSON data) with each record's answer sealed but
    its kind: ``{"kind", "sealed"}``, as a refused answer is kept (``read_receipts.kept_body``).
    For what is kept of a message after it failed (a dead letter): no answer is kept readable."""
    payload = envelope.get("payload")
    if not isinstance(payload, list):
        return envelope
    records = []
    for record in payload:
        answer = record.get("answer") if isinstance(record, dict) else None
        if isinstance(answer, dict) and "sealed" not in answer:
            rest = {k: v for k, v in answer.items() if k != "kind"}
            sealed = seal.seal(json.dumps(rest, ensure_ascii=False))
            records.append({**record, "answer": {"kind": answer.get("kind"), "sealed": sealed}})
        else:
            records.append(record)
    return {**envelope, "payload": records}


def has_sealed_answers(envelope: object) -> bool:
    """Whether an envelope (JSON data) holds answers ``seal_answers`` sealed."""
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    return isinstance(payload, list) and any(
        isinstance(r, dict) and isinstance(r.get("answer"), dict) and "sealed" in r["answer"]
        for r in payload
    )


def open_answers(envelope: dict[str, Any], seal: AnswerSeal) -> dict[str, Any]:
    """The envelope ``seal_answers`` sealed, as it was (to replay it).

    Raises
    ------
    AnswerUnreadable
        No configured key opens an answer.
    """
    records = []
    for record in envelope["payload"]:
        answer = record.get("answer") if isinstance(record, dict) else None
        if isinstance(answer, dict) and isinstance(answer.get("sealed"), str):
            opened = json.loads(seal.open(answer["sealed"]))
            records.append({**record, "answer": {"kind": answer.get("kind"), **opened}})
        else:
            records.append(record)
    return {**envelope, "payload": records}
