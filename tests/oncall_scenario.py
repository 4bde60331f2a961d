"""The on-call scenario of issue 12, shared by the in-process and the real-broker tests: an
outage, a poison case and an unknown template each leave a failure record; once the outage is
over and the template exists, a replay by reason puts them through exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers.demo import InProcessPipeline, wait_for
from tests.reachable import reachable_residents

__all__ = ["reachable_residents"]
from workers.adapters.account_directory import (
    Account,
    DirectoryUnavailable,
    SimulatedAccountDirectory,
)
from workers.stage import emit
from workers.store import notifications
from workers.store.schema import cases, failures, notification_ledger
from workers.templates import store as template_store
from workers.templates.model import validated

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
TEMPLATE = "meddelande-till-invanare"


class BreakableDirectory(SimulatedAccountDirectory):
    """The simulated directory, with an outage to switch on and off and one resident whose
    look-up always raises (a poison case; the error names the personnummer, which the failure
    record must mask)."""

    def __init__(self, seed: int, poison: str) -> None:
        super().__init__(seed)
        self.poison = poison
        self.down = False

    def lookup_many(self, personnummer: Sequence[str]) -> dict[str, Account]:
        if self.down:
            raise DirectoryUnavailable("the directory answers 503")
        if self.poison in personnummer:
            raise RuntimeError(f"the directory falls over on {self.poison}")
        return super().lookup_many(personnummer)


@dataclass
class Scenario:
    """The cases of one run: by what happens to them."""

    batch: str
    outage: list[SendCaseV2]
    poison: SendCaseV2
    unknown_template: list[SendCaseV2]
    good: list[SendCaseV2]
    new_template: str

    @property
    def everything(self) -> list[SendCaseV2]:
        """Every case of the run."""
        return [*self.outage, self.poison, *self.unknown_template, *self.good]


def request(number: str, batch: str, index: int, template: str = TEMPLATE) -> SendCaseV2:
    """One send request for a reachable resident."""
    return SendCaseV2.model_validate(
        {
            "clinic_hsa_id": CLINIC,
            "sender_hsa_id": SENDER,
            "template_id": template,
            "personnummer": number,
            "free_text": "Hej! Välkommen på besök.",
            "idempotency_key": f"{batch}:{index}",
            "batch_id": batch,
        }
    )


def build(seed: int = 1177) -> tuple[Scenario, BreakableDirectory]:
    """A fresh scenario and the directory that plays it."""
    batch = f"oncall-{uuid.uuid4().hex[:8]}"
    numbers = reachable_residents(9, seed=seed)
    new_template = f"vc01.ny-mall-{uuid.uuid4().hex[:6]}"
    scenario = Scenario(
        batch=batch,
        outage=[request(numbers[i], batch, i) for i in range(3)],
        poison=request(numbers[3], batch, 3),
        unknown_template=[request(numbers[i], batch, i, new_template) for i in (4, 5)],
        good=[request(numbers[i], batch, i) for i in (6, 7, 8)],
        new_template=new_template,
    )
    return scenario, BreakableDirectory(seed, numbers[3].replace("-", ""))


def case_rows(engine: sa.Engine, batch: str) -> dict[str, sa.Row[tuple[object, ...]]]:
    """The batch's cases by idempotency key."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(cases).where(cases.c.batch_id == batch)).all()
    return {row.idempotency_key: row for row in found}


def failure_reasons(engine: sa.Engine) -> list[tuple[str, str, int]]:
    """(reason, kind, cases) of every failure record."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(failures).order_by(failures.c.id)).all()
    return sorted((r.reason, r.kind, r.case_count) for r in rows)


def settled_count(
    engine: sa.Engine, batch: str, states: Sequence[str], keys: Sequence[str] | None = None
) -> int:
    """Cases of the batch (of them, those of idempotency ``keys``) in one of ``states``; a
    delivered one only once none of its notifications is still open (the notification-sending
    stage is done with it)."""
    found = case_rows(engine, batch)
    rows = [found[k] for k in keys if k in found] if keys is not None else list(found.values())
    counted = [r for r in rows if r.state in states and r.state != "delivered"]
    delivered = [r.id for r in rows if r.state == "delivered" and "delivered" in states]
    if not delivered:
        return len(counted)
    with engine.connect() as conn:
        return len(counted) + notifications.count_settled(conn, case_ids=delivered)


def run_failures(
    pipeline: InProcessPipeline, scenario: Scenario, directory: BreakableDirectory
) -> None:
    """Play the failures: the outage first (its chunk dead-letters), then the rest."""
    pipeline.ctx.directory = directory
    engine = pipeline.ctx.engine
    directory.down = True
    emit(pipeline.ctx, scenario.outage, correlation_id=scenario.batch)
    outage = len(scenario.outage)
    failed = wait_for(
        lambda: settled_count(engine, scenario.batch, ("failed",)), outage, timeout=90
    )
    assert failed == outage, "the outage never failed"
    directory.down = False
    emit(pipeline.ctx, [scenario.poison], correlation_id=scenario.batch)
    emit(pipeline.ctx, [*scenario.unknown_template, *scenario.good], correlation_id=scenario.batch)
    ended = ("failed", "rejected", "notified", "delivered")
    total = len(scenario.everything)
    assert (
        wait_for(lambda: settled_count(engine, scenario.batch, ended), total, timeout=90) == total
    )


def create_template(engine: sa.Engine, template_id: str) -> None:
    """The fix for ``template-unknown``: the clinic creates and activates the template."""
    template = validated(
        {
            "id": template_id,
            "kind": "information",
            "scope": "local",
            "owner": CLINIC,
            "name": "Ny mall",
            "text": "Hej!",
            "instruction": ".",
            "template_type": "information",
            "active": True,
        }
    )
    with engine.begin() as conn:
        template_store.create(conn, template)


def notifications_per_case(
    engine: sa.Engine, case_ids: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Sent notifications per case and channel (a replay must not send any twice)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(notification_ledger.c.case_id, notification_ledger.c.channel, sa.func.count())
            .where(
                notification_ledger.c.case_id.in_(list(case_ids)),
                notification_ledger.c.status == "sent",
            )
            .group_by(notification_ledger.c.case_id, notification_ledger.c.channel)
        ).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}
