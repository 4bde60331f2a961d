"""Recipient validation's decisions, against the simulated directory and fakes of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from contracts.recipient_validated import RecipientValidatedV1
from contracts.send_case import SendCaseV2
from tests.send_cases import greeting
from workers.adapters import population
from workers.adapters.account_directory import (
    Account,
    AccountDirectory,
    AccountStatus,
    DirectoryRefused,
    DirectoryUnavailable,
    SimulatedAccountDirectory,
)
from workers.reasons import Reason
from workers.recipient_validation import check_recipients, handle
from workers.stage import Advance, Reject

SEED = 1177
SIMULATOR = SimulatedAccountDirectory(SEED)
PINS = population.test_personnummer()
COORDS = population.test_samordningsnummer()


def first_with(status: AccountStatus, channels: frozenset[str] | None = None) -> str:
    """The first official test number the simulator gives this status (and channels)."""
    for number in PINS:
        account = SIMULATOR.account(number)
        if account.status == status and (channels is None or account.channels == channels):
            return number
    raise AssertionError(f"no simulated resident is {status} {channels}")


NO_ACCOUNT = first_with(AccountStatus.NO_ACCOUNT)
BLOCKED = first_with(AccountStatus.BLOCKED)
DEACTIVATED = first_with(AccountStatus.DEACTIVATED)
NO_CHANNEL = first_with(AccountStatus.ACTIVE, frozenset())
SMS_ONLY = first_with(AccountStatus.ACTIVE, frozenset({"sms"}))
EMAIL_ONLY = first_with(AccountStatus.ACTIVE, frozenset({"email"}))
BOTH = first_with(AccountStatus.ACTIVE, frozenset({"sms", "email"}))


class RecordingDirectory(AccountDirectory):
    """The simulator, remembering every call it gets."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        self.calls.append(list(personnummer))
        return SIMULATOR.lookup_many(personnummer)


class FailingDirectory(AccountDirectory):
    """A directory that fails every call with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        raise self.error


def short(number: str) -> str:
    """The ten-digit form, with '+' for the hundred-year-old."""
    today = dt.date.today()
    born = (int(number[:4]), int(number[4:6]), int(number[6:8]))
    old = today.year - born[0] - ((today.month, today.day) < born[1:]) >= 100
    return f"{number[2:8]}{'+' if old else '-'}{number[8:]}"


def send_case(number: str, index: int = 0) -> SendCaseV2:
    return greeting(number, f"test:{index}")


@pytest.mark.parametrize(
    ("number", "reason", "channels"),
    [
        (NO_ACCOUNT, Reason.NO_ACCOUNT, ()),
        (BLOCKED, Reason.LOGIN_BLOCKED, ()),
        (DEACTIVATED, Reason.ACCOUNT_DEACTIVATED, ()),
        (NO_CHANNEL, Reason.NO_NOTIFICATION_CHANNEL, ()),
        (SMS_ONLY, None, ("sms",)),
        (EMAIL_ONLY, None, ("email",)),
        (BOTH, None, ("sms", "email")),
    ],
)
def test_reachability_follows_the_directory(
    number: str, reason: Reason | None, channels: tuple[str, ...]
) -> None:
    [check] = check_recipients([f"{number[:8]}-{number[8:]}"], SIMULATOR)
    assert (check.valid, check.normalized, check.kind) == (True, number, "personnummer")
    assert (check.reachable, check.reason, check.channels) == (reason is None, reason, channels)


def test_invalid_numbers_and_samordningsnummer_never_reach_the_directory() -> None:
    directory = RecordingDirectory()
    checks = check_recipients(["199001012386", "19900101-T385", COORDS[0]], directory)
    assert directory.calls == []
    assert [(c.reason, c.detail) for c in checks] == [
        (Reason.INVALID_IDENTITY_NUMBER, "check-digit"),
        (Reason.INVALID_IDENTITY_NUMBER, "interim-number"),
        (Reason.SAMORDNINGSNUMMER_NOT_REACHABLE, "a samordningsnummer cannot log in to 1177"),
    ]
    assert checks[2].valid and checks[2].kind == "samordningsnummer"
    assert not any(c.reachable for c in checks)


def test_a_chunk_asks_the_directory_once_about_each_distinct_resident() -> None:
    directory = RecordingDirectory()
    numbers = [BOTH, short(BOTH), BLOCKED, f"{SMS_ONLY[:8]}-{SMS_ONLY[8:]}", BOTH]
    checks = check_recipients(numbers, directory)
    assert directory.calls == [sorted({BOTH, BLOCKED, SMS_ONLY})]
    assert [c.input for c in checks] == numbers
    assert [c.reachable for c in checks] == [True, True, False, True, True]


def test_surrounding_whitespace_is_ignored_but_kept_as_the_input() -> None:
    [check] = check_recipients([f"  {BOTH}\t"], SIMULATOR)
    assert (check.input, check.normalized, check.reachable) == (f"  {BOTH}\t", BOTH, True)


def test_a_refusing_directory_rejects_only_the_numbers_it_was_asked_about() -> None:
    refused = DirectoryRefused("account directory refused the request: HTTP 401 Unauthorized")
    checks = check_recipients([BOTH, "x", COORDS[0]], FailingDirectory(refused))
    assert [c.reason for c in checks] == [
        Reason.DIRECTORY_REFUSED,
        Reason.INVALID_IDENTITY_NUMBER,
        Reason.SAMORDNINGSNUMMER_NOT_REACHABLE,
    ]
    assert checks[0].detail == str(refused)


def test_an_unavailable_directory_raises_so_the_message_is_retried() -> None:
    with pytest.raises(DirectoryUnavailable):
        check_recipients([BOTH], FailingDirectory(DirectoryUnavailable("HTTP 503")))


def test_handle_passes_the_reachable_on_with_their_channels_and_rejects_the_rest() -> None:
    items = [send_case(short(SMS_ONLY), 0), send_case(BLOCKED, 1)]
    items.append(send_case("20" + "21005448", 2))
    reach, blocked, org = handle(items, SIMULATOR)
    assert isinstance(reach, Advance)
    assert isinstance(reach.next_item, RecipientValidatedV1)
    assert (reach.next_item.personnummer, reach.next_item.channels) == (SMS_ONLY, ["sms"])
    assert reach.transitions[0].values == {"personnummer": SMS_ONLY, "channels": "sms"}
    assert isinstance(blocked, Reject)
    assert (blocked.reason, blocked.values) == (Reason.LOGIN_BLOCKED, {"personnummer": BLOCKED})
    assert isinstance(org, Reject)
    assert (org.reason, org.detail) == (Reason.INVALID_IDENTITY_NUMBER, "organisation-number")
    assert reach.case_id == items[0].resolved_case_id()


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (NO_ACCOUNT, Reason.NO_ACCOUNT),
        (BLOCKED, Reason.LOGIN_BLOCKED),
        (DEACTIVATED, Reason.ACCOUNT_DEACTIVATED),
        (NO_CHANNEL, Reason.NO_NOTIFICATION_CHANNEL),
    ],
)
def test_every_unreachable_verdict_says_why_in_words(number: str, reason: Reason) -> None:
    """The dry run and `recipients check` print the detail beside the code: never empty."""
    (check,) = check_recipients([number], SIMULATOR)
    assert check.reason == reason
    assert check.detail and ("1177" in check.detail or "notifications" in check.detail)
    assert number not in (check.detail or "")
