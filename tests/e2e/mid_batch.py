"""What the kill-mid-batch tests share: a batch of cleared cases put on inbox delivery, a worker
on the two sending stages killed (``kill -9``) while the provider is slow to answer, and a fresh
worker run until the in-doubt notifications are settled. ``MidBatch`` holds one test's servers
and folder (the ``mid_batch`` fixture, ``tests/e2e/conftest.py``); each test says what its
provider does and what settled means."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from contracts.attachments_cleared import AttachmentsClearedV1
from tests.delivery_support import cleared_on, reachable_residents
from tests.e2e.harness import (
    crash_when,
    enqueue_dispatch,
    running_workers,
    wait_until,
    worker_env_in,
)
from workers.store import notifications
from workers.store.schema import cases

SENDING_STAGES = ["notification-dispatch", "notification-sending"]
IN_FLIGHT_SECONDS = "3"
"""``OMVANT_NOTIFICATION_IN_FLIGHT_SECONDS`` of the workers: a claimed notification not marked
within it is in doubt; short, so that the fresh worker settles the in-doubt ones soon."""


class SlowToAnswer(Protocol):
    """A provider simulator that can take a send and hold its answer back (``delay_after``)."""

    def behave(self, **changes: Any) -> Any: ...


@dataclass
class MidBatch:
    """One test's batch: its servers, its folder, and (after ``clear``) its cases."""

    broker_url: str
    database_url: str
    prefix: str
    folder: Path
    engine: sa.Engine | None = None
    items: list[AttachmentsClearedV1] = field(default_factory=list)

    def clear(self, cases: int, *channels: str) -> list[str]:
        """Store ``cases`` cases, to residents reachable on every one of ``channels`` and
        notified on those, as cleared (ready for inbox delivery); their case ids."""
        residents = reachable_residents(1177, cases, frozenset(channels))
        name = f"{self.prefix.rstrip('.')}-{'-'.join(channels)}"
        self.engine, self.items = cleared_on(
            self.database_url, name, residents, channels=list(channels)
        )
        return [i.case_id for i in self.items]

    def env(self, **settings: str) -> dict[str, str]:
        """The workers' environment: this test's servers and the short in-flight window
        (``IN_FLIGHT_SECONDS``), ``settings`` on top."""
        return worker_env_in(
            self.folder,
            self.broker_url,
            self.database_url,
            self.prefix,
            **{"OMVANT_NOTIFICATION_IN_FLIGHT_SECONDS": IN_FLIGHT_SECONDS, **settings},
        )

    def ledger(self) -> list[notifications.Entry]:
        """The notification ledger's rows of the batch's cases now."""
        assert self.engine is not None, "clear() the cases first"
        with self.engine.connect() as conn:
            keys = [i.case_id for i in self.items]
            return list(notifications.entries_for(conn, keys).values())

    def case_states(self) -> set[str]:
        """The states the batch's cases are in now."""
        assert self.engine is not None, "clear() the cases first"
        keys = [i.case_id for i in self.items]
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(cases.c.state).where(cases.c.id.in_(keys))).scalars())

    def statuses(self) -> dict[str, int]:
        """How many of the ledger's rows are in each status."""
        return dict(Counter(row.status for row in self.ledger()))

    def in_doubt(self) -> set[str]:
        """The keys of the ledger's rows in doubt now (pending: claimed, outcome unrecorded)."""
        return {row.key for row in self.ledger() if row.status == notifications.PENDING}

    def kill_when(self, env: dict[str, str], when: Callable[[], bool]) -> None:
        """Put the cases on inbox delivery and run a one-thread worker on the sending stages
        until ``when`` holds; then SIGKILL it."""
        enqueue_dispatch(self.broker_url, self.items, self.prefix)
        crash_when(env, SENDING_STAGES, self.folder / "first.log", when)

    def kill_while_slow(
        self, env: dict[str, str], provider: SlowToAnswer, *, delay: float, when: Callable[[], bool]
    ) -> None:
        """``kill_when`` while ``provider`` takes each send and answers only ``delay`` seconds
        later (the in-doubt window); from then on it answers at once."""
        provider.behave(delay_after=delay)
        self.kill_when(env, when)
        provider.behave(delay_after=0.0)

    def recover(
        self,
        env: dict[str, str],
        settled: Callable[[notifications.Entry], bool],
        *,
        also: Callable[[], bool] = lambda: True,
        timeout: float = 180,
    ) -> list[notifications.Entry]:
        """Run a fresh one-thread worker on the sending stages until every ledger row is
        ``settled`` (and ``also`` holds); the ledger then. The test fails with the statuses and
        the end of the worker's log if that takes more than ``timeout`` seconds."""

        def done() -> bool:
            return also() and all(settled(r) for r in self.ledger())

        with running_workers(env, self.folder / "logs", SENDING_STAGES, threads=1) as worker:
            assert wait_until(done, timeout=timeout), (
                f"{self.statuses()} {self.case_states()}\n{worker.output()[-3000:]}"
            )
        return self.ledger()


def sent(row: notifications.Entry) -> bool:
    """Whether the notification went (the provider confirmed it)."""
    return row.status == notifications.SENT
