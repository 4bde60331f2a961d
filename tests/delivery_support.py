"""Helpers for the delivery, read-receipt and clinic-view tests: cases ready for dispatch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker

from contracts.attachments_cleared import AttachmentsClearedV1
from tests.databases import migrated_engine
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.notifiers import SimulatedEmailSender, SimulatedSmsGateway
from workers.adapters.population import test_personnummer
from workers.bootstrap import Context, build_context
from workers.case_states import CaseState
from workers.store import batches, cases
from workers.store.cases import Transition
from workers.store.engine import upgrade

CLINIC_A = "SE2321000016-A001"
CLINIC_B = "SE2321000016-B002"
SENDER = "SE2321000016-S100"
STAFF_A = "SE2321000016-U111"
BATCH_SENDER = "SE2321000016-S101"


def received_row(
    case_id: str, *, idempotency_key: str | None = None, template_id: str = "kallelse-screening"
) -> dict[str, str]:
    """A row for ``cases.insert_received``: one case of the test clinic for the test resident
    (its idempotency key is its id unless another is given)."""
    return {
        "id": case_id,
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": template_id,
        "personnummer": "191212121212",
        "idempotency_key": case_id if idempotency_key is None else idempotency_key,
    }


def reachable_residents(seed: int, count: int, channels: frozenset[str]) -> list[str]:
    """Test personnummer whose simulated account is active with exactly these channels."""
    directory = SimulatedAccountDirectory(seed)
    found = []
    for number in test_personnummer():
        account = directory.account(number)
        if account.status == AccountStatus.ACTIVE and account.channels == channels:
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError("not enough residents of that kind in the test population")


def cleared_item(
    case_id: str,
    personnummer: str,
    *,
    clinic: str = CLINIC_A,
    channels: Sequence[str] = ("email", "sms"),
    template_id: str = "meddelande-till-invanare",
    batch_id: str | None = "b1",
) -> AttachmentsClearedV1:
    """A case as the attachment check lets it through."""
    return AttachmentsClearedV1(
        case_id=case_id,
        clinic_hsa_id=clinic,
        batch_id=batch_id,
        personnummer=personnummer,
        template_id=template_id,
        template_version=1,
        answerable=False,
        subject="Meddelande",
        body="Hej! Detta är ett testmeddelande.",
        signature="Testmottagningen",
        sent_on=dt.date(2026, 11, 25),
        channels=list(channels),
    )


def store_cleared(conn: Any, items: Sequence[AttachmentsClearedV1]) -> None:
    """Record the cases and move them to ``cleared``, as the first three stages would."""
    cases.insert_received(
        conn,
        [
            {
                "id": item.case_id,
                "clinic_hsa_id": item.clinic_hsa_id,
                "sender_hsa_id": SENDER,
                "template_id": item.template_id,
                "template_version": item.template_version,
                "personnummer": item.personnummer,
                "idempotency_key": item.case_id,
                "batch_id": item.batch_id,
            }
            for item in items
        ],
    )
    for state in (CaseState.VALIDATED, CaseState.COMPOSED, CaseState.CLEARED):
        cases.apply(conn, [Transition(item.case_id, state) for item in items], stage="test")


def cleared_on(
    database_url: str, name: str, residents: Sequence[str], **item: Any
) -> tuple[sa.Engine, list[AttachmentsClearedV1]]:
    """The database upgraded and a case ``{name}-{i}`` for each resident stored as cleared
    (``item``: ``cleared_item``'s options); the database's engine and the cases."""
    engine = migrated_engine(database_url)
    items = [cleared_item(f"{name}-{i}", p, **item) for i, p in enumerate(residents)]
    with engine.begin() as conn:
        store_cleared(conn, items)
    return engine, items


@contextmanager
def sending_context(
    sqlite_url: str, tmp_path: Path, now: Callable[[], dt.datetime]
) -> Iterator[Context]:
    """A process's context for the dispatch stages on SQLite and a stub broker, with the
    in-process SMS gateway and e-mail sender and the clock ``now``; its actors declared."""
    from workers.actors import declare_actors
    from workers.settings import Settings

    upgrade(sqlite_url)
    settings = Settings(database_url=sqlite_url, blob_dir=tmp_path / "blobs")
    broker = StubBroker()
    context = build_context(settings, broker)
    context.sms = SimulatedSmsGateway()
    context.email = SimulatedEmailSender()
    context.now = now
    declare_actors(broker, lambda: context)
    yield context
    broker.close()
    context.engine.dispose()


def create_batch(
    conn: sa.Connection,
    batch_id: str,
    name: str,
    clinic_hsa_id: str,
    *,
    template_id: str = "meddelande-till-invanare",
    total: int = 0,
) -> batches.Batch:
    """A running dispatch of ``clinic_hsa_id``'s, signed by ``BATCH_SENDER``."""
    return batches.create(
        conn,
        batch_id=batch_id,
        name=name,
        clinic_hsa_id=clinic_hsa_id,
        sender_hsa_id=BATCH_SENDER,
        template_id=template_id,
        total=total,
    )
