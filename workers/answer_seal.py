"""Answers at rest: sealed with the deployment's key before they reach the database.

A resident's answer is health information. It is stored sealed (Fernet: AES in CBC mode with
an HMAC-SHA256, from ``cryptography``) and opened only to show it to its clinic. The key is
``OMVANT_ANSWER_KEY`` (one or more Fernet keys, comma-separated: the first seals, all open, so
a key can be rotated). The embedded default (SQLite) makes a key of its own in its data folder
when none is set; any other deployment refuses to start without one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workers.settings import Settings

KEY_FILE = "answer.key"


class AnswerKeyMissing(RuntimeError):
    """No key to seal answers with, outside the embedded default."""


class AnswerUnreadable(RuntimeError):
    """A sealed answer no configured key opens (the key was changed, not rotated)."""


def _embedded_key(home: Path) -> str:
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


class AnswerSeal:
    """Seals and opens answers with the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError) as exc:
            raise AnswerKeyMissing(
                "OMVANT_ANSWER_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated"
            ) from exc

    def seal(self, text: str) -> str:
        """``text`` sealed (url-safe text, safe for any column)."""
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        """The text of a sealed answer.

        Raises
        ------
        AnswerUnreadable
            No configured key opens it.
        """
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise AnswerUnreadable("no configured OMVANT_ANSWER_KEY opens this answer") from None


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
