"""Done when: a clinic adopts, adapts and activates a starter template from the command line,
then sends cases with it through the whole pipeline; and a case in flight keeps its version."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.send_case import SendCaseV2
from producers.cli import app
from producers.demo import InProcessPipeline, start_pipeline, wait_for
from workers import recipient_validation
from workers.adapters.account_directory import AccountDirectory, AccountStatus
from workers.adapters.inbox import InboxMessage, SimulatedInbox
from workers.adapters.population import draw_residents
from workers.settings import Settings
from workers.stage import emit
from workers.store import notifications
from workers.store.schema import cases

pytestmark = pytest.mark.e2e

CLINIC = "SE2321000016-VC01"
OTHER = "SE2321000016-VC02"
SENDER = "SE2321000016-S101"
COPY = "vc01.meddelande-till-invanare"
runner = CliRunner()


class RecordingInbox(SimulatedInbox):
    """The simulated inbox, keeping each delivered message whole for the test to read."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: dict[str, InboxMessage] = {}

    def deliver(self, message: InboxMessage) -> str:
        self.messages[message.case_id] = message
        return super().deliver(message)


def templates(database: str, *args: str) -> None:
    result = runner.invoke(app, ["templates", *args, "--database", database])
    assert result.exit_code == 0, result.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        f"sqlite:///{tmp_path}/omvant.db"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    assert runner.invoke(app, ["db", "upgrade", "--database", url]).exit_code == 0
    return url


@pytest.fixture
def pipeline(
    database_url: str, tmp_path: Path, queue_prefix: str
) -> Iterator[tuple[InProcessPipeline, RecordingInbox]]:
    settings = Settings(
        database_url=database_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        template_cache_seconds=0.2,
    )
    running = start_pipeline(settings, threads=4)
    inbox = RecordingInbox()
    running.ctx.inbox = inbox
    yield running, inbox
    running.stop()


def reachable_residents(directory: AccountDirectory, count: int) -> list[str]:
    numbers = draw_residents(count * 6, seed=4)
    accounts = directory.lookup_many(numbers)
    found = [
        n for n in numbers if accounts[n].status == AccountStatus.ACTIVE and accounts[n].channels
    ]
    assert len(found) >= count
    return found[:count]


def send(number: str, batch: str, index: int, **changes: object) -> SendCaseV2:
    data: dict[str, object] = {
        "clinic_hsa_id": CLINIC,
        "sender_hsa_id": SENDER,
        "template_id": COPY,
        "fragments": ["halsning-namn", "tid-bokad", "tid-bokad"],
        "fields": {"fornamn": "Eva"},
        "personnummer": number,
        "idempotency_key": f"{batch}:{index}",
        "batch_id": batch,
        **changes,
    }
    return SendCaseV2.model_validate(data)


def rows(pipeline: InProcessPipeline, batch: str) -> dict[str, sa.Row[tuple[object, ...]]]:
    with pipeline.ctx.engine.connect() as conn:
        found = conn.execute(sa.select(cases).where(cases.c.batch_id == batch)).all()
    return {row.idempotency_key: row for row in found}


def settled(pipeline: InProcessPipeline, batch: str) -> int:
    with pipeline.ctx.engine.connect() as conn:  # delivered counts once no notice is open
        return notifications.count_settled(conn, batch_id=batch)


def test_a_clinic_adopts_adapts_activates_and_sends_with_a_starter_template(
    database_url: str, pipeline: tuple[InProcessPipeline, RecordingInbox]
) -> None:
    running, inbox = pipeline
    suffix = uuid.uuid4().hex[:8]
    copy = f"{COPY}-{suffix}"
    templates(
        database_url, "adopt", "meddelande-till-invanare", "--clinic", CLINIC, "--id", copy,
        "--contact", "Vårdcentral Norrmalm, 010-123 45 67",
        "--contact-card", "https://www.1177.se/hitta-vard/kontaktkort/norrmalm",
    )  # fmt: skip
    templates(
        database_url, "edit", copy, "--clinic", CLINIC, "--name", "Meddelande från Norrmalm",
        "--fragment", "tid-bokad=Välkommen på besök <b>nästa vecka</b>.",
    )  # fmt: skip
    templates(database_url, "activate", copy, "--clinic", CLINIC)
    batch = f"e2e-{suffix}"
    residents = reachable_residents(running.ctx.directory, 3)
    requests = [
        send(residents[0], batch, 0, template_id=copy),
        send(residents[1], batch, 1, template_id=copy, fields={"fornamn": "<script>x</script>"}),
        send(residents[2], batch, 2, template_id=copy, clinic_hsa_id=OTHER),
    ]
    emit(running.ctx, requests, correlation_id=batch)
    assert wait_for(lambda: settled(running, batch), 3, timeout=60) == 3
    found = rows(running, batch)
    first, second, other = found[f"{batch}:0"], found[f"{batch}:1"], found[f"{batch}:2"]
    assert first.state in ("delivered", "notified")
    assert (first.subject, first.template_version) == ("Meddelande från Norrmalm", 2)
    assert (other.state, other.reason) == ("rejected", "template-unknown")
    message = inbox.messages[first.id]
    assert message.subject == "Meddelande från Norrmalm"
    assert html.unescape(message.body).split("\n\n") == [
        "Hej Eva!",
        "Välkommen på besök <b>nästa vecka</b>.",
        "Välkommen på besök <b>nästa vecka</b>.",
        "Vårdcentral Norrmalm, 010-123 45 67",
        "Kontaktkort: https://www.1177.se/hitta-vard/kontaktkort/norrmalm",
    ]
    assert "<b>" not in message.body
    assert message.signature.endswith(html.escape(running.ctx.catalogue.unit(CLINIC).name))  # type: ignore[union-attr]
    assert message.sent_on == running.ctx.today()
    hostile = inbox.messages[second.id]
    assert hostile.body.startswith("Hej &lt;script&gt;x&lt;/script&gt;!")
    assert other.id not in inbox.messages


def test_a_case_in_flight_keeps_the_version_it_was_sent_with(
    database_url: str, tmp_path: Path, queue_prefix: str
) -> None:
    """Intake runs, the template is edited while the case waits on the composition queue,
    then the workers run: the case composes with the version current when it arrived."""
    suffix = uuid.uuid4().hex[:8]
    copy = f"{COPY}-{suffix}"
    templates(database_url, "adopt", "meddelande-till-invanare", "--clinic", CLINIC, "--id", copy)
    templates(database_url, "activate", copy, "--clinic", CLINIC)
    settings = Settings(
        database_url=database_url,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "blobs",
        template_cache_seconds=0.0,
    )
    running = start_pipeline(settings, threads=2)
    try:
        running.worker.stop()
        inbox = RecordingInbox()
        running.ctx.inbox = inbox
        batch = f"pin-{suffix}"
        number = reachable_residents(running.ctx.directory, 1)[0]
        request = send(number, batch, 0, template_id=copy)
        from contracts.registry import envelope_for, parse

        recipient_validation.process(parse(envelope_for([request]).model_dump()), running.ctx)
        assert rows(running, batch)[f"{batch}:0"].state == "validated"
        templates(database_url, "edit", copy, "--clinic", CLINIC, "--name", "Nytt namn")
        worker = dramatiq.Worker(running.ctx.broker, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            assert wait_for(lambda: settled(running, batch), 1, timeout=60) == 1
        finally:
            worker.stop()
        row = rows(running, batch)[f"{batch}:0"]
        assert (row.template_version, row.subject) == (1, "Meddelande till invånare")
        assert inbox.messages[row.id].subject == "Meddelande till invånare"
        after = send(number, batch, 1, template_id=copy)
        recipient_validation.process(parse(envelope_for([after]).model_dump()), running.ctx)
        worker = dramatiq.Worker(running.ctx.broker, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            assert wait_for(lambda: settled(running, batch), 2, timeout=60) == 2
        finally:
            worker.stop()
        assert rows(running, batch)[f"{batch}:1"].template_version == 2
    finally:
        running.ctx.broker.close()
        running.ctx.engine.dispose()
