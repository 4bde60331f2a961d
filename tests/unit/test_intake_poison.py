"""A message that kills the intake bridge every time is set aside, and the next one flows.

The death is one that escapes every handler (a ``BaseException`` out of the broker, as an
interrupt or the runtime's own exit would), so the bridge's ``run`` ends with the message
unacknowledged; a new bridge (the restarted process) gets it again, flagged redelivered, as
RabbitMQ and a Redis consumer group hand it out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from workers.intake_bridge import Delivery, IntakeBridge, IntakeSource, sign
from workers.settings import Settings
from workers.store.engine import make_engine, upgrade
from workers.store.schema import message_deliveries, rejected_messages

SECRET = "s"
RECORD = {
    "clinic_hsa_id": "SE2321000016-VC01",
    "sender_hsa_id": "SE2321000016-S101",
    "template_id": "meddelande-till-invanare",
    "personnummer": "19121212-1212",
}


class Died(BaseException):
    """What ends the bridge's process: nothing in the bridge may catch it."""


class QueueSource(IntakeSource):
    """A broker queue in memory: what is not acknowledged is handed out again, flagged."""

    def __init__(self) -> None:
        self.waiting: list[Delivery] = []
        self.handed: set[int] = set()
        self.rejects: list[dict[str, Any]] = []

    def put(self, body: bytes) -> None:
        headers = {
            "omvant-key-id": "k",
            "omvant-signature": sign(body, SECRET),
            "omvant-contract-version": "1",
        }
        self.waiting.append(Delivery(body, headers, token=len(self.waiting) + len(self.handed)))

    def receive(self, max_count: int, timeout: float) -> list[Delivery]:
        out = []
        for delivery in self.waiting[:max_count]:
            delivery.redelivered = id(delivery) in self.handed
            self.handed.add(id(delivery))
            out.append(delivery)
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.waiting.remove(delivery)

    def reject(self, delivery: Delivery, record: bytes) -> None:
        self.rejects.append(json.loads(record))
        self.waiting.remove(delivery)

    def purge_rejects(self, older_than: Any) -> int:
        return 0

    def recover(self) -> None:
        pass

    def close(self) -> None:
        pass


class DeadlyBroker:
    """Takes the pipeline's messages; one holding the poison key ends the process."""

    def __init__(self) -> None:
        self.enqueued: list[Any] = []

    def enqueue(self, message: Any, delay: int | None = None) -> Any:
        if "poison" in json.dumps(message.args):
            raise Died
        self.enqueued.append(message)
        return message


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path}/o.db"
    upgrade(url)
    return Settings(database_url=url, intake_keys={"k": SECRET}, poison_deliveries=2)


def test_a_message_that_kills_the_bridge_is_set_aside_after_the_limit(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    source = QueueSource()
    broker = DeadlyBroker()
    source.put(json.dumps({**RECORD, "idempotency_key": "poison"}).encode())
    deaths = 0
    for _ in range(10):  # each round: a fresh bridge, as a restarted process
        bridge = IntakeBridge(source, settings=settings, broker=broker, engine=engine)
        try:
            bridge.run_once(timeout=0)
            break
        except Died:
            deaths += 1
    assert deaths == 1 + settings.poison_deliveries  # the first delivery, then 2 counted starts
    assert [r["reason"] for r in source.rejects] == ["poison-message"]
    assert source.rejects[0]["authenticated"] is False  # nothing of the body kept in clear
    assert source.waiting == []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(rejected_messages.c.reason)).scalars().all()
        marks = conn.execute(sa.select(sa.func.count()).select_from(message_deliveries)).scalar()
    assert rows == ["poison-message"] and marks == 0
    # the intake goes on: the next message is taken in
    source.put(json.dumps({**RECORD, "idempotency_key": "fine"}).encode())
    bridge = IntakeBridge(source, settings=settings, broker=broker, engine=engine)
    stop = threading.Event()
    bridge.run_once(timeout=0)
    stop.set()
    assert bridge.counts.accepted == 1 and len(broker.enqueued) == 1
