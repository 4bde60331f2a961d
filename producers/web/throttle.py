"""Brute-force protection of the sign-in: failures counted per account and per address.

After ``account_limit`` failures in a row an account is locked for 30 s, doubling with each
further failure up to 15 minutes; after ``ip_limit`` an address is locked for a minute,
doubling up to an hour. A locked key is refused without the password being checked, so
guessing goes no faster however many requests are sent. Unknown usernames count like known
ones (nothing tells which exist). A success clears the account's count, not the address's.
Counts live in the database, so every process serving the console shares them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from workers.store.cases import utcnow
from workers.store.schema import login_failures
from workers.store.sql import aware_utc, insert_ignoring_conflicts

ACCOUNT_BASE = dt.timedelta(seconds=30)
ACCOUNT_MAX = dt.timedelta(minutes=15)
IP_BASE = dt.timedelta(minutes=1)
IP_MAX = dt.timedelta(hours=1)
FORGET_AFTER = dt.timedelta(hours=1)
"""A key with no failure for this long starts counting again from zero."""


@dataclass(frozen=True)
class Limits:
    """How many failures lock an account, and an address."""

    account: int = 5
    ip: int = 20


def account_key(username: str) -> str:
    """The counter of one account (by the name typed, known or not)."""
    return f"user:{username.strip().casefold()[:120]}"


def ip_key(address: str) -> str:
    """The counter of one client address."""
    return f"ip:{address[:120]}"


@dataclass(frozen=True)
class Attempt:
    """The outcome of one sign-in attempt."""

    ok: bool
    locked_until: dt.datetime | None = None
    """Set when the attempt was refused unchecked because the account or address is locked."""


def _ensure(conn: sa.Connection, keys: list[str], now: dt.datetime) -> None:
    for key in keys:
        conn.execute(
            insert_ignoring_conflicts(conn, login_failures).values(
                key=key, failures=0, first_at=now, last_at=now, locked_until=None
            )
        )


def _lock_for(
    failures: int, limit: int, base: dt.timedelta, cap: dt.timedelta
) -> dt.timedelta | None:
    if failures < limit:
        return None
    grown: dt.timedelta = base * (2 ** min(failures - limit, 20))
    return min(grown, cap)


def attempt(
    conn: sa.Connection,
    username: str,
    address: str,
    limits: Limits,
    check: Callable[[], bool],
    *,
    now: dt.datetime | None = None,
) -> Attempt:
    """Try one sign-in: refused unchecked while the account or the address is locked, else
    ``check()`` (the password) decides and the counts move. The two counters are locked
    for the length of the check, so parallel guesses at one account or from one address are
    taken one at a time and the lock holds from the very failure that sets it."""
    now = now or utcnow()
    keys = sorted({account_key(username), ip_key(address)})
    _ensure(conn, keys, now)
    rows = {
        r.key: r
        for r in conn.execute(
            sa.select(login_failures)
            .where(login_failures.c.key.in_(keys))
            .order_by(login_failures.c.key)
            .with_for_update()
        )
    }
    locks = [aware_utc(r.locked_until) for r in rows.values()]
    active = [lock for lock in locks if lock is not None and lock > now]
    if active:
        return Attempt(False, max(active))
    if check():
        conn.execute(sa.delete(login_failures).where(login_failures.c.key == account_key(username)))
        return Attempt(True)
    rules = {
        account_key(username): (limits.account, ACCOUNT_BASE, ACCOUNT_MAX),
        ip_key(address): (limits.ip, IP_BASE, IP_MAX),
    }
    for key, (limit, base, cap) in rules.items():
        row = rows[key]
        stale = (aware_utc(row.last_at) or now) < now - FORGET_AFTER
        failures = 1 if stale else row.failures + 1
        lock = _lock_for(failures, limit, base, cap)
        values: dict[str, object] = {
            "failures": failures,
            "last_at": now,
            "locked_until": now + lock if lock else None,
        }
        if stale:
            values["first_at"] = now
        conn.execute(sa.update(login_failures).where(login_failures.c.key == key).values(**values))
    return Attempt(False)
