"""A clock a test moves by hand, for code that takes its clock (and its sleep) as arguments."""

from __future__ import annotations


class ManualClock:
    """Returns ``now`` when called; only the test (or ``sleep``) moves it, so what a test sees
    does not depend on the machine's load."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """A sleep that takes no time: the clock moves on by ``seconds``."""
        self.now += seconds
