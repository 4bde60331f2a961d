"""The people who sign in to the web console, and what they may do.

A user has one HSA-id (who the access log records and who signs what they send), one or more
roles and the clinics (units, by HSA-id) they act for:

- ``staff``: sends cases and reads the cases of their clinics;
- ``admin``: the clinic's local administrator: adopts, adapts and activates its templates;
- ``oncall``: the operations pages (queues, dead letters, dispatches), never case content.

Passwords are stored as argon2 hashes made by the caller (``producers.web.passwords``); a user
may have none and sign in through OIDC only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import users, web_sessions
from workers.store.sql import aware_utc

Role = Literal["staff", "admin", "oncall"]
ROLES: tuple[Role, ...] = ("staff", "admin", "oncall")
ROLE_NAMES: dict[Role, str] = {
    "staff": "vårdpersonal",
    "admin": "lokal administratör",
    "oncall": "drift (jour)",
}
"""How the console names each role, in Swedish."""

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
HSA_ID_PATTERN = re.compile(r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$")


class UserInvalid(ValueError):
    """A user definition breaks a rule (a malformed HSA-id, an unknown role ...)."""


class UserExists(ValueError):
    """The username (or OIDC subject) is taken."""


class UserNotFound(LookupError):
    """No such user."""


@dataclass(frozen=True)
class User:
    """One console user as stored."""

    id: int
    username: str
    display_name: str
    hsa_id: str
    roles: tuple[Role, ...]
    clinics: tuple[str, ...]
    password_hash: str | None
    oidc_subject: str | None
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    def has(self, role: Role) -> bool:
        """Whether the user holds ``role``."""
        return role in self.roles

    def acts_for(self, clinic_hsa_id: str) -> bool:
        """Whether the user may act for the clinic (staff or administrator of it)."""
        return clinic_hsa_id in self.clinics


def _from_row(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        hsa_id=row.hsa_id,
        roles=tuple(cast(Role, r) for r in row.roles.split(",") if r),
        clinics=tuple(json.loads(row.clinics)),
        password_hash=row.password_hash,
        oidc_subject=row.oidc_subject,
        active=bool(row.active),
        created_at=aware_utc(row.created_at) or utcnow(),
        last_login_at=aware_utc(row.last_login_at),
    )


def normalise_username(username: str) -> str:
    """Usernames are compared without case and surrounding blanks."""
    return username.strip().casefold()


def validate(
    *, username: str, hsa_id: str, roles: Sequence[str], clinics: Sequence[str]
) -> tuple[str, tuple[Role, ...], tuple[str, ...]]:
    """The normalised username, roles and clinics.

    Raises
    ------
    UserInvalid
        With one sentence per broken rule.
    """
    problems: list[str] = []
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        problems.append(
            f"username {username!r}: 2-64 characters a-z, 0-9, '.', '_', '@', '-' "
            "(starting with a letter or digit)"
        )
    if not HSA_ID_PATTERN.match(hsa_id):
        problems.append(f"HSA-id {hsa_id!r} is not like SE2321000016-ABCD")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        problems.append(f"unknown role {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if not roles:
        problems.append(f"give at least one role ({', '.join(ROLES)})")
    bad_clinics = [c for c in clinics if not HSA_ID_PATTERN.match(c)]
    if bad_clinics:
        problems.append(f"clinic {', '.join(bad_clinics)} is not an HSA-id")
    if any(r in ("staff", "admin") for r in roles) and not clinics:
        problems.append("staff and administrators need at least one clinic (--clinic)")
    if problems:
        raise UserInvalid("; ".join(problems))
    ordered = tuple(r for r in ROLES if r in roles)
    return name, ordered, tuple(dict.fromkeys(clinics))


def add(
    conn: sa.Connection,
    *,
    username: str,
    display_name: str,
    hsa_id: str,
    roles: Sequence[str],
    clinics: Sequence[str],
    password_hash: str | None,
    oidc_subject: str | None = None,
) -> User:
    """Store a new user.

    Raises
    ------
    UserInvalid
        The definition breaks a rule.
    UserExists
        The username or OIDC subject is taken.
    """
    name, ordered, units = validate(username=username, hsa_id=hsa_id, roles=roles, clinics=clinics)
    if password_hash is None and oidc_subject is None:
        raise UserInvalid("a user needs a password or an OIDC subject to sign in with")
    taken = conn.execute(
        sa.select(users.c.id).where(
            sa.or_(
                users.c.username == name,
                sa.and_(users.c.oidc_subject.is_not(None), users.c.oidc_subject == oidc_subject),
            )
        )
    ).first()
    if taken is not None:
        raise UserExists(f"a user {name!r} (or with that OIDC subject) exists already")
    now = utcnow()
    new_id = conn.execute(
        users.insert()
        .values(
            username=name,
            display_name=display_name.strip() or name,
            hsa_id=hsa_id,
            roles=",".join(ordered),
            clinics=json.dumps(list(units)),
            password_hash=password_hash,
            oidc_subject=oidc_subject,
            active=True,
            created_at=now,
            updated_at=now,
        )
        .returning(users.c.id)
    ).scalar_one()
    found = by_id(conn, int(new_id))
    assert found is not None
    return found


def by_id(conn: sa.Connection, user_id: int) -> User | None:
    """The user with ``user_id``, or None."""
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return None if row is None else _from_row(row)


def by_username(conn: sa.Connection, username: str) -> User | None:
    """The user called ``username`` (any case), or None."""
    row = conn.execute(
        sa.select(users).where(users.c.username == normalise_username(username))
    ).first()
    return None if row is None else _from_row(row)


def by_oidc_subject(conn: sa.Connection, subject: str) -> User | None:
    """The user linked to the OIDC ``subject``, or None."""
    row = conn.execute(sa.select(users).where(users.c.oidc_subject == subject)).first()
    return None if row is None else _from_row(row)


def listing(conn: sa.Connection) -> list[User]:
    """Every user, by username."""
    return [_from_row(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def set_active(conn: sa.Connection, username: str, active: bool) -> User:
    """Enable or disable a user; disabling ends every session of theirs at once.

    Raises
    ------
    UserNotFound
        No such user.
    """
    found = by_username(conn, username)
    if found is None:
        raise UserNotFound(username)
    conn.execute(
        sa.update(users).where(users.c.id == found.id).values(active=active, updated_at=utcnow())
    )
    if not active:
        conn.execute(sa.delete(web_sessions).where(web_sessions.c.user_id == found.id))
    updated = by_id(conn, found.id)
    assert updated is not None
    return updated


def set_password_hash(conn: sa.Connection, user_id: int, password_hash: str) -> None:
    """Replace a user's password hash (a new password, or a rehash with newer parameters)."""
    conn.execute(
        sa.update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=utcnow())
    )


def signed_in(conn: sa.Connection, user_id: int) -> None:
    """Note a successful sign-in."""
    conn.execute(sa.update(users).where(users.c.id == user_id).values(last_login_at=utcnow()))
