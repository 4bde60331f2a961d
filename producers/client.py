"""The Python client for integrations and operators: send cases, run and steer dispatches.

``OmvantClient`` does in Python what ``omvant dispatch`` and ``omvant batches`` do on the
command line. Bulk sends are pipelined: records are built and validated in chunks, each chunk
travels as one message, so the broker sees a few hundred messages for a dispatch of tens of
thousands of cases, and the messages go from a thread of their own, those built meanwhile
together, with one wait for their confirms (``producers.intake_publisher``); a dispatch counts
its enqueued cases once per such wait, only once the broker has confirmed them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
from pydantic import ValidationError

from contracts.common import AttachmentRef, Priority
from contracts.registry import describe
from contracts.send_case import SendCaseV2
from producers.dispatch_records import DispatchRecords
from producers.intake_publisher import IntakePublisher
from workers.broker import build_broker
from workers.enqueue import intake_message, intake_messages, push_chunk
from workers.publish_window import PublishWindow, publish_window
from workers.routes import lane_for
from workers.settings import Settings
from workers.stage import chunk_size_of
from workers.store import batches
from workers.store.batches import Batch, BatchStatus
from workers.store.engine import check_schema, make_engine

Progress = Callable[[int], None]

DEFAULT_CHUNK = 100
"""Cases per intake message: the stages' own chunk size, so stage 1 is as quick as the rest."""


@dataclass(frozen=True)
class Recipient:
    """One line of a dispatch list: a resident, and personalisation fields for the template."""

    personnummer: str
    fields: dict[str, str]
    line: int = 0
    """Where in the list it was read (0: not from a list)."""


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class OmvantClient:
    """A connection to one Omvänt deployment's broker and database."""

    def __init__(self, settings: Settings, *, broker: dramatiq.Broker | None = None) -> None:
        """Connect; the database's schema must be up to date (``omvant db upgrade``): the
        client never changes it, so an integration needs no DDL rights.

        Raises
        ------
        SchemaOutdated
            The schema is missing or not the one this code needs.
        """
        self.settings = settings
        self.broker = broker or build_broker(settings.broker_url)
        self.engine = make_engine(settings.database_url)
        check_schema(self.engine)
        self._windows = threading.local()
        self._all_windows: list[PublishWindow] = []

    def close(self) -> None:
        """Close the broker connections and the database pool."""
        for window in self._all_windows:
            window.close()
        self.broker.close()
        self.engine.dispose()

    def __enter__(self) -> OmvantClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _publisher(
        self, *, record: Progress | None = None, progress: Progress | None = None
    ) -> IntakePublisher:
        """A publisher through this thread's window: its connection stays open between sends
        (opening one is several round trips, each a wait on a busy machine)."""
        window = getattr(self._windows, "window", None)
        if window is None:
            window = self._windows.window = publish_window(self.broker)
            self._all_windows.append(window)
        return IntakePublisher(self.broker, record=record, progress=progress, window=window)

    def send(self, request: SendCaseV2, *, correlation_id: str | None = None) -> str:
        """Send one case now (urgent cases take the urgent lane); returns its case id."""
        push_chunk(
            self.broker,
            [request],
            correlation_id=correlation_id or uuid.uuid4().hex,
            prefix=self.settings.queue_prefix,
        )
        return request.resolved_case_id()

    def send_many(
        self,
        requests: Iterable[SendCaseV2],
        *,
        correlation_id: str | None = None,
        batch_lane: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
    ) -> int:
        """Send many cases in chunks, one message per chunk and lane; returns how many were
        sent. ``progress`` hears of each message's cases once the broker holds them."""
        correlation = correlation_id or uuid.uuid4().hex
        with self._publisher(progress=progress) as publisher:
            for chunk in chunked(requests, chunk_size):
                for message in intake_messages(
                    chunk,
                    correlation_id=correlation,
                    prefix=self.settings.queue_prefix,
                    batch_lane=batch_lane,
                ):
                    publisher.put(message, len(message.args[0]["payload"]))
        return publisher.cases_sent

    def dispatch(
        self,
        recipients: Iterable[Recipient],
        *,
        template_id: str,
        clinic_hsa_id: str,
        sender_hsa_id: str,
        total: int,
        name: str | None = None,
        batch_id: str | None = None,
        fragments: Iterable[str] = (),
        attachments: Iterable[AttachmentRef] = (),
        priority: Priority = "normal",
        chunk_size: int | None = None,
        progress: Progress | None = None,
        on_invalid: Callable[[int, str], None] | None = None,
    ) -> Batch:
        """Send one template to every recipient as a new batch (dispatch); ``total`` is how many
        recipients there are, so progress can be shown before the last one is sent.
        ``attachments`` (stored already) are shared by every case; ``priority="urgent"`` sends
        the whole dispatch on the urgent lanes. ``chunk_size`` (cases per message) defaults to
        the settings' ``bulk_chunk_size`` (the dispatch's bulk lane), ``chunk_size`` when urgent.

        A recipient whose record does not validate (e.g. a field value too long) is not sent:
        ``on_invalid(index, detail)`` hears of it and the batch's total is corrected."""
        batch_id = batch_id or f"dispatch-{uuid.uuid4().hex[:16]}"
        with self.engine.begin() as conn:
            batch = batches.create(
                conn,
                batch_id=batch_id,
                name=name or f"{template_id} {clinic_hsa_id}",
                clinic_hsa_id=clinic_hsa_id,
                sender_hsa_id=sender_hsa_id,
                template_id=template_id,
                total=total,
            )
        made = DispatchRecords(
            clinic_hsa_id=clinic_hsa_id,
            sender_hsa_id=sender_hsa_id,
            template_id=template_id,
            fragments=list(fragments),
            attachments=list(attachments),
            priority=priority,
            batch_id=batch_id,
        )
        lane = lane_for(priority, batch.lane)

        def records() -> Iterator[dict[str, Any]]:
            for index, recipient in enumerate(recipients):
                try:
                    yield made.record(
                        recipient.personnummer, recipient.fields, f"{batch_id}:{index}"
                    )
                except ValidationError as exc:
                    if on_invalid:
                        on_invalid(index, describe(exc))

        def counted(n: int) -> None:
            with self.engine.begin() as conn:
                batches.add_enqueued(conn, batch_id, n)

        with self._publisher(record=counted, progress=progress) as publisher:
            for chunk in chunked(records(), chunk_size or self._dispatch_chunk(priority)):
                message = intake_message(
                    chunk,
                    made.case_ids(chunk),
                    lane=lane,
                    correlation_id=batch_id,
                    prefix=self.settings.queue_prefix,
                )
                publisher.put(message, len(chunk))
        sent = publisher.cases_sent
        with self.engine.begin() as conn:
            if sent != total:
                batches.set_total(conn, batch_id, sent)
            return batches.get(conn, batch_id)

    def _dispatch_chunk(self, priority: Priority) -> int:
        """A dispatch's cases per message: its lanes' (``workers.stage.chunk_size_of``)."""
        return chunk_size_of(self.settings, lane_for(priority, batch_lane=1))

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch's live figures (see ``workers.store.batches.progress``)."""
        with self.engine.connect() as conn:
            return batches.progress(conn, batches.get(conn, batch_id))

    def batches(self, *, limit: int = 50) -> list[Batch]:
        """The newest batches."""
        with self.engine.connect() as conn:
            return batches.list_all(conn, limit=limit)

    def pause(self, batch_id: str) -> Batch:
        """Hold the batch's cases where they are (within a second or so) until resumed."""
        return self._set(batch_id, BatchStatus.PAUSED)

    def resume(self, batch_id: str) -> Batch:
        """Let a paused batch's cases move on."""
        return self._set(batch_id, BatchStatus.RUNNING)

    def cancel(self, batch_id: str) -> Batch:
        """Reject every case of the batch not yet delivered (``batch-cancelled``)."""
        return self._set(batch_id, BatchStatus.CANCELLED)

    def _set(self, batch_id: str, status: BatchStatus) -> Batch:
        with self.engine.begin() as conn:
            return batches.set_status(conn, batch_id, status)
