"""The dispatch's enqueue path: records validated once equal the SendCase they stand for, chunks
go through a publish window, and the batch's count never claims a case the broker lacks,
even when the broker refuses a publish in the middle of a dispatch."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.registry import describe, parse
from contracts.send_case import _CASE_NAMESPACE, SendCaseV2, case_id_for, key_case_ids
from producers.client import OmvantClient, Recipient
from producers.dispatch_records import DispatchRecords
from producers.intake_publisher import IntakePublisher
from workers.actors import declare_actors
from workers.adapters import population
from workers.broker import GuardedStubBroker
from workers.enqueue import intake_message
from workers.publish_window import PublishWindow
from workers.routes import lane_for
from workers.settings import Settings
from workers.store import batches
from workers.store.engine import upgrade

CLINIC = "SE2321000016-VC01"
SENDER = "SE2321000016-S101"
TERMS: dict[str, Any] = {
    "clinic_hsa_id": CLINIC,
    "sender_hsa_id": SENDER,
    "template_id": "kallelse-screening",
    "fragments": ["tid", "avboka"],
    "attachments": [],
    "priority": "normal",
    "batch_id": "dispatch-0123456789abcdef",
}

texts = st.text(st.characters(codec="utf-8"), max_size=70)


def test_sendcase_has_no_validator_across_fields() -> None:
    # DispatchRecords validates the shared terms once and each case's own fields alone
    decorators = SendCaseV2.__pydantic_decorators__
    assert not decorators.model_validators
    assert not decorators.field_validators


@settings(max_examples=300, deadline=None)
@given(
    personnummer=texts,
    fields=st.dictionaries(
        st.from_regex(r"[a-zA-Z_][a-z0-9_]{0,41}", fullmatch=True), texts, max_size=3
    ),
    key=texts,
)
def test_a_dispatch_record_is_the_sendcase_dump_or_its_error(
    personnummer: str, fields: dict[str, str], key: str
) -> None:
    made = DispatchRecords(**TERMS)
    try:
        whole = SendCaseV2(**TERMS, personnummer=personnummer, fields=fields, idempotency_key=key)
    except ValidationError as expected:
        with pytest.raises(ValidationError) as refused:
            made.record(personnummer, fields, key)
        assert describe(refused.value) == describe(expected)
        return
    record = made.record(personnummer, fields, key)
    assert record == whole.model_dump(mode="json")
    assert list(record) == list(whole.model_dump(mode="json"))
    assert made.case_id(record) == whole.resolved_case_id()


def test_shared_terms_that_do_not_validate_refuse_every_case_as_sendcase_does() -> None:
    made = DispatchRecords(**{**TERMS, "template_id": "Not A Template"})
    with pytest.raises(ValidationError) as refused:
        made.record("191212121212", {}, "k:1")
    with pytest.raises(ValidationError) as expected:
        SendCaseV2(
            **{**TERMS, "template_id": "Not A Template"}, personnummer="1", idempotency_key="k"
        )
    assert describe(refused.value) == describe(expected.value)


class RefusingBroker(GuardedStubBroker):
    """The in-process broker, refusing every intake message from the ``refuse_from``-th on
    (as a broker out of space or a vanished connection does, through dramatiq's retries)."""

    def __init__(self, refuse_from: int) -> None:
        super().__init__()
        self.emit_after("process_boot")
        declare_actors(self, lambda: None)  # type: ignore[arg-type, return-value]
        self.refuse_from = refuse_from
        self.taken: list[dramatiq.Message[Any]] = []

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        if "recipient-validation" in message.queue_name:
            if len(self.taken) + 1 >= self.refuse_from:
                raise ConnectionClosed(OSError("the broker refused the publish"))
            self.taken.append(message)
        return super().enqueue(message, delay=delay)


def cases_held(broker: RefusingBroker) -> int:
    return sum(len(parse(m.args[0]).items) for m in broker.taken)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'omvant.db'}"
    upgrade(url)
    return url


def screening_dispatch(
    client: OmvantClient, recipients: list[Recipient], batch_id: str, **options: Any
) -> batches.Batch:
    """``client.dispatch`` of the screening letter to all of ``recipients``, 100 to a chunk."""
    return client.dispatch(
        recipients,
        template_id="kallelse-screening",
        clinic_hsa_id=CLINIC,
        sender_hsa_id=SENDER,
        total=len(recipients),
        batch_id=batch_id,
        chunk_size=100,
        **options,
    )


def test_a_broker_refusing_a_publish_mid_dispatch_leaves_the_count_what_it_holds(
    database: str,
) -> None:
    broker = RefusingBroker(refuse_from=4)
    client = OmvantClient(Settings(broker_url="memory://", database_url=database), broker=broker)
    heard: list[int] = []
    recipients = [Recipient(n, {}) for n in population.draw_residents(1000, seed=3)]
    with pytest.raises(ConnectionClosed):
        screening_dispatch(client, recipients, "refused-midway", progress=heard.append)
    with client.engine.connect() as conn:
        batch = batches.get(conn, "refused-midway")
    assert cases_held(broker) == 300
    assert batch.enqueued == 300  # counted: every case on the broker, none that is not
    assert sum(heard) == 300
    with client.engine.connect() as conn:
        assert batches.progress(conn, batch)["finished"] is False  # visibly not all sent
    broker.refuse_from = 10**9
    after = screening_dispatch(client, recipients[:250], "after-the-refusal")
    assert after.enqueued == 250
    assert cases_held(broker) == 550
    client.close()


class SlowWindow(PublishWindow):
    """A window that confirms each message only ``lag`` publishes later (a broker that
    answers late), holding the rest in flight."""

    def __init__(self, broker: dramatiq.Broker, lag: int) -> None:
        super().__init__(broker)
        self.lag = lag
        self.flight: list[tuple[dramatiq.Message[Any], int]] = []
        self.on_broker = 0

    def publish(self, message: dramatiq.Message[Any], cases: int) -> int:
        self.flight.append((message, cases))
        confirmed = 0
        while len(self.flight) > self.lag:
            held, n = self.flight.pop(0)
            self.broker.enqueue(held)
            self.on_broker += n
            confirmed += n
        return confirmed

    def drain(self) -> int:
        confirmed = 0
        while self.flight:
            held, n = self.flight.pop(0)
            self.broker.enqueue(held)
            self.on_broker += n
            confirmed += n
        return confirmed


def test_the_count_is_recorded_a_few_times_and_never_ahead_of_the_broker(database: str) -> None:
    broker = GuardedStubBroker()
    broker.emit_after("process_boot")
    declare_actors(broker, lambda: None)  # type: ignore[arg-type, return-value]
    window = SlowWindow(broker, lag=5)
    recorded: list[int] = []

    def record(n: int) -> None:
        recorded.append(n)
        assert sum(recorded) <= window.on_broker  # never claims a chunk not on the broker

    client = OmvantClient(Settings(broker_url="memory://", database_url=database), broker=broker)
    with IntakePublisher(broker, record=record, window=window, record_every=3600) as publisher:
        for index in range(40):
            publisher.put(chunk_message(index), 10)
            assert publisher.cases_sent == window.on_broker
    assert sum(recorded) == 400 == window.on_broker
    assert len(recorded) == 1  # one transaction for the whole send, not one per chunk
    client.close()


def chunk_message(index: int) -> dramatiq.Message[Any]:
    made = DispatchRecords(**TERMS)
    records = [made.record("191212121212", {}, f"k:{index}:{i}") for i in range(10)]
    return intake_message(
        records, [made.case_id(r) for r in records], lane=lane_for("normal", 1), correlation_id="c"
    )


@settings(max_examples=300, deadline=None)
@given(clinic=texts, key=texts)
def test_case_ids_are_rfc_4122_version_5_uuids_of_the_clinic_and_key(clinic: str, key: str) -> None:
    expected = str(uuid.uuid5(_CASE_NAMESPACE, f"{clinic}\x1f{key}"))
    assert case_id_for(clinic, key) == expected
    assert key_case_ids(clinic)(key) == expected
