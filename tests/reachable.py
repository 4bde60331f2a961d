"""Residents of the simulated population that recipient validation lets through."""

from __future__ import annotations

from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.population import draw_residents


def reachable_residents(count: int, seed: int) -> list[str]:
    """``count`` official test numbers with an active login and a notification channel."""
    directory = SimulatedAccountDirectory(seed)
    drawn = draw_residents(count * 3, seed=seed)
    accounts = directory.lookup_many(drawn)
    ok = [n for n in drawn if accounts[n].status == AccountStatus.ACTIVE and accounts[n].channels]
    assert len(ok) >= count
    return ok[:count]
