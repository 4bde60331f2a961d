"""Builds the adapters and settings once per process: the one place that wires things."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import dramatiq
import sqlalchemy as sa

from workers.adapters.account_directory import AccountDirectory, SimulatedAccountDirectory
from workers.adapters.blobs import BlobStore, FilesystemBlobStore
from workers.adapters.inbox import Inbox, SimulatedInbox
from workers.adapters.notifiers import (
    EmailSender,
    SimulatedEmailSender,
    SimulatedSmsGateway,
    SmsGateway,
)
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue, StaffCatalogue
from workers.settings import Settings
from workers.store.engine import make_engine
from workers.templates.library import InMemoryTemplateLibrary, TemplateLibrary


@dataclass
class Context:
    """Everything a stage needs besides its input: settings, broker, database, adapters."""

    settings: Settings
    broker: dramatiq.Broker
    engine: sa.Engine
    directory: AccountDirectory
    catalogue: StaffCatalogue
    templates: TemplateLibrary
    inbox: Inbox
    sms: SmsGateway
    email: EmailSender
    blobs: BlobStore
    today: Callable[[], dt.date] = field(default=dt.date.today)


def build_context(settings: Settings, broker: dramatiq.Broker) -> Context:
    """Wire a process: the simulators of outside systems unless configuration says otherwise."""
    zone = ZoneInfo(settings.timezone)
    outbox = settings.sim_outbox
    inbox: Inbox = SimulatedInbox(outbox)
    sms: SmsGateway = SimulatedSmsGateway(outbox)
    email: EmailSender = SimulatedEmailSender(outbox)
    if settings.sim_latency_ms or settings.sim_failure_rate:
        from workers.adapters.degraded import (
            DegradedEmailSender,
            DegradedInbox,
            DegradedSmsGateway,
        )

        slow, flaky, seed = settings.sim_latency_ms, settings.sim_failure_rate, settings.seed
        inbox = DegradedInbox(inbox, slow, flaky, seed)
        sms = DegradedSmsGateway(sms, slow, flaky, seed + 1)
        email = DegradedEmailSender(email, slow, flaky, seed + 2)
    return Context(
        settings=settings,
        broker=broker,
        engine=make_engine(settings.database_url),
        directory=SimulatedAccountDirectory(settings.seed),
        catalogue=SimulatedStaffCatalogue(settings.seed),
        templates=InMemoryTemplateLibrary(),
        inbox=inbox,
        sms=sms,
        email=email,
        blobs=FilesystemBlobStore(settings.blob_dir),
        today=lambda: dt.datetime.now(zone).date(),
    )
