"""Password hashing for console users: argon2id (argon2-cffi), with rehash on sign-in when
the parameters have grown, and a dummy check so an unknown username costs as much time."""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
"""Shortest password ``omvant users add`` accepts (NCSC/NIST: length over complexity)."""

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not-a-password-of-anyone")


class PasswordTooWeak(ValueError):
    """The password is shorter than ``MIN_LENGTH`` or otherwise refused."""


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``.

    Raises
    ------
    PasswordTooWeak
        Shorter than ``MIN_LENGTH`` characters, or only blanks.
    """
    if len(password) < MIN_LENGTH or not password.strip():
        raise PasswordTooWeak(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (unknown user, OIDC-only user) a dummy hash
    is checked so the answer takes as long either way."""
    if password_hash is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY, password + "\x00")
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
