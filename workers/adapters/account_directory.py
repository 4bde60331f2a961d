"""The 1177 account directory: does a resident have an active login, and which channels?"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workers.adapters.population import bucket


class AccountStatus(StrEnum):
    """What the directory says of a resident's 1177 account."""

    ACTIVE = "active"
    NO_ACCOUNT = "no-account"
    BLOCKED = "blocked"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Account:
    """One resident's account. ``channels`` holds the notification channels turned on."""

    personnummer: str
    status: AccountStatus
    channels: frozenset[str] = frozenset()
    phone: str | None = None
    email: str | None = None


class AccountDirectory(abc.ABC):
    """Looks residents up by normalised 12-digit personnummer."""

    @abc.abstractmethod
    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        """Every number's account; a number the directory does not know is ``NO_ACCOUNT``.

        Raises
        ------
        DirectoryUnavailable
            A transient failure (timeout, 5xx): the caller retries.
        DirectoryRefused
            A permanent refusal (4xx): retrying the same request cannot help.
        """

    def close(self) -> None:  # noqa: B027 - most directories hold nothing to release
        """Release connections; the default holds none."""


class DirectoryUnavailable(RuntimeError):
    """The directory could not answer now (timeout, 5xx, rate limit); try again later."""


class DirectoryRefused(RuntimeError):
    """The directory refused the request for good (4xx): wrong URL, credentials or request."""


def account_to_json(account: Account) -> dict[str, Any]:
    """The wire form of an account (the HTTP directory's answer, the cache's value)."""
    return {
        "personnummer": account.personnummer,
        "status": account.status.value,
        "channels": sorted(account.channels),
        "phone": account.phone,
        "email": account.email,
    }


def account_from_json(data: Mapping[str, Any]) -> Account:
    """An account from its wire form.

    Raises
    ------
    ValueError
        The data is not an account (missing keys, an unknown status, wrong types).
    """
    try:
        channels = data.get("channels") or []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ValueError("channels must be a list of strings")
        phone, email = data.get("phone"), data.get("email")
        if not (phone is None or isinstance(phone, str)) or not (
            email is None or isinstance(email, str)
        ):
            raise ValueError("phone and email must be strings or null")
        return Account(
            str(data["personnummer"]),
            AccountStatus(data["status"]),
            frozenset(channels),
            phone,
            email,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an account: {type(exc).__name__}") from exc


# Swedish numbers PTS reserves for fiction (070-1740605 .. 070-1740699): never a real phone.
_FICTIONAL_MOBILE = [f"+46701740{n:03d}" for n in range(605, 700)]


class SimulatedAccountDirectory(AccountDirectory):
    """A deterministic directory: the same seed gives every process the same answers.

    Shares (per 10,000): 9,000 reachable (35 % SMS only, 25 % e-mail only, 40 % both),
    300 without an account, 250 blocked, 250 without a channel, 200 deactivated.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def account(self, personnummer: str) -> Account:
        """The simulated account of one resident."""
        b = bucket(self.seed, personnummer)
        if b < 300:
            return Account(personnummer, AccountStatus.NO_ACCOUNT)
        if b < 550:
            return Account(personnummer, AccountStatus.BLOCKED, frozenset({"sms"}))
        if b < 800:
            return Account(personnummer, AccountStatus.ACTIVE)
        if b < 1000:
            return Account(personnummer, AccountStatus.DEACTIVATED)
        split = bucket(self.seed + 1, personnummer, 100)
        channels = {"sms"} if split < 35 else {"email"} if split < 60 else {"sms", "email"}
        phone = _FICTIONAL_MOBILE[b % len(_FICTIONAL_MOBILE)] if "sms" in channels else None
        email = f"invanare-{b:04d}@example.org" if "email" in channels else None
        return Account(personnummer, AccountStatus.ACTIVE, frozenset(channels), phone, email)

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        return {number: self.account(number) for number in personnummer}
