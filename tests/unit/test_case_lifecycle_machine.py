"""Final states are final, over generated histories of the case lifecycle (hypothesis).

Stages move cases forward, are redelivered (a message comes back after the case moved on),
crash at every step (the transaction rolls back), reject (a redelivered message may decide
differently, e.g. a template deactivated meanwhile), dead-letter, are cancelled with their
dispatch, and read receipts arrive late or twice. Whatever the order, the recorded state agrees
with a plain model of the rule: states move forward only; a rejection or failure decided by a
stage ends a case only if it has not passed that stage; delivered, notified and read are never
overwritten; rejected and failed are never left. The same machine runs on SQLite and, with
the real server, on PostgreSQL (their SQL differs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from contracts.registry import envelope_for
from tests.delivery_support import cleared_item, store_cleared
from workers.actors import RecordDeadLetters
from workers.bootstrap import Context, build_context
from workers.case_states import CaseState
from workers.reasons import Reason
from workers.settings import Settings
from workers.stage import Advance, Reject, ending, settle
from workers.store import cases
from workers.store.cases import Transition
from workers.store.engine import upgrade
from workers.store.schema import case_events

PIPELINE = [
    CaseState.RECEIVED,
    CaseState.VALIDATED,
    CaseState.COMPOSED,
    CaseState.CLEARED,
    CaseState.DELIVERED,
    CaseState.NOTIFIED,
    CaseState.READ,
]
STAGES = {  # stage -> (the state it takes cases in, the state it moves them to)
    "recipient-validation": (CaseState.RECEIVED, CaseState.VALIDATED),
    "composition": (CaseState.VALIDATED, CaseState.COMPOSED),
    "attachment-check": (CaseState.COMPOSED, CaseState.CLEARED),
    "notification-dispatch": (CaseState.CLEARED, CaseState.DELIVERED),
    "notification-sending": (CaseState.DELIVERED, CaseState.NOTIFIED),
    "read-receipts": (CaseState.DELIVERED, CaseState.READ),
}
ENDS = (CaseState.REJECTED, CaseState.FAILED)
IN_INBOX = {CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ}


def expected_after_move(state: CaseState, target: CaseState) -> CaseState:
    """The model: forward along the pipeline, never out of a final state."""
    if state in ENDS or PIPELINE.index(target) <= PIPELINE.index(state):
        return state
    return target


def expected_after_end(state: CaseState, stage: str, end: CaseState) -> CaseState:
    """The model: a stage's failure ends a case only if the case has not passed the stage
    and is not yet in the inbox."""
    taken_in = STAGES[stage][0]
    if state in ENDS or state in IN_INBOX or taken_in in IN_INBOX:
        return state
    return end if PIPELINE.index(state) <= PIPELINE.index(taken_in) else state


class CaseLifecycle(RuleBasedStateMachine):
    """One machine per example: three fresh cases in the shared database."""

    ctx: Context

    def __init__(self) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:8]
        self.ids = [f"m{run}-{n}" for n in range(3)]
        self.model = dict.fromkeys(self.ids, CaseState.RECEIVED)
        self.reached: dict[str, set[CaseState]] = {c: {CaseState.RECEIVED} for c in self.ids}
        with self.ctx.engine.begin() as conn:
            cases.insert_received(conn, [_received_row(c) for c in self.ids])

    def _has_message(self, case_id: str, stage: str) -> bool:
        """A stage's message for a case exists once the case reached the stage's input (and
        stays: redelivery), except that read receipts only come for delivered cases."""
        return STAGES[stage][0] in self.reached[case_id]

    cases_ = st.integers(0, 2)
    stages = st.sampled_from(sorted(STAGES))

    @rule(n=cases_, stage=stages)
    def stage_moves_the_case_on(self, n: int, stage: str) -> None:
        case_id = self.ids[n]
        if not self._has_message(case_id, stage):
            return
        target = STAGES[stage][1]
        settle(
            self.ctx,
            stage=stage,
            decisions=[Advance(case_id, (Transition(case_id, target),))],
            correlation_id="c",
        )
        self._expect(case_id, expected_after_move(self.model[case_id], target))

    @rule(n=cases_, stage=stages)
    def stage_rejects_the_case(self, n: int, stage: str) -> None:
        case_id = self.ids[n]
        if not self._has_message(case_id, stage):
            return
        settle(
            self.ctx,
            stage=stage,
            decisions=[Reject(case_id, Reason.TEMPLATE_INACTIVE)],
            correlation_id="c",
        )
        self._expect(case_id, expected_after_end(self.model[case_id], stage, CaseState.REJECTED))

    @rule(n=cases_, stage=stages)
    def the_stages_message_is_dead_lettered(self, n: int, stage: str) -> None:
        case_id = self.ids[n]
        if not self._has_message(case_id, stage):
            return
        with self.ctx.engine.begin() as conn:
            cases.apply(
                conn,
                ending(
                    [case_id],
                    CaseState.FAILED,
                    decided_by=stage,
                    reason=Reason.TECHNICAL_FAILURE,
                ),
                stage="dead-letter",
            )
        self._expect(case_id, expected_after_end(self.model[case_id], stage, CaseState.FAILED))

    @rule(n=cases_, stage=stages)
    def the_dispatch_is_cancelled_while_the_stage_holds_the_case(self, n: int, stage: str) -> None:
        case_id = self.ids[n]
        if not self._has_message(case_id, stage):
            return
        with self.ctx.engine.begin() as conn:
            cases.apply(
                conn,
                ending(
                    [case_id],
                    CaseState.REJECTED,
                    decided_by=stage,
                    reason=Reason.BATCH_CANCELLED,
                ),
                stage="batch-control",
            )
        self._expect(case_id, expected_after_end(self.model[case_id], stage, CaseState.REJECTED))

    @rule(n=cases_, stage=stages, end=st.booleans())
    def the_worker_crashes_before_its_transaction_commits(
        self, n: int, stage: str, end: bool
    ) -> None:
        case_id = self.ids[n]
        transitions = (
            ending([case_id], CaseState.FAILED, decided_by=stage, reason="x")
            if end
            else [Transition(case_id, STAGES[stage][1])]
        )
        with pytest.raises(KeyboardInterrupt), self.ctx.engine.begin() as conn:
            cases.apply(conn, transitions, stage=stage)
            raise KeyboardInterrupt  # the process dies: nothing of the transaction stays
        self._expect(case_id, self.model[case_id])

    def _expect(self, case_id: str, state: CaseState) -> None:
        self.model[case_id] = state
        if state not in ENDS:
            self.reached[case_id].add(state)

    @invariant()
    def the_records_agree_with_the_model(self) -> None:
        with self.ctx.engine.connect() as conn:
            assert cases.states_of(conn, self.ids) == self.model

    @invariant()
    def no_case_that_reached_the_inbox_is_ended(self) -> None:
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(case_events.c.case_id, case_events.c.state)
                .where(case_events.c.case_id.in_(self.ids))
                .order_by(case_events.c.id)
            ).all()
        seen: dict[str, list[str]] = {}
        for case_id, state in rows:
            seen.setdefault(case_id, []).append(state)
        for history in seen.values():
            ended = [i for i, s in enumerate(history) if s in ENDS]
            assert len(ended) <= 1 and (not ended or ended[0] == len(history) - 1), history
            if ended:
                assert not IN_INBOX & set(history), history


def _received_row(case_id: str) -> dict[str, str]:
    return {
        "id": case_id,
        "clinic_hsa_id": "SE2321000016-VC01",
        "sender_hsa_id": "SE2321000016-S101",
        "template_id": "t",
        "personnummer": "191212121212",
        "idempotency_key": case_id,
        "intake_message_id": "m1",
    }


def _context(url: str, tmp_path: Path) -> Iterator[Context]:
    upgrade(url)
    broker = StubBroker()
    ctx = build_context(Settings(database_url=url, blob_dir=tmp_path / "blobs"), broker)
    yield ctx
    broker.close()
    ctx.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = (
        f"sqlite:///{tmp_path}/machine.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    yield from _context(url, tmp_path)


def test_final_states_are_final_over_generated_histories(ctx: Context) -> None:
    CaseLifecycle.ctx = ctx
    examples = 60 if ctx.engine.dialect.name == "sqlite" else 30
    run_state_machine_as_test(
        CaseLifecycle,
        settings=settings(max_examples=examples, stateful_step_count=30, deadline=None),
    )


def test_a_dead_lettered_dispatch_message_does_not_fail_a_case_that_was_read(
    ctx: Context,
) -> None:
    """The reproduction: the dispatch stage's message for a case that was since read is
    dead-lettered (e.g. a quiet-hours retry after a broker outage). The case stays read;
    a chunk-mate that never got past dispatch is failed."""
    run = uuid.uuid4().hex[:6]
    read = cleared_item(f"dl-read-{run}", "191212121212")
    stuck = cleared_item(f"dl-stuck-{run}", "191212121212")
    with ctx.engine.begin() as conn:
        store_cleared(conn, [read, stuck])
        for state in (CaseState.DELIVERED, CaseState.NOTIFIED, CaseState.READ):
            cases.apply(conn, [Transition(read.case_id, state)], stage="test")
    message = dramatiq.Message(
        queue_name="notification-dispatch",
        actor_name="dispatch_notifications",
        args=(envelope_for([read, stuck]).model_dump(mode="json"),),
        kwargs={},
        options={},
    )
    proxy = MessageProxy(message)
    proxy.fail()
    RecordDeadLetters(lambda: ctx).after_process_message(
        ctx.broker, proxy, exception=RuntimeError("boom")
    )
    with ctx.engine.connect() as conn:
        states = cases.states_of(conn, [read.case_id, stuck.case_id])
    assert states == {read.case_id: CaseState.READ, stuck.case_id: CaseState.FAILED}
