"""A message's end is recorded even when the database is away for a moment (a crash-restart):
a start row left behind would count a death that never happened (``workers/poison.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
import sqlalchemy as sa
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker

from tests.databases import migrated_engine
from workers.poison import SetAsidePoison
from workers.store.deliveries import started
from workers.store.schema import message_deliveries


class RestartingEngine:
    """The real engine, except that its first ``away`` transactions find the database down."""

    def __init__(self, engine: sa.Engine, away: int) -> None:
        self.engine, self.away = engine, away

    def begin(self) -> Any:
        if self.away:
            self.away -= 1
            raise sa.exc.OperationalError("BEGIN", {}, ConnectionRefusedError("restarting"))
        return self.engine.begin()


@dataclass
class Wiring:
    engine: Any


def test_a_message_end_is_recorded_after_a_database_restart(sqlite_url: str) -> None:
    engine = migrated_engine(sqlite_url)
    message = MessageProxy(
        dramatiq.Message(
            queue_name="composition", actor_name="compose", args=(), kwargs={}, options={}
        )
    )
    with engine.begin() as conn:
        started(conn, "composition", message.message_id)
    wiring = Wiring(RestartingEngine(engine, away=2))
    guard = SetAsidePoison(lambda: wiring, limit=3)  # type: ignore[arg-type, return-value]
    guard.after_process_message(StubBroker(), message)
    with engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(message_deliveries)).scalar()
    assert left == 0
    engine.dispose()
